package server

import (
	"container/heap"
	"crypto/sha256"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// All functions in this file must be called with s.mu held.

// UniqueKey is the coalescing key of a submit, or "" when it must not
// coalesce: an empty unique never does; "-" coalesces by payload (and never
// for an empty payload); any other unique by function and unique.
func UniqueKey(fn, unique string, payload []byte) string {
	switch {
	case unique == "":
		return ""
	case unique == "-":
		if len(payload) == 0 {
			return ""
		}
		sum := sha256.Sum256(payload)
		return fn + "\x00-\x00" + string(sum[:])
	default:
		return fn + "\x00" + unique
	}
}

// enqueue makes a committed job available: in its priority list, or in the
// delayed heap if its epoch is in the future.
func (s *Server) enqueue(j *job) {
	if j.Epoch > 0 && j.Epoch > s.cfg.Now().Unix() {
		j.state = stateDelayed
		j.fn.delayed++
		heap.Push(&s.delayed, j)
		if s.delayed[0] == j {
			s.scheduleDelayed()
		}
		return
	}
	j.state = stateQueued
	s.queueSeq++
	j.queueSeq = s.queueSeq
	j.queuedAt = s.cfg.Now()
	j.fn.queues[j.Priority].pushBack(j)
	if !s.assignHeld(j) {
		s.wakeOne(j.fn)
	}
}

// assignHeld gives a newly queued job to a worker whose GRAB is held,
// taking the function's workers in turn.
func (s *Server) assignHeld(j *job) bool {
	f := j.fn
	if f.held == 0 {
		return false
	}
	n := len(f.workers)
	for i := 0; i < n; i++ {
		k := (f.wakeNext + i) % n
		w := f.workers[k]
		if w.held != 0 {
			f.wakeNext = (k + 1) % n
			typ := w.held
			s.setHeld(w, 0)
			s.assign(w, j)
			s.sendAssignment(w, j, typ)
			s.expectWordFrom(w, j)
			return true
		}
	}
	return false
}

// wakeOne sends one NOOP to a sleeping worker of f that has none pending.
// One job wakes at most one worker, so hundreds of idle workers do not all
// stampede for every job; workers that are awake will GRAB on their own.
func (s *Server) wakeOne(f *function) bool {
	n := len(f.workers)
	for i := 0; i < n; i++ {
		k := (f.wakeNext + i) % n
		w := f.workers[k]
		if w.sleeping && !w.noopSent {
			f.wakeNext = (k + 1) % n
			s.wake(w)
			return true
		}
	}
	return false
}

// wake sends w its one NOOP for this sleep.
func (s *Server) wake(w *session) {
	w.noopSent = true
	w.wokeAt = s.cfg.Now()
	s.metrics.noops.Inc()
	s.send(w, noopPacket)
	if s.rewakeTimer == nil {
		s.rewakeTimer = timeAfterFunc(wakeGrace, s.rewake)
	}
}

// wakeGrace is how long a woken worker may take to GRAB before the server
// stops counting on it. A worker can have reasons not to grab (the Jenkins
// bridge holds back while its node has no free executor); the job must not
// wait for it while other workers sleep.
const wakeGrace = 500 * time.Millisecond

// rewake wakes more sleepers for functions whose queued jobs outnumber the
// workers woken within the grace period. While any such woken worker is
// still within its grace, it checks again when that grace ends: a worker
// woken twice in a row, the second time shortly before this check, must
// not keep the job from the others once it turns out to be silent.
func (s *Server) rewake() {
	s.mu.Lock()
	defer s.unlock()
	s.rewakeTimer = nil
	now := s.cfg.Now()
	var again time.Duration // until the soonest fresh wake goes stale
	for _, f := range s.functions {
		ready := f.ready()
		if ready == 0 {
			continue
		}
		fresh := 0
		for _, w := range f.workers {
			if !w.noopSent {
				continue
			}
			if age := now.Sub(w.wokeAt); age < wakeGrace {
				fresh++
				if left := wakeGrace - age; again == 0 || left < again {
					again = left
				}
			}
		}
		for ; fresh < ready; fresh++ {
			if !s.wakeOne(f) {
				break
			}
		}
	}
	if again > 0 && s.rewakeTimer == nil {
		s.rewakeTimer = timeAfterFunc(again, s.rewake)
	}
}

var (
	noopPacket  = protocol.AppendResponse(nil, protocol.Noop)
	noJobPacket = protocol.AppendResponse(nil, protocol.NoJob)
)

// hasWork reports whether any job is queued for one of c's functions.
func (s *Server) hasWork(c *session) bool {
	for f := range c.abilities {
		if f.ready() > 0 {
			return true
		}
	}
	return false
}

// nextJob picks the job c should run next: the highest priority across all
// its functions, then the one queued longest (gearmand HEAD's global order).
func (s *Server) nextJob(c *session) *job {
	var best *job
	for f := range c.abilities {
		for p := range f.queues {
			h := f.queues[p].head
			if h == nil {
				continue
			}
			if best == nil || h.Priority < best.Priority || (h.Priority == best.Priority && h.queueSeq < best.queueSeq) {
				best = h
			}
			break // lower priorities of this function cannot beat its head
		}
	}
	return best
}

// assign hands j to worker c.
func (s *Server) assign(c *session, j *job) {
	j.fn.queues[j.Priority].remove(j)
	j.state = stateRunning
	j.worker = c
	j.fn.running++
	j.Attempts++
	j.assignment++
	c.running[j] = struct{}{}
	s.store.SetAttempts(j.ID, j.Attempts)
	if a := c.abilities[j.fn]; a != nil && a.timeout > 0 {
		assignment := j.assignment
		j.timer = timeAfterFunc(a.timeout, func() { s.workerTimedOut(j, assignment) })
	}
}

func (s *Server) workerTimedOut(j *job, assignment uint64) {
	s.mu.Lock()
	defer s.unlock()
	if j.state != stateRunning || j.assignment != assignment {
		return
	}
	s.log.Warn("worker timeout reached on job; requeueing", "handle", j.Handle, "function", j.fn.name, "conn", j.worker.id)
	s.takeBack(j)
}

// expectWordFrom watches a job handed to w's held GRAB. w asked for work
// before the job existed, and a worker can die or hang with its socket
// open, so nothing yet shows that w will ever read the JOB_ASSIGN. If w
// sends no packet at all within wakeGrace, it is taken for gone and the
// job is offered to the other workers; any packet keeps the job with w.
func (s *Server) expectWordFrom(w *session, j *job) {
	heard, assignment := w.heard, j.assignment
	timeAfterFunc(wakeGrace, func() {
		s.mu.Lock()
		defer s.unlock()
		if j.state != stateRunning || j.assignment != assignment || j.worker != w || w.heard != heard {
			return
		}
		s.log.Warn("worker sent nothing after a job was assigned to its held GRAB; offering the job to other workers",
			"handle", j.Handle, "function", j.fn.name, "conn", w.id)
		s.metrics.unansweredAssignments.Inc()
		// The hand-out never reached a live worker: it does not count
		// against --job-retries.
		j.Attempts--
		s.store.SetAttempts(j.ID, j.Attempts)
		s.takeBack(j)
	})
}

// takeBack requeues a running job that its worker still holds as far as
// the worker knows, and remembers the handle, so that the worker's late
// WORK_* packets for it are dropped instead of answered with ERROR.
func (s *Server) takeBack(j *job) {
	w := j.worker
	if w.takenBack == nil {
		w.takenBack = make(map[string]struct{})
	}
	if len(w.takenBack) >= maxTakenBack {
		for h := range w.takenBack { // forget an arbitrary old one
			delete(w.takenBack, h)
			break
		}
	}
	w.takenBack[j.Handle] = struct{}{}
	s.requeue(j)
}

// maxTakenBack bounds the handles remembered per worker connection.
const maxTakenBack = 1024

// requeue takes a running job back from its worker: to the tail of its
// queue, or, when it has used up its tries, failed for its listeners.
func (s *Server) requeue(j *job) {
	s.unassign(j)
	j.num, j.den, j.lastData = nil, nil, nil
	if j.cancelled || (!j.detached && len(j.listeners) == 0) {
		s.finish(j)
		return
	}
	if s.cfg.JobRetries > 0 && int(j.Attempts) >= s.cfg.JobRetries {
		s.log.Warn("job retries exhausted; failing job", "handle", j.Handle, "function", j.fn.name, "attempts", j.Attempts)
		s.metrics.retriesExhausted.Inc()
		s.forward(j, protocol.WorkFail, []byte(j.Handle))
		s.finish(j)
		return
	}
	s.enqueue(j)
}

func (s *Server) unassign(j *job) {
	if j.state != stateRunning {
		return
	}
	if j.timer != nil {
		j.timer.Stop()
		j.timer = nil
	}
	delete(j.worker.running, j)
	j.worker = nil
	j.fn.running--
	j.state = stateDone
}

// runningJob is the job with this handle that worker c holds, or nil.
// Workers mostly hold a job or two, and looking among them is cheaper than
// in the server's map of every job, which a big queue makes slow.
func (s *Server) runningJob(c *session, handle []byte) *job {
	if len(c.running) > 4 {
		if j := s.jobs[string(handle)]; j != nil && j.state == stateRunning && j.worker == c {
			return j
		}
		return nil
	}
	for j := range c.running {
		if j.Handle == string(handle) {
			return j
		}
	}
	return nil
}

// finish forgets a job that has ended, for whatever reason.
func (s *Server) finish(j *job) {
	switch j.state {
	case stateRunning:
		s.unassign(j)
	case stateQueued:
		j.fn.queues[j.Priority].remove(j)
	case stateDelayed:
		heap.Remove(&s.delayed, j.heapIndex)
		j.fn.delayed--
	}
	j.state = stateDone
	s.dropListeners(j)
	if n := len(s.jobs); n > s.jobsPeak {
		s.jobsPeak = n
	}
	if j.uniqueKey != "" {
		delete(s.unique, j.uniqueKey)
	}
	delete(s.jobs, j.Handle)
	s.store.Remove(j.ID)
	if s.jobsPeak >= shrinkPeak && len(s.jobs) <= s.jobsPeak/16 {
		s.shrink()
	}
}

// shrinkPeak is the number of jobs from which a drained queue gives its
// memory back (a variable for tests).
var shrinkPeak = 1 << 16

// shrink gives back the memory of a queue that has drained from a large
// peak. Go maps never shrink: after a burst of a million jobs the two job
// maps would hold about 100 MB, and the heap its peak until the runtime's
// next forced collection. The maps are rebuilt at their present size, and
// the freed memory returns to the system.
func (s *Server) shrink() {
	s.log.Info("queue drained from a large peak; returning memory", "peak_jobs", s.jobsPeak, "jobs", len(s.jobs))
	s.jobs = resized(s.jobs)
	s.unique = resized(s.unique)
	s.jobsPeak = len(s.jobs)
	go debug.FreeOSMemory()
}

// resized copies m into a map made for its present size (maps.Clone keeps
// the capacity).
func resized(m map[string]*job) map[string]*job {
	c := make(map[string]*job, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// dropListeners detaches every client from j.
func (s *Server) dropListeners(j *job) {
	for _, l := range j.listeners {
		delete(l.attached, j)
	}
	j.listeners = nil
}

// forward sends the response typ with args to every client attached to j.
// A background job usually has none, and then nothing is built (a large
// result is not copied for nobody).
func (s *Server) forward(j *job, typ protocol.Type, args ...[]byte) {
	if len(j.listeners) == 0 {
		return
	}
	packet := protocol.AppendResponse(nil, typ, args...)
	for _, l := range j.listeners {
		s.send(l, packet)
	}
}

// detachListener removes client c from j. A foreground job nobody waits for
// any more is dropped if it is still queued, as in gearmand; if it is
// running, its results will go nowhere.
func (s *Server) detachListener(j *job, c *session) {
	for i, l := range j.listeners {
		if l == c {
			j.listeners = append(j.listeners[:i], j.listeners[i+1:]...)
			break
		}
	}
	delete(c.attached, j)
	if len(j.listeners) > 0 || j.detached {
		return
	}
	switch j.state {
	case stateQueued, stateDelayed:
		s.finish(j)
	}
}

// attach makes c a listener of j.
func (s *Server) attach(j *job, c *session) {
	if _, ok := c.attached[j]; ok {
		return
	}
	j.listeners = append(j.listeners, c)
	c.attached[j] = struct{}{}
}

// addAbility registers fn for worker c (CAN_DO / CAN_DO_TIMEOUT).
// Registering twice on one connection counts once.
func (s *Server) addAbility(c *session, name string, timeout int64) {
	f := s.function(name)
	a := c.abilities[f]
	if a == nil {
		a = &ability{}
		c.abilities[f] = a
		f.workers = append(f.workers, c)
	} else {
		s.removeFromLog(c, f)
	}
	c.abilityLog = append(c.abilityLog, f)
	a.timeout = secondsDuration(timeout)
}

func (s *Server) removeFromLog(c *session, f *function) {
	for i, g := range c.abilityLog {
		if g == f {
			c.abilityLog = append(c.abilityLog[:i], c.abilityLog[i+1:]...)
			return
		}
	}
}

// removeAbility unregisters f from c and requeues the jobs of f that c is
// running (gearmand does the same on CANT_DO).
func (s *Server) removeAbility(c *session, f *function) {
	if c.abilities[f] == nil {
		return
	}
	delete(c.abilities, f)
	f.removeWorker(c)
	s.removeFromLog(c, f)
	for j := range c.running {
		if j.fn == f {
			s.requeue(j)
		}
	}
}

// resetAbilities unregisters every function of c; removeAbility requeues
// c's running jobs after c has left the function's workers, so the wake-up
// for a requeued job never goes to c itself.
func (s *Server) resetAbilities(c *session) {
	for f := range c.abilities {
		s.removeAbility(c, f)
	}
}

// newHandle issues the next job ID and its handle.
func (s *Server) newHandle() (uint64, string) {
	s.lastID++
	return s.lastID, s.cfg.HandlePrefix + ":" + strconv.FormatUint(s.lastID, 10)
}

// commitResult is the store's answer for one job.
type commitResult struct {
	j   *job
	err error
}

// commits carries the store's answers to the scheduler. The store answers
// a whole batch in a burst, one job at a time; taking the scheduler lock
// for each would queue the store's notifier behind the event loops once
// per job. Instead the answers gather here and one goroutine (deliver)
// applies all that have gathered under one acquisition of the lock.
type commits struct {
	mu      sync.Mutex
	results []commitResult
	spare   []commitResult
	kick    chan struct{} // results were added to an empty list
}

// committed is called when the store has (or has not) made j durable.
func (s *Server) committed(j *job, err error) {
	q := &s.commits
	q.mu.Lock()
	q.results = append(q.results, commitResult{j, err})
	first := len(q.results) == 1
	q.mu.Unlock()
	if first {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
}

// deliverCommits runs until the server closes, applying the store's
// answers as they come.
func (s *Server) deliverCommits() {
	q := &s.commits
	for {
		select {
		case <-q.kick:
		case <-s.quit:
			return
		}
		q.mu.Lock()
		batch := q.results
		q.results, q.spare = q.spare[:0], nil
		q.mu.Unlock()
		s.mu.Lock()
		for _, r := range batch {
			s.applyCommit(r.j, r.err)
		}
		s.unlockToWriters()
		clear(batch)
		q.mu.Lock()
		q.spare = batch[:0]
		q.mu.Unlock()
	}
}

// applyCommit makes j visible to workers, or refuses it, once the store
// has answered; s.mu must be held.
func (s *Server) applyCommit(j *job, err error) {
	waiters := j.commitWaiters
	j.commitWaiters = nil
	j.fn.pending--
	if err != nil {
		s.refusals.refused(s.log, j.Handle, j.fn.name, err)
		s.metrics.storeErrors.Inc()
		// The detail (a file path, an OS error) is for the log, not for
		// every client on the network.
		reply := protocol.AppendError(nil, "QUEUE_ERROR", errNotStored)
		for _, w := range waiters {
			w.entry.data, w.entry.ready = reply, true
		}
		s.dropListeners(j)
		if j.uniqueKey != "" {
			delete(s.unique, j.uniqueKey)
		}
		j.state = stateDone
	} else {
		for _, w := range waiters {
			w.entry.ready = true
		}
		s.jobs[j.Handle] = j
		if j.detached || len(j.listeners) > 0 {
			s.metrics.submitted.Inc()
			s.enqueue(j)
		} else {
			// Every client that wanted it left while it was being stored.
			s.finish(j)
		}
	}
	for _, w := range waiters {
		s.releaseReplies(w.c)
	}
}
