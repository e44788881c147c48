package server

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/gearbridge/gearbridge"
)

// operatorView is what the HTTP side shows beyond the job server: the
// Jenkins bridge's fleet and the readiness checks. The caller (main) wires
// them, since the server must not know the bridge or the store.
type operatorView struct {
	mu     sync.Mutex
	fleet  func() gearbridge.Fleet
	checks []readyCheck
}

type readyCheck struct {
	name  string
	check func() error
}

// SetFleet makes the status page and /api/status show fleet's answer
// (nil: no bridge). fleet must answer from memory: it runs on every page
// view.
func (s *Server) SetFleet(fleet func() gearbridge.Fleet) {
	s.ops.mu.Lock()
	defer s.ops.mu.Unlock()
	s.ops.fleet = fleet
}

// AddReadyCheck adds a check to /readyz: while check returns an error,
// /readyz answers 503 with the error as the reason. A check of the same
// name is replaced (a reloaded bridge brings its own). Checks must be
// quick.
func (s *Server) AddReadyCheck(name string, check func() error) {
	s.ops.mu.Lock()
	defer s.ops.mu.Unlock()
	for i := range s.ops.checks {
		if s.ops.checks[i].name == name {
			s.ops.checks[i].check = check
			return
		}
	}
	s.ops.checks = append(s.ops.checks, readyCheck{name, check})
}

// status is Snapshot with the bridge's fleet.
func (s *Server) status() Status {
	st := s.Snapshot()
	s.ops.mu.Lock()
	fleet := s.ops.fleet
	s.ops.mu.Unlock()
	if fleet != nil {
		f := fleet()
		st.Bridge = &f
	}
	return st
}

// Readiness is the JSON of /readyz.
type Readiness struct {
	Ready   bool          `json:"ready"`
	Reasons []ReadyReason `json:"reasons,omitempty"`
}

// ReadyReason is a failing check.
type ReadyReason struct {
	Check  string `json:"check"`
	Reason string `json:"reason"`
}

// Ready runs the readiness checks.
func (s *Server) Ready() Readiness {
	s.ops.mu.Lock()
	checks := append([]readyCheck(nil), s.ops.checks...)
	s.ops.mu.Unlock()
	r := Readiness{Ready: true}
	for _, c := range checks {
		if err := c.check(); err != nil {
			r.Ready = false
			r.Reasons = append(r.Reasons, ReadyReason{Check: c.name, Reason: err.Error()})
		}
	}
	return r
}

// readyz answers 200 when every readiness check passes, else 503 with the
// reasons. /healthz stays a liveness check: it answers as long as the
// process serves HTTP.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := s.Ready()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(rd)
}

// oldestQueued is how long the longest-waiting ready job of f has been in
// its queue. Each priority list is in enqueue order, so its head is its
// oldest: O(1), under s.mu.
func (f *function) oldestQueued(now time.Time) time.Duration {
	var oldest time.Duration
	for i := range f.queues {
		if h := f.queues[i].head; h != nil && !h.queuedAt.IsZero() {
			oldest = max(oldest, now.Sub(h.queuedAt))
		}
	}
	return oldest
}
