// Package gearbridge holds the domain types shared by the job server, the
// durable store and the Jenkins bridge: jobs, priorities and the Store
// interface. It imports nothing of ours, so every other package may use it.
package gearbridge

import (
	"errors"
	"fmt"
	"io"
)

// Version is the release reported by `gearbridge version` and the admin
// `version` command.
var Version = "0.1.0"

// Priority orders queued jobs. The numeric values are gearmand's (and the
// SQL queue plugins'): HIGH=0, NORMAL=1, LOW=2.
type Priority uint8

const (
	PriorityHigh Priority = iota
	PriorityNormal
	PriorityLow
)

// NumPriorities is the number of priority levels.
const NumPriorities = 3

func (p Priority) String() string {
	switch p {
	case PriorityHigh:
		return "high"
	case PriorityNormal:
		return "normal"
	case PriorityLow:
		return "low"
	}
	return fmt.Sprintf("priority(%d)", uint8(p))
}

// Job is the durable part of a Gearman job: everything needed to queue it
// again after a restart. Runtime state (listeners, the worker holding it)
// lives in the server.
type Job struct {
	// ID is the job's sequence number: the number in its handle, unique for
	// the life of the store and increasing in submit order.
	ID uint64
	// Handle is the job handle sent to clients, e.g. "H:host:42".
	Handle   string
	Function string
	Unique   string
	Payload  []byte
	Priority Priority
	// Background is true for jobs submitted without a listening client.
	Background bool
	// Epoch is the Unix time (seconds) before which the job must not run;
	// zero means at once.
	Epoch int64
	// Attempts counts how many times the job has been handed to a worker.
	Attempts uint32
	// Reducer is the reducer name of a SUBMIT_REDUCE_JOB; informational.
	Reducer string
}

// ErrStoreClosed is returned by a Store after Close.
var ErrStoreClosed = errors.New("store closed")

// Store persists jobs so that accepted work survives a restart.
// Implementations must be safe for concurrent use.
type Store interface {
	// Restore calls fn for every stored job in submit (ID) order and returns
	// the highest job ID ever issued, so handles are never reused.
	Restore(fn func(*Job) error) (lastID uint64, err error)

	// Add makes job durable and then calls done exactly once, possibly on
	// another goroutine and possibly before Add returns. done(nil) means the
	// job is on disk; a non-nil error means it is not and must not be
	// acknowledged. Add must not be called with the caller's locks held that
	// done needs.
	Add(job *Job, done func(error))

	// SetAttempts records how often the job has been handed out. It need not
	// be durable before it returns: it rides on the next commit.
	SetAttempts(id uint64, attempts uint32)

	// Remove deletes the job and anything recorded for it (such as its build
	// reference). Like SetAttempts it rides on the next commit: after a crash
	// a finished job may run again, an accepted one is never lost.
	Remove(id uint64)

	// SetBuildRef durably records, for the job with the given handle, which
	// Jenkins queue item or build it started (opaque bytes, owned by the
	// bridge). It is deleted with the job; an empty ref deletes it at once.
	SetBuildRef(handle string, ref []byte) error

	// BuildRef returns what SetBuildRef recorded for handle, or ok=false.
	BuildRef(handle string) (ref []byte, ok bool, err error)

	// Close flushes pending writes and releases the store.
	Close() error
}

// Volatile is implemented by stores that keep nothing across restarts
// (--durability none). The server acknowledges jobs at once and does not
// hand them to such a store.
type Volatile interface {
	Volatile()
}

// Backuper is implemented by stores that can stream a consistent copy of
// themselves while they keep accepting writes.
type Backuper interface {
	// Backup writes a consistent snapshot to w and returns its size.
	Backup(w io.Writer) (int64, error)
}
