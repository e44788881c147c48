package server

import (
	"time"

	"github.com/gearbridge/gearbridge"
)

// jobState is where a job is in its life.
type jobState uint8

const (
	// statePending: accepted, waiting for the store to commit it. Invisible
	// to workers; its submitters' JOB_CREATED waits in their reply queues.
	statePending jobState = iota
	stateQueued           // in its function's priority list
	stateDelayed          // an epoch job that is not yet due
	stateRunning          // held by a worker
	stateDone             // ended and forgotten
)

// job is a Gearman job as the server tracks it: the durable record plus
// runtime state. All fields are guarded by Server.mu.
type job struct {
	gearbridge.Job
	fn    *function
	state jobState

	// uniqueKey is the job's key in Server.unique, which maps it to this
	// job; "" if the job never coalesces (or, restored, found its key
	// taken by an older job).
	uniqueKey string

	// listeners are the foreground clients attached to the job, in attach
	// order; each gets every WORK_* packet.
	listeners []*session
	// detached jobs run without listeners: background submits, restored
	// foreground jobs, foreground jobs a background submit coalesced onto.
	detached bool
	// cancelled jobs (admin "cancel job" while running) drop their results.
	cancelled bool
	// restored jobs were read back from the store at start-up.
	restored bool

	// commitWaiters get JOB_CREATED (or ERROR) when the store answers.
	commitWaiters []commitWaiter

	worker     *session // holding the job while stateRunning
	assignment uint64   // increments per hand-out, so stale timers do nothing
	timer      *time.Timer
	num, den   []byte // last WORK_STATUS
	lastData   []byte // last WORK_DATA, replayed to clients that attach later

	queueSeq  uint64 // enqueue order: oldest first within a priority
	submitted time.Time
	queuedAt  time.Time // when it last joined its priority list (status page)

	// intrusive links
	prev, next *job
	list       *jobList
	heapIndex  int
}

// function is one Gearman function name: its queued jobs and the workers
// that can do it.
type function struct {
	name     string
	queues   [gearbridge.NumPriorities]jobList
	delayed  int // not-yet-due epoch jobs
	running  int
	pending  int                           // jobs waiting for their commit
	maxQueue [gearbridge.NumPriorities]int // 0 = unlimited
	workers  []*session
	wakeNext int // where the next wake-up scan starts, to spread NOOPs
	held     int // workers of f whose GRAB is held (see setHeld)
}

func (f *function) queued() int { return f.ready() + f.delayed }

// ready is how many of f's jobs a worker could take now.
func (f *function) ready() int {
	n := 0
	for i := range f.queues {
		n += f.queues[i].n
	}
	return n
}

// total is what the admin `status` shows: every job of the function that
// exists, queued or running.
func (f *function) total() int { return f.queued() + f.running }

func (f *function) removeWorker(s *session) {
	for i, w := range f.workers {
		if w == s {
			f.workers = append(f.workers[:i], f.workers[i+1:]...)
			if f.wakeNext > i {
				f.wakeNext--
			}
			return
		}
	}
}

// ability is one function a worker connection registered.
type ability struct {
	timeout time.Duration // CAN_DO_TIMEOUT; 0 = none
}

// outEntry is a reply in a session's ordered reply queue. Replies leave in
// request order, so a JOB_CREATED that waits for a commit holds back every
// later reply to the same connection.
type outEntry struct {
	data  []byte
	ready bool
}

// commitWaiter is a reply that waits for a job's commit.
type commitWaiter struct {
	c     *session
	entry *outEntry
}
