// Package server is the Gearman job server: connections, the scheduler
// (queues, coalescing, wake-ups, retries), the text admin protocol and the
// HTTP endpoints. It takes its store as a gearbridge.Store and knows nothing
// of bbolt or Jenkins.
//
// # Locks and ownership
//
// Locks are taken in this order, and only in this order:
//
//  1. Server.mu, the scheduler lock: functions, queues, jobs, uniques,
//     sessions, the delayed heap, and every field of session and job
//     that is not named below. Handlers run with it held.
//  2. output.mu, one per connection (output.go): the queued bytes and the
//     buffer memory a connection holds; loopConn.watching and .loop.
//  3. loopConn.fdMu, one per event-loop connection: the descriptor is
//     not closed under a write.
//
// The store's lock comes after Server.mu too: Store.SetAttempts and
// Store.Remove are called under it and only queue an operation. Store.Add
// is called after the unlock (new jobs are persisted once it is
// released), and the store calls back (committed) without its locks.
// eventLoop.handMu and commits.mu (the store's answers on their way to
// the scheduler) are taken alone.
//
// Without a lock: an event loop's connection map, read arena and batch
// (eventLoop.conns, arena, ready, msgs) and its connections' input
// (loopConn.inbuf, unread) belong to the loop's goroutine. Counters that
// any goroutine reads are atomics: connection IDs, loop connection
// counts, buffer totals, metrics.
//
// No I/O runs under Server.mu. Requests are decoded before it is taken
// and replies written after it is released, so the lock covers only the
// scheduler's bookkeeping. Code that may send to a connection while
// holding it releases it with Server.unlock (or unlockToWriters, or
// unlockTakingFlushes), which writes, or hands to the writers, what was
// queued for connections other than the current one; a plain Unlock is
// for sections that send nothing. A reader goroutine takes it
// once per request. An event loop does too while the lock is free, and
// once for every request left in its turn when it finds the lock taken
// by another loop (eventloop_linux.go): under contention, batches.
package server

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearbridge/gearbridge"
)

// Limits that gearmand enforces and clients rely on.
const (
	maxUnique     = 64  // longer uniques get ARGUMENT_TOO_LARGE
	maxHandle     = 63  // a handle plus its NUL must fit in 64 bytes
	maxFunction   = 512 // GEARMAN_FUNCTION_MAX_SIZE
	maxClientID   = 127 // longer ids are truncated, as in gearmand
	maxOptionName = 63
	maxAdminLine  = 64 << 10
)

