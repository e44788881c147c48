package gearbridge

import "time"

// Fleet is the Jenkins bridge's view of its masters, for the status page
// and /api/status. The bridge builds it from memory (its last polls and the
// builds it follows); reading it never sends a request to Jenkins. It lives
// here because the bridge fills it and the server shows it, and neither
// package may import the other.
type Fleet struct {
	Masters  []MasterStatus `json:"masters"`
	InFlight []BuildStatus  `json:"builds_in_flight"`
	// Finished are the last builds that ended, newest first (at most
	// FinishedBuildsKept).
	Finished []BuildStatus `json:"builds_finished"`
}

// FinishedBuildsKept is how many finished builds Fleet remembers.
const FinishedBuildsKept = 50

// MasterStatus is one Jenkins master.
type MasterStatus struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Up: the last poll succeeded.
	Up           bool         `json:"up"`
	LastSuccess  *time.Time   `json:"last_success,omitempty"`
	LastError    string       `json:"last_error,omitempty"`
	LastErrorAt  *time.Time   `json:"last_error_at,omitempty"`
	DownSince    *time.Time   `json:"down_since,omitempty"` // first failed poll in a row; start-up until the first success
	LatencyMS    float64      `json:"latency_ms"`           // recent mean of request round trips
	QuietingDown bool         `json:"quieting_down"`
	Nodes        []NodeStatus `json:"nodes"`
}

// Node states.
const (
	NodeOnline             = "online"
	NodeOffline            = "offline"
	NodeTemporarilyOffline = "temporarily offline"
)

// NodeStatus is one Jenkins node as the last poll saw it.
type NodeStatus struct {
	Name          string           `json:"name"` // "built-in" for the controller's own node
	State         string           `json:"state"`
	OfflineReason string           `json:"offline_reason,omitempty"`
	Labels        []string         `json:"labels"`
	Executors     []ExecutorStatus `json:"executors"`
}

// ExecutorStatus is one executor: idle, or busy with a build. Builds the
// bridge started carry their Gearman handle and start time.
type ExecutorStatus struct {
	Busy           bool       `json:"busy"`
	BuildURL       string     `json:"build_url,omitempty"`
	Build          string     `json:"build,omitempty"` // "project #12"
	Handle         string     `json:"handle,omitempty"`
	Started        *time.Time `json:"started,omitempty"`
	ElapsedSeconds float64    `json:"elapsed_seconds,omitempty"`
}

// BuildStatus is one build the bridge started for a Gearman job.
type BuildStatus struct {
	Master   string `json:"master"`
	Project  string `json:"project"`
	Function string `json:"function"`
	Handle   string `json:"handle"`
	Worker   string `json:"worker"`
	Node     string `json:"node,omitempty"`
	Number   int    `json:"number,omitempty"`
	URL      string `json:"url,omitempty"`
	// State: "queued" (in Jenkins' queue), "running" or "finished".
	State     string     `json:"state"`
	Triggered time.Time  `json:"triggered"`
	Started   *time.Time `json:"started,omitempty"`
	Finished  *time.Time `json:"finished,omitempty"`
	// ElapsedSeconds runs from the start (or the trigger, while queued)
	// to the end or to now.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Result         string  `json:"result,omitempty"` // Jenkins' result
	Error          string  `json:"error,omitempty"`  // why the build could not run
}
