package store

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gearbridge/gearbridge"
)

// The write path. Add, SetAttempts, Remove and SetBuildRef append an op to
// the pending list and wake the writer goroutine; they never wait for the
// disk (SetBuildRef waits for its own op). The writer takes everything
// pending, applies it in order in one bbolt transaction, commits (two
// fdatasyncs), and only then are the done callbacks called, in the order the
// ops were queued, holding no lock, by a notifier goroutine. While it commits, new ops accumulate and go
// into the next transaction: N concurrent submitters share one commit, and a
// lone submitter waits for one commit only, with no timer.

type opKind uint8

const (
	opAdd      opKind = iota // put a job record
	opAttempts               // patch a record's attempt count (lazy)
	opRemove                 // delete a record and its build ref (lazy)
	opBuildRef               // put a build ref
	opFail                   // report err to done, in order
	opProbe                  // a small write that tests whether commits work again (health.go)
)

// lazy ops have no caller waiting: they ride on the next commit.
func (k opKind) lazy() bool { return k == opAttempts || k == opRemove }

type op struct {
	kind     opKind
	id       uint64
	attempts uint32
	val      []byte // opAdd: the record; opBuildRef: the ref
	handle   string // opBuildRef
	done     func(error)
	err      error
}

// Add queues job for the next commit and calls done once it is on disk (or
// with the error that kept it off the disk). done is called from the writer
// goroutine's notifier, never with a store lock held, and in the order of
// the Add calls.
func (s *DB) Add(job *gearbridge.Job, done func(error)) {
	o := op{kind: opAdd, id: job.ID, done: done}
	switch {
	case job.ID == 0:
		o.kind, o.err = opFail, fmt.Errorf("store job %q: job ID 0", job.Handle)
	case job.Priority >= gearbridge.NumPriorities:
		o.kind, o.err = opFail, fmt.Errorf("store job %q: bad priority %d", job.Handle, job.Priority)
	default:
		o.val = encodeJob(job) // outside the lock: submitters encode in parallel
	}
	if !s.enqueue(o) {
		done(gearbridge.ErrStoreClosed)
	}
}

// SetAttempts records the job's attempt count with the next commit.
func (s *DB) SetAttempts(id uint64, attempts uint32) {
	s.enqueue(op{kind: opAttempts, id: id, attempts: attempts})
}

// Remove deletes the job and its build reference with the next commit. If
// the job's Add is still pending, the delete follows it.
func (s *DB) Remove(id uint64) {
	s.enqueue(op{kind: opRemove, id: id})
}

// SetBuildRef durably records ref for the stored job with this handle and
// returns once it is on disk; an empty ref deletes the record (for any
// handle). It fails with ErrUnknownJob if no such job is stored, so that no
// reference outlives its job. It must not be called from an Add's done
// callback.
func (s *DB) SetBuildRef(handle string, ref []byte) error {
	ch := make(chan error, 1)
	o := op{kind: opBuildRef, handle: handle, val: append([]byte{}, ref...), done: func(err error) { ch <- err }}
	if !s.enqueue(o) {
		return gearbridge.ErrStoreClosed
	}
	if err := <-ch; err != nil {
		return fmt.Errorf("store build ref of %s: %w", handle, err)
	}
	return nil
}

// enqueue appends o to the pending list; false if the store is closed.
func (s *DB) enqueue(o op) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	s.pending = append(s.pending, o)
	s.mu.Unlock()
	s.cond.Signal()
	return true
}

// run is the writer goroutine. A second goroutine calls the done callbacks
// of each committed batch, in order, while the writer commits the next one.
func (s *DB) run() {
	notify := make(chan []op, 2)
	go s.notifier(notify)
	defer close(notify)
	for {
		s.mu.Lock()
		for len(s.pending) == 0 && !s.closing {
			s.cond.Wait()
		}
		if len(s.pending) == 0 {
			s.mu.Unlock()
			return
		}
		var batch []op
		if len(s.pending) <= s.maxBatch {
			batch, s.pending, s.spare = s.pending, s.spare[:0], nil
		} else {
			batch = append([]op(nil), s.pending[:s.maxBatch]...)
			s.pending = append(s.pending[:0], s.pending[s.maxBatch:]...)
		}
		closing := s.closing
		s.mu.Unlock()

		backoff := s.commit(batch, closing)
		notify <- batch
		if backoff {
			time.Sleep(s.retryDelay)
		}
	}
}

// notifier reports each batch's outcome to its done callbacks, in order,
// holding no lock, and then recycles the batch's memory.
func (s *DB) notifier(batches <-chan []op) {
	defer close(s.exited)
	for batch := range batches {
		for i := range batch {
			if batch[i].done != nil {
				batch[i].done(batch[i].err)
			}
		}
		clear(batch)
		s.mu.Lock()
		if s.spare == nil {
			s.spare = batch[:0]
		}
		s.mu.Unlock()
	}
}

// commit applies batch in one transaction and records the outcome in each
// op's err. It reports whether the writer should back off before the next.
func (s *DB) commit(batch []op, closing bool) (backoff bool) {
	maxID, err := s.update(batch)
	if err == nil {
		s.committed(batch, maxID)
		return false
	}
	s.stats.failedCommits.Add(1)
	s.commitFailed(err)
	s.log.Error("commit failed", "ops", len(batch), "err", err)
	for i := range batch {
		if !batch[i].kind.lazy() && batch[i].kind != opFail {
			batch[i].err = fmt.Errorf("commit to %s: %w", s.path, err)
		}
	}
	return s.retryLazy(batch, closing)
}