// Config is the server's configuration. Zero values take the defaults.
type Config struct {
	// Store persists jobs; nil means in memory only.
	Store gearbridge.Store
	// HandlePrefix starts every job handle ("H:<hostname>" by default).
	HandlePrefix string
	// JobRetries is the most times a job is handed to workers before it is
	// dropped with WORK_FAIL (gearmand 1.1.20's --job-retries); 0 = no limit.
	JobRetries int
	// MaxPacket is the largest accepted packet payload (default 64 MiB).
	MaxPacket uint32
	// MaxConnections refuses connections beyond this many; 0 = no limit.
	MaxConnections int
	// MaxOutput is the most output bytes kept for a client that does not
	// read; beyond it the connection is closed (default 64 MiB + 1 packet).
	MaxOutput int
	// MaxBufferMemory caps the buffer memory of all connections together:
	// requests still arriving and replies not yet read. Over it, the
	// connections holding the most are closed. 0 = no cap.
	MaxBufferMemory int64
	// VerboseLevel is what the admin `verbose` command reports.
	VerboseLevel string
	// DropRestoredForeground drops restored foreground jobs (gearmand's
	// behaviour) instead of running them detached.
	DropRestoredForeground bool
	// Exceptions turns the exceptions option on for every connection.
	Exceptions bool
	// GrabHold keeps a GRAB that finds no job unanswered this long, so
	// that a job arriving meanwhile goes straight to the worker; 0 answers
	// NO_JOB at once, as gearmand does.
	GrabHold time.Duration
	// EventLoop serves TCP connections from one epoll loop instead of a
	// goroutine pair per connection (Linux only). It does not apply to
	// TLS connections (see ServeTLS).
	EventLoop bool
	// EventLoops is how many event loops share the connections (default 1).
	EventLoops int
	// BusyPoll is how long an event loop polls for more work before it
	// sleeps, while its sleeps are short (under load); 0 never polls.
	BusyPoll time.Duration
	// KeepAlive sets the TCP keep-alive of accepted connections.
	KeepAlive KeepAlive
	// OnShutdown is called by the admin `shutdown [graceful]` command.
	OnShutdown func(graceful bool)
	Logger     *slog.Logger
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// Server is a Gearman job server. Create it with New, then call Serve.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store gearbridge.Store
	// volatile stores are skipped on the submit path: a job is queued and
	// acknowledged at once.
	volatile bool
	metrics  *metrics
	buf      *buffers
	ops      operatorView // the bridge's status and readiness checks (fleet.go)

	mu        sync.Mutex
	functions map[string]*function
	jobs      map[string]*job // by handle
	unique    map[string]*job // by function + "\0" + unique key
	jobsPeak  int             // most jobs held since the maps were last rebuilt
	sessions  map[uint64]*session
	delayed   delayedHeap
	timer     *time.Timer // fires when the earliest delayed job is due
	// rewakeTimer checks, one grace period after a NOOP, that woken
	// workers did grab.
	rewakeTimer *time.Timer
	lastID      uint64
	queueSeq    uint64
	current     *session   // the session whose reader holds mu, if any
	toFlush     []*session // connections with output queued under mu by others
	loops       []*eventLoop
	listeners   []net.Listener
	closing     bool
	quit        chan struct{} // closed by Close: the server's goroutines end
	quitClosed  bool
	connWG      sync.WaitGroup
	nextConnID  atomic.Uint64
	refusals    refusalLog
	commits     commits // the store's answers, on their way to the scheduler
}

// New creates a server and restores the store's jobs into its queues.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		cfg.Store = nopStore{}
	}
	if cfg.MaxPacket == 0 {
		cfg.MaxPacket = 64 << 20
	}
	if cfg.MaxOutput == 0 {
		cfg.MaxOutput = 64<<20 + int(cfg.MaxPacket)
	}
	if cfg.VerboseLevel == "" {
		cfg.VerboseLevel = "ERROR"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.HandlePrefix = HandlePrefix(cfg.HandlePrefix)
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		store:     cfg.Store,
		functions: map[string]*function{},
		jobs:      map[string]*job{},
		unique:    map[string]*job{},
		sessions:  map[uint64]*session{},
	}
	_, s.volatile = cfg.Store.(gearbridge.Volatile)
	s.buf = newBuffers(cfg.MaxBufferMemory)
	s.metrics = newMetrics(s)
	if err := s.restore(); err != nil {
		return nil, err
	}
	s.commits.kick = make(chan struct{}, 1)
	s.quit = make(chan struct{})
	go s.governBuffers()
	go s.deliverCommits()
	return s, nil
}

// HandlePrefix returns the handle prefix the server uses for the
// --job-handle-prefix value p: "H:<hostname>" when p is empty, cut so that
// a handle with its ID fits gearmand's 64 bytes. `gearbridge import` names
// the jobs it adds with it.
func HandlePrefix(p string) string {
	if p == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		p = "H:" + host
	}
	if len(p) > maxHandle-21 { // room for ":" and a uint64
		p = p[:maxHandle-21]
	}
	return p
}

