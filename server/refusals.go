package server

import (
	"log/slog"
	"sync"
	"time"
)

// errNotStored is the text of the QUEUE_ERROR a client gets when the store
// cannot commit its job.
const errNotStored = "Job could not be stored"

// refusalInterval is the least time between two log lines about refused
// jobs: a full disk refuses every submit, and one line per job drowns the
// log.
const refusalInterval = time.Second

// refusalLog reports store failures at most once per refusalInterval, each
// line with the number of jobs refused since the previous one. A count
// left over when the failures stop is logged when the interval ends.
type refusalLog struct {
	mu       sync.Mutex
	last     time.Time // when the last line was written
	count    int       // refused since then
	handle   string    // the newest refused job
	function string
	err      error
	timer    *time.Timer // writes the leftover count
}

func (r *refusalLog) refused(log *slog.Logger, handle, function string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	r.handle, r.function, r.err = handle, function, err
	if r.timer != nil {
		return
	}
	if wait := refusalInterval - time.Since(r.last); wait > 0 {
		r.timer = time.AfterFunc(wait, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.timer = nil
			r.write(log)
		})
		return
	}
	r.write(log)
}

// write logs the refusals counted so far; r.mu must be held.
func (r *refusalLog) write(log *slog.Logger) {
	if r.count == 0 {
		return
	}
	log.Error("could not store jobs; refusing them with QUEUE_ERROR", "refused", r.count,
		"last_handle", r.handle, "function", r.function, "err", r.err)
	r.last, r.count = time.Now(), 0
}