// committed updates the counters after a successful commit.
func (s *DB) committed(batch []op, maxID uint64) {
	s.lastID = max(s.lastID, maxID)
	s.retryDelay = 0
	s.stats.commits.Add(1)
	s.commitWorked(batch)
	var added, removed, attempts uint64
	for i := range batch {
		switch batch[i].kind {
		case opAdd:
			if batch[i].err == nil {
				added++
			}
		case opRemove:
			removed++
		case opAttempts:
			attempts++
		}
	}
	s.stats.added.Add(added)
	s.stats.removed.Add(removed)
	s.stats.attempts.Add(attempts)
}

// retryLazy commits the removes and attempt counts of a failed batch on their
// own (deletes free space, so they usually succeed even on a full disk). If
// that fails too they go back to the head of the queue and the writer backs
// off, unless the store is closing (then they are dropped: at worst a
// finished job runs again after a restart).
func (s *DB) retryLazy(batch []op, closing bool) (backoff bool) {
	var lazy []op
	for _, o := range batch {
		if o.kind.lazy() {
			lazy = append(lazy, o)
		}
	}
	if len(lazy) == 0 {
		return false
	}
	if len(lazy) < len(batch) {
		if maxID, err := s.update(lazy); err == nil {
			s.committed(lazy, maxID)
			return false
		}
	}
	if closing {
		s.log.Warn("dropping removes and attempt counts after a failed commit", "ops", len(lazy))
		return false
	}
	s.mu.Lock()
	s.pending = append(lazy, s.pending...)
	s.mu.Unlock()
	s.retryDelay = min(max(2*s.retryDelay, 10*time.Millisecond), time.Second)
	return true
}

// update runs one write transaction over batch and returns the highest job
// ID it added. A panic inside bbolt (a damaged file) becomes an error: the
// transaction is rolled back and the writer keeps serving.
func (s *DB) update(batch []op) (maxID uint64, err error) {
	err = safely(func() error {
		return s.bolt.Update(func(tx *bolt.Tx) error {
			var err error
			maxID, err = s.apply(tx, batch)
			return err
		})
	})
	return maxID, err
}

// apply performs batch in tx. Errors that concern one op (an unknown handle,
// a value too large) go to that op; others fail the transaction.
func (s *DB) apply(tx *bolt.Tx, batch []op) (maxID uint64, err error) {
	jobs := tx.Bucket(bucketJobs)
	jobs.FillPercent = 0.9 // keys are appended in ID order: pack pages full
	refs := tx.Bucket(bucketBuildRefs)
	for i := range batch {
		o := &batch[i]
		switch o.kind {
		case opAdd:
			if err := jobs.Put(jobKey(o.id), o.val); err != nil {
				o.err = fmt.Errorf("store job %d: %w", o.id, err)
				continue
			}
			maxID = max(maxID, o.id)
		case opAttempts:
			v := jobs.Get(jobKey(o.id))
			if len(v) < recordHeader {
				continue // removed already
			}
			v = withAttempts(v, o.attempts)
			if err := jobs.Put(jobKey(o.id), v); err != nil {
				return 0, fmt.Errorf("set attempts of job %d: %w", o.id, err)
			}
		case opRemove:
			k := jobKey(o.id)
			v := jobs.Get(k)
			if v == nil {
				continue
			}
			if h, ok := recordHandle(v); ok {
				if err := refs.Delete([]byte(h)); err != nil {
					return 0, fmt.Errorf("remove build ref of job %d: %w", o.id, err)
				}
			}
			if err := jobs.Delete(k); err != nil {
				return 0, fmt.Errorf("remove job %d: %w", o.id, err)
			}
		case opProbe:
			o.err = probeWrite(tx) // its own failure only: the batch's jobs may still fit
		case opBuildRef:
			if len(o.val) == 0 {
				// An empty ref deletes: the bridge forgets a finished build.
				o.err = refs.Delete([]byte(o.handle))
				continue
			}
			if !jobHasHandle(jobs, o.handle) {
				o.err = ErrUnknownJob
				continue
			}
			o.err = refs.Put([]byte(o.handle), appendChecksum(o.val))
		}
	}
	if maxID > s.lastID {
		if err := tx.Bucket(bucketMeta).Put(keyLastID, lastIDRecord(maxID)); err != nil {
			return 0, fmt.Errorf("store handle counter: %w", err)
		}
	}
	return maxID, nil
}

func keyID(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// Stats are the store's counters since Open.
type Stats struct {
	// Commits counts successful write transactions. bbolt makes each durable
	// with two fdatasyncs (pages, then meta page), so Syncs = 2 * Commits.
	Commits       uint64
	Syncs         uint64
	FailedCommits uint64
	JobsAdded     uint64 // Adds committed
	JobsRemoved   uint64 // Removes committed
	AttemptWrites uint64 // SetAttempts committed
	Quarantined   uint64 // damaged job records moved to the quarantine bucket
	Pending       int    // ops waiting for the writer
}

type counters struct {
	commits, failedCommits, added, removed, attempts, quarantined atomic.Uint64
}

// Stats returns the current counters.
func (s *DB) Stats() Stats {
	s.mu.Lock()
	pending := len(s.pending)
	s.mu.Unlock()
	c := s.stats.commits.Load()
	return Stats{
		Commits:       c,
		Syncs:         2 * c,
		FailedCommits: s.stats.failedCommits.Load(),
		JobsAdded:     s.stats.added.Load(),
		JobsRemoved:   s.stats.removed.Load(),
		AttemptWrites: s.stats.attempts.Load(),
		Quarantined:   s.stats.quarantined.Load(),
		Pending:       pending,
	}
}