// restore queues every job the store kept from an earlier run.
func (s *Server) restore() error {
	start := time.Now()
	var restored, dropped int
	s.mu.Lock()
	defer s.mu.Unlock()
	lastID, err := s.store.Restore(func(rec *gearbridge.Job) error {
		if !rec.Background && s.cfg.DropRestoredForeground {
			s.store.Remove(rec.ID)
			dropped++
			return nil
		}
		if s.cfg.JobRetries > 0 && int(rec.Attempts) >= s.cfg.JobRetries {
			// It was running when we stopped, and that was its last try.
			s.log.Warn("dropping restored job: retries exhausted", "handle", rec.Handle, "function", rec.Function, "attempts", rec.Attempts)
			s.store.Remove(rec.ID)
			dropped++
			return nil
		}
		j := &job{Job: *rec, detached: true, restored: true, heapIndex: -1, submitted: s.cfg.Now()}
		j.fn = s.function(rec.Function)
		if key := UniqueKey(rec.Function, rec.Unique, rec.Payload); key != "" {
			if _, dup := s.unique[key]; !dup {
				s.unique[key] = j
				j.uniqueKey = key
			}
		}
		s.jobs[j.Handle] = j
		s.enqueue(j)
		restored++
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore jobs: %w", err)
	}
	s.lastID = lastID
	if restored+dropped > 0 {
		s.log.Info("restored jobs", "queued", restored, "dropped", dropped, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Serve accepts connections on l until Close. It returns nil after Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("server closed")
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()

	if tl, ok := l.(*net.TCPListener); ok && s.cfg.EventLoop {
		return s.serveLoop(tl)
	}
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors, most likely: wait, do not spin.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		backoff = 0
		s.accept(nc, s.nextConnID.Add(1))
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// keepAlivePeriod is the TCP keepalive of every connection, on both
// transports: there is no idle timeout (workers sleep for hours), and dead
// peers are found by keepalive instead.
const keepAlivePeriod = 30 * time.Second

func (s *Server) accept(nc net.Conn, id uint64) {
	if tc, ok := nc.(*net.TCPConn); ok {
		s.cfg.KeepAlive.setConn(tc)
		tc.SetNoDelay(true)
	}
	t := newGoConn(nc)
	c := newSession(s, id, nc.RemoteAddr().String(), t)
	t.out = c.out
	if !s.admit(c, true) {
		nc.Close()
		return
	}
	go func() {
		defer s.connWG.Done()
		t.serve(c)
	}()
}

// admit registers a new connection, unless the server is closing or
// --max-connections is reached. withGoroutine counts the connection's
// reader in connWG (under the lock, so that Close cannot miss it).
func (s *Server) admit(c *session, withGoroutine bool) bool {
	s.mu.Lock()
	if s.closing || (s.cfg.MaxConnections > 0 && len(s.sessions) >= s.cfg.MaxConnections) {
		full := !s.closing
		s.mu.Unlock()
		if full {
			s.metrics.refused.Inc()
			s.log.Warn("too many connections; refusing", "peer", c.remote, "max", s.cfg.MaxConnections)
		}
		return false
	}
	c.exceptions = s.cfg.Exceptions
	s.sessions[c.id] = c
	if withGoroutine {
		s.connWG.Add(1)
	}
	s.mu.Unlock()
	s.metrics.connections.Inc()
	return true
}

// closeSession forgets a connection: its running jobs go back to the
// queue, its foreground jobs lose a listener.
func (s *Server) closeSession(c *session) {
	s.mu.Lock()
	c.closed = true
	s.setHeld(c, 0)
	if c.holdTimer != nil {
		c.holdTimer.Stop()
	}
	s.resetAbilities(c)
	for j := range c.attached {
		s.detachListener(j, c)
	}
	c.replies = nil
	delete(s.sessions, c.id)
	s.unlock()

	c.out.release() // and marks it dead
	c.closeConn()
	s.metrics.connections.Dec()
}

// Close stops accepting, closes every connection and waits for their
// goroutines. Jobs stay in the store.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	for _, l := range s.listeners {
		l.Close()
	}
	for _, c := range s.sessions {
		c.closeConn()
	}
	for _, l := range s.loops {
		l.stop()
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.rewakeTimer != nil {
		s.rewakeTimer.Stop()
	}
	if !s.quitClosed {
		s.quitClosed = true
		close(s.quit)
	}
	s.mu.Unlock()
	s.connWG.Wait()
	return nil
}

// Shutdown stops accepting connections and waits until no job is running
// or ctx ends, then closes everything (gearmand's graceful shutdown).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	for _, l := range s.listeners {
		l.Close()
	}
	s.closing = true
	s.mu.Unlock()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		running := 0
		for _, f := range s.functions {
			running += f.running
		}
		s.mu.Unlock()
		if running == 0 {
			break
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
	return s.Close()
}

// function returns the named function, creating it.
func (s *Server) function(name string) *function {
	f := s.functions[name]
	if f == nil {
		f = &function{name: name}
		s.functions[name] = f
	}
	return f
}

// unlock releases s.mu and then writes what was queued for connections
// other than the current one: the write happens outside the lock, on this
// goroutine, without waking each connection's writer.
func (s *Server) unlock() {
	var room [8]*session // most unlocks write to a few connections
	for _, c := range s.unlockTakingFlushes(room[:0]) {
		c.out.flush()
	}
}

// unlockToWriters releases s.mu and leaves the output queued for other
// connections to their writer goroutines. The store's answers for a batch
// are applied together (deliverCommits): a writer woken once writes all
// of that batch's JOB_CREATED packets in one system call.
func (s *Server) unlockToWriters() {
	var room [8]*session
	for _, c := range s.unlockTakingFlushes(room[:0]) {
		c.out.flushLater()
	}
}

// unlockTakingFlushes releases s.mu and appends to dst the connections
// that have output queued by others. Server.toFlush keeps its memory: on
// the hot path an unlock allocates nothing.
func (s *Server) unlockTakingFlushes(dst []*session) []*session {
	dst = append(dst, s.toFlush...)
	for _, c := range s.toFlush {
		c.flushQueued = false
	}
	clear(s.toFlush)
	s.toFlush = s.toFlush[:0]
	s.mu.Unlock()
	return dst
}

// send writes data to c in reply order. Must hold s.mu.
func (s *Server) send(c *session, data []byte) {
	if c.closed {
		return
	}
	if len(c.replies) > 0 {
		c.replies = append(c.replies, &outEntry{data: data, ready: true})
		return
	}
	c.queue(data, c != s.current)
}

// releaseReplies sends the ready replies at the head of c's reply queue.
func (s *Server) releaseReplies(c *session) {
	i := 0
	for ; i < len(c.replies) && c.replies[i].ready; i++ {
		if !c.closed {
			c.queue(c.replies[i].data, c != s.current)
		}
	}
	if i == len(c.replies) {
		c.replies = nil
	} else {
		c.replies = c.replies[i:]
	}
}

// scheduleDelayed arms the timer for the earliest not-yet-due epoch job.
func (s *Server) scheduleDelayed() {
	if len(s.delayed) == 0 {
		return
	}
	wait := time.Unix(s.delayed[0].Epoch, 0).Sub(s.cfg.Now())
	if s.timer == nil {
		s.timer = time.AfterFunc(wait, s.releaseDue)
	} else {
		s.timer.Reset(wait)
	}
}

// releaseDue moves epoch jobs that have fallen due into their queues, which
// wakes their workers.
func (s *Server) releaseDue() {
	s.mu.Lock()
	defer s.unlock()
	now := s.cfg.Now().Unix()
	for len(s.delayed) > 0 && s.delayed[0].Epoch <= now {
		j := heap.Pop(&s.delayed).(*job)
		j.fn.delayed--
		j.state = stateDone // enqueue sets the real state
		s.enqueue(j)
	}
	s.scheduleDelayed()
}

// nopStore keeps nothing; it stands in when no store is configured.
type nopStore struct{}

func (nopStore) Restore(func(*gearbridge.Job) error) (uint64, error) { return 0, nil }
func (nopStore) Add(_ *gearbridge.Job, done func(error))             { done(nil) }
func (nopStore) SetAttempts(uint64, uint32)                          {}
func (nopStore) Remove(uint64)                                       {}
func (nopStore) SetBuildRef(string, []byte) error                    { return errors.New("no store") }
func (nopStore) BuildRef(string) ([]byte, bool, error)               { return nil, false, nil }
func (nopStore) Close() error                                        { return nil }
