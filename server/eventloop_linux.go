package server

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
	"golang.org/x/sys/unix"
)

// eventLoop serves every connection of one listener from one goroutine
// with level-triggered epoll, the way gearmand's single-threaded mode
// does. Compared with a reader goroutine per connection it saves, for
// each request, the read that fails with EAGAIN before a goroutine parks
// and the goroutine switches: most of a small request's cost on loopback.
// Handling is the same code under the same lock; only the I/O differs.
type eventLoop struct {
	s      *Server
	epfd   int
	lfd    int // a dup of the listener's socket
	wakefd int // eventfd: stop, or connections handed over
	conns  map[int]*loopConn
	group  []*eventLoop // the loops sharing the listener, this one too

	// count is how many connections the loop serves, or has been handed;
	// a new connection goes to the loop with the fewest (see place).
	count atomic.Int64
	// handed: connections another loop accepted for this one, waiting to
	// be watched; guarded by handMu.
	handMu   sync.Mutex
	handed   []*loopConn
	stopping atomic.Bool

	// A turn's requests are handled together, under one acquisition of
	// the scheduler's lock: the loop reads every ready connection into
	// arena, then handles what it read (handleReady).
	arena   []byte
	used    int         // bytes of arena holding this turn's reads
	ready   []*loopConn // connections read this turn, in read order
	msgs    []loopMsg   // their complete requests, decoded
	newJobs []*job      // jobs to persist once the lock is released
	others  []*session  // connections others' requests wrote to (release)

	// Out of file descriptors, the loop takes the listener out of its
	// epoll set until acceptResume, backing off like Serve does.
	acceptPaused  bool
	acceptBackoff time.Duration
	acceptResume  time.Time

	stopOnce sync.Once
}

const (
	// loopReadSize is the most one read takes from a connection.
	loopReadSize = 64 << 10
	// loopArenaSize bounds what one turn reads before handling it, and so
	// how long the loop holds the scheduler's lock at a time.
	loopArenaSize = 256 << 10
	// loopMinRead: with less arena left, the turn so far is handled first.
	loopMinRead = 16 << 10
)

func (s *Server) serveLoop(l *net.TCPListener) error {
	f, err := l.File() // a dup; the listener keeps its own descriptor
	if err != nil {
		return fmt.Errorf("event loop: listener descriptor: %w", err)
	}
	lfd := int(f.Fd())
	// f must stay open as long as lfd is used; keep it referenced.
	defer f.Close()
	if err := syscall.SetNonblock(lfd, true); err != nil {
		return fmt.Errorf("event loop: %w", err)
	}
	n := s.cfg.EventLoops
	if n <= 0 {
		n = 1
	}
	var loops []*eventLoop
	defer func() {
		for _, l := range loops {
			l.closeFDs()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := newEventLoop(s, lfd)
		if err != nil {
			return err
		}
		loops = append(loops, l)
	}
	for _, l := range loops {
		l.group = loops
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.loops = append(s.loops, loops...)
	s.connWG.Add(len(loops))
	s.mu.Unlock()
	errs := make(chan error, len(loops))
	for _, l := range loops {
		go func() {
			defer s.connWG.Done()
			errs <- l.run()
		}()
	}
	var first error
	for range loops {
		if err := <-errs; err != nil && first == nil {
			first = err
			for _, l := range loops {
				l.stop()
			}
		}
	}
	return first
}

// newEventLoop makes a loop that accepts from lfd. Every loop watches the
// listener with EPOLLEXCLUSIVE, so the kernel wakes one of them for new
// connections; that loop takes every waiting one and places each on the
// loop that serves the fewest (place), which serves it from then on.
func newEventLoop(s *Server, lfd int) (*eventLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("event loop: epoll: %w", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("event loop: eventfd: %w", err)
	}
	l := &eventLoop{s: s, epfd: epfd, lfd: lfd, wakefd: wfd, conns: map[int]*loopConn{}, arena: make([]byte, loopArenaSize)}
	watch := []unix.EpollEvent{
		{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(lfd)},
		{Events: unix.EPOLLIN, Fd: int32(l.wakefd)},
	}
	for i := range watch {
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, int(watch[i].Fd), &watch[i]); err != nil {
			l.closeFDs()
			return nil, fmt.Errorf("event loop: watch: %w", err)
		}
	}
	return l, nil
}

// stop makes run return (from any goroutine).
func (l *eventLoop) stop() {
	l.stopOnce.Do(func() {
		l.stopping.Store(true)
		l.wake()
	})
}

// wake makes the loop look at its wakefd: stop, or connections handed.
func (l *eventLoop) wake() {
	one := [8]byte{1}
	syscall.Write(l.wakefd, one[:])
}

// closeFDs closes the loop's own descriptors, once, after run has returned
// (or for a loop that never ran).
func (l *eventLoop) closeFDs() {
	syscall.Close(l.wakefd)
	syscall.Close(l.epfd)
}

func (l *eventLoop) run() error {
	// The loop owns an OS thread for its epoll_wait, as gearmand's thread
	// does; handlers still run on it and may wake other goroutines.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	events := make([]unix.EpollEvent, 256)
	busyPoll := l.s.cfg.BusyPoll
	spin := false // whether the last sleep was shorter than busyPoll
	lastYield := time.Now()
	stopped := false
	for turn := 0; !stopped; turn++ {
		// A busy loop never returns to the Go scheduler. After 10ms the
		// runtime's monitor thread would preempt it with a signal and then
		// watch at a 20µs cadence for a while: in a drain, about 50 signals
		// and 1,000 more monitor wake-ups a second. Yielding every few
		// milliseconds spares both (3% less CPU per job, measured).
		if turn&255 == 0 && time.Since(lastYield) > loopYieldEvery {
			runtime.Gosched()
			lastYield = time.Now()
		}
		wait := -1 // milliseconds the blocking wait may sleep
		if l.acceptPaused {
			if err := l.resumeAcceptWhenDue(); err != nil {
				l.shutdown()
				return err
			}
			if l.acceptPaused {
				wait = max(0, int((time.Until(l.acceptResume)+time.Millisecond-1)/time.Millisecond))
			}
		}
		// Look first without blocking: a busy loop finds work at once.
		n, err := epollPoll(l.epfd, events)
		if n == 0 && err == nil && spin {
			n, err = l.busyPoll(events, busyPoll)
		}
		if n == 0 && err == nil {
			slept := time.Now()
			n, err = unix.EpollWait(l.epfd, events, wait)
			spin = time.Since(slept) < busyPoll
		}
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			l.shutdown()
			return fmt.Errorf("event loop: epoll_wait: %w", err)
		}
		for i := 0; i < n; i++ {
			ev := events[i]
			fd := int(ev.Fd)
			switch fd {
			case l.lfd:
				l.accept()
			case l.wakefd:
				var count [8]byte
				syscall.Read(l.wakefd, count[:]) // resets the eventfd
				stopped = l.stopping.Load()
				l.watchHanded()
			default:
				lc := l.conns[fd]
				if lc == nil {
					continue
				}
				if ev.Events&unix.EPOLLOUT != 0 {
					lc.writable()
				}
				if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 {
					l.readable(lc)
				}
			}
		}
		l.handleReady()
	}
	l.shutdown()
	return nil
}

// shutdown closes every connection the loop still has.
func (l *eventLoop) shutdown() {
	l.stopping.Store(true) // no more hand-overs (see handOver)
	l.watchHanded()
	for _, lc := range l.conns {
		l.drop(lc)
	}
}

func (l *eventLoop) accept() {
	for {
		nfd, sa, err := syscall.Accept4(l.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			switch {
			case errors.Is(err, syscall.EAGAIN):
				l.acceptBackoff = 0 // every waiting connection was taken
			case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.ECONNABORTED):
			case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
				l.pauseAccept(err)
			default:
				l.s.log.Warn("accept failed", "err", err)
			}
			return
		}
		syscall.SetsockoptInt(nfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		l.s.cfg.KeepAlive.setFD(nfd)
		s := l.s
		target := l.place()
		lc := &loopConn{fd: nfd, loop: target}
		lc.c = newSession(s, s.nextConnID.Add(1), sockaddrString(sa), lc)
		if !s.admit(lc.c, false) {
			target.count.Add(-1)
			syscall.Close(nfd)
			continue
		}
		if target != l && target.handOver(lc) {
			continue
		}
		l.watch(lc)
	}
}

// place picks the loop that serves the fewest connections (this one on a
// tie: no hand-over) and counts the new connection there. Accepting
// takes every waiting connection, so without this a burst of connections
// would all land on the loop the kernel woke first.
func (l *eventLoop) place() *eventLoop {
	best, least := l, l.count.Load()
	for _, o := range l.group {
		if n := o.count.Load(); n < least {
			best, least = o, n
		}
	}
	best.count.Add(1)
	return best
}

// handOver gives an accepted connection to loop l, which watches it at
// its next turn. It reports false if l is stopping.
func (l *eventLoop) handOver(lc *loopConn) bool {
	l.handMu.Lock()
	if l.stopping.Load() {
		l.handMu.Unlock()
		return false
	}
	l.handed = append(l.handed, lc)
	l.handMu.Unlock()
	l.wake()
	return true
}

// watchHanded watches the connections other loops handed over.
func (l *eventLoop) watchHanded() {
	l.handMu.Lock()
	handed := l.handed
	l.handed = nil
	l.handMu.Unlock()
	for _, lc := range handed {
		l.watch(lc)
	}
}

// watch adds a connection to the loop's epoll set and serves it.
func (l *eventLoop) watch(lc *loopConn) {
	o := lc.c.out
	o.mu.Lock()       // lc.loop and watching change together
	if lc.loop != l { // the loop it was placed on is stopping
		l.count.Add(1)
		lc.loop.count.Add(-1)
		lc.loop = l
	}
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if lc.watching {
		events |= unix.EPOLLOUT
	}
	o.mu.Unlock()
	l.conns[lc.fd] = lc
	ev := unix.EpollEvent{Events: events, Fd: int32(lc.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, lc.fd, &ev); err != nil {
		l.s.log.Warn("cannot watch a new connection", "err", err)
		l.drop(lc)
	}
}

// pauseAccept stops watching the listener for a while after accept ran
// out of file descriptors. The listener stays readable while connections
// wait, so watching it would turn the loop into a spin (or, with a sleep,
// stall every connection it serves); paused, the loop goes on serving
// its connections and the waiting ones stay in the kernel's backlog until
// a descriptor is free.
func (l *eventLoop) pauseAccept(cause error) {
	l.acceptBackoff = min(max(2*l.acceptBackoff, 5*time.Millisecond), time.Second)
	// It cannot fail: the listener is in the set whenever accept runs.
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil)
	l.acceptPaused = true
	l.acceptResume = time.Now().Add(l.acceptBackoff)
	l.s.log.Warn("accept failed; not accepting for a while", "err", cause, "backoff", l.acceptBackoff)
}

// resumeAcceptWhenDue watches the listener again once the pause is over.
func (l *eventLoop) resumeAcceptWhenDue() error {
	if time.Now().Before(l.acceptResume) {
		return nil
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(l.lfd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.lfd, &ev); err != nil {
		return fmt.Errorf("event loop: watch the listener again: %w", err)
	}
	l.acceptPaused = false
	return nil
}

// sockaddrString is a peer's address as net.Addr.String writes it.
func sockaddrString(sa syscall.Sockaddr) string {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *syscall.SockaddrInet6:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	}
	return "?"
}

// readable reads what the socket has (one read: the poll is level
// triggered, so anything left is reported again) into the turn's arena;
// handleReady handles it.
func (l *eventLoop) readable(lc *loopConn) {
	if lc.closeRequested.Load() {
		l.drop(lc)
		return
	}
	if len(l.arena)-l.used < loopMinRead {
		l.handleReady()
	}
	space := l.arena[l.used:min(len(l.arena), l.used+loopReadSize)]
	n, err := syscall.Read(lc.fd, space)
	if n > 0 {
		l.used += n
		data := space[:n]
		if len(lc.inbuf) > 0 {
			lc.inbuf = append(lc.inbuf, data...)
			data = lc.inbuf
		}
		lc.unread = data
		l.ready = append(l.ready, lc)
		return
	}
	if n == 0 || (err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR)) {
		l.drop(lc)
	}
}

// handleReady handles the complete requests the turn read. They are
// decoded first, outside the scheduler's lock. While the lock is free,
// each request is handled under its own acquisition, and what it sent to
// other connections (a WORK_COMPLETE to its client, a NOOP to a worker) is
// written at once: the peer does not wait for the rest of the turn. Once
// the lock is found taken (by another loop), the loop waits for it once
// for every request left in the turn: under contention each loop takes
// the lock once for many requests instead of once for each, and the loops
// do not queue up on it. A connection's own replies are written once its
// requests of the turn are handled. No I/O runs under the lock.
func (l *eventLoop) handleReady() {
	if len(l.ready) == 0 {
		return
	}
	s := l.s
	for _, lc := range l.ready {
		l.decode(lc)
	}
	next := 0 // the next request to handle, in l.msgs
	for i, lc := range l.ready {
		for end := next + lc.decoded; next < end; next++ {
			if !s.mu.TryLock() {
				s.metrics.lockWaits.Inc()
				s.mu.Lock()
				for ; next < len(l.msgs); next++ {
					l.handle(l.msgs[next])
				}
				l.release()
				for _, lc := range l.ready[i:] {
					l.finish(lc)
				}
				l.endTurn()
				return
			}
			l.handle(l.msgs[next])
			l.release()
		}
		l.finish(lc)
	}
	l.endTurn()
}

// handle handles one request with s.mu held.
func (l *eventLoop) handle(m loopMsg) {
	if m.lc.failed {
		return // closing: nothing after a fatal request is handled
	}
	if !l.s.handleHeld(m.lc.c, m.msg, m.err, &l.newJobs) {
		l.s.log.Debug("closing connection", "conn", m.lc.c.id, "peer", m.lc.c.peer, "err", m.err)
		m.lc.failed = true
	}
}

// release releases s.mu, persists the jobs the requests made and writes
// what they queued for other connections.
func (l *eventLoop) release() {
	s := l.s
	l.others = s.unlockTakingFlushes(l.others[:0])
	for _, j := range l.newJobs {
		s.persist(j)
	}
	clear(l.newJobs)
	l.newJobs = l.newJobs[:0]
	for _, c := range l.others {
		c.out.flush()
	}
	clear(l.others)
}

// finish ends lc's part of the turn: it is closed if a request said so;
// otherwise its incomplete request is kept and its replies are written.
func (l *eventLoop) finish(lc *loopConn) {
	if lc.failed || lc.badFrame {
		l.drop(lc)
		return
	}
	l.keepUnread(lc)
	lc.c.out.flush()
}

// endTurn makes the turn's buffers ready for the next.
func (l *eventLoop) endTurn() {
	clear(l.msgs)
	l.msgs = l.msgs[:0]
	clear(l.ready)
	l.ready = l.ready[:0]
	l.used = 0
}

// loopMsg is one request an event loop read: a message, or the error that
// decoding it gave.
type loopMsg struct {
	lc  *loopConn
	msg protocol.Message
	err error
}

// decode appends the complete requests at the start of lc.unread to the
// turn's messages and leaves the bytes of an incomplete last one in
// lc.unread. A frame that cannot be a request (badFrame) closes the
// connection once the requests before it are handled.
func (l *eventLoop) decode(lc *loopConn) {
	s := l.s
	data := lc.unread
	before := len(l.msgs)
	for len(data) > 0 {
		size, err := protocol.FrameSize(data, s.cfg.MaxPacket, maxAdminLine)
		if err != nil {
			s.log.Debug("closing connection", "conn", lc.c.id, "peer", lc.c.peer, "err", err)
			lc.badFrame = true
			data = nil
			break
		}
		if size == 0 {
			break
		}
		msg, err := protocol.DecodeRequest(data[:size])
		data = data[size:]
		s.countPacket(msg.Packet)
		l.msgs = append(l.msgs, loopMsg{lc: lc, msg: msg, err: err})
	}
	lc.unread = data
	lc.decoded = len(l.msgs) - before
}

// keepUnread keeps lc's incomplete request for the next read: the arena is
// reused for the next turn.
func (l *eventLoop) keepUnread(lc *loopConn) {
	rest := lc.unread
	lc.unread = nil
	switch {
	case len(rest) == 0 && cap(lc.inbuf) > loopReadSize:
		lc.inbuf = nil // do not hold a big packet's buffer
	case len(rest) == 0:
		lc.inbuf = lc.inbuf[:0]
	case len(rest) == len(lc.inbuf) && &rest[0] == &lc.inbuf[0]:
		// Nothing was consumed: the buffer already holds rest. (Copying
		// it onto itself after every read made a large request that
		// arrives in many reads cost quadratic time.)
	default:
		lc.inbuf = append(lc.inbuf[:0], rest...)
	}
	var held int64
	if cap(lc.inbuf) > loopReadSize {
		held = int64(cap(lc.inbuf)) // a large request still arriving
	}
	if !lc.c.out.setInbuf(held) {
		s := l.s
		s.metrics.memoryClosed.Inc()
		s.log.Warn("closing a connection whose request would take buffer memory far over --max-buffer-memory", "conn", lc.c.id, "peer", lc.c.peer, "held_bytes", held)
		l.drop(lc)
	}
}

// loopYieldEvery is how long a busy event loop runs before it yields to
// the Go scheduler: well under the runtime's 10ms preemption point.
const loopYieldEvery = 2 * time.Millisecond

// busyPoll polls for events for up to d, yielding the CPU between polls,
// and returns when some are ready or d has passed. Under load the next
// request is usually a few microseconds away, and sleeping for it costs
// more: the thread goes to sleep, and the client's write must wake it
// (on a VM, an inter-processor interrupt). The loop only polls like this
// while its sleeps are short, so an idle server does not spin.
func (l *eventLoop) busyPoll(events []unix.EpollEvent, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		// x/sys/unix has no sched_yield wrapper; the named number exists
		// on every Linux architecture.
		unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		if n, err := epollPoll(l.epfd, events); n > 0 || err != nil {
			return n, err
		}
	}
	return 0, nil
}

// epollPoll returns the ready events without waiting. unix.EpollWait
// picks the architecture's call (epoll_pwait on arm64, which has no
// epoll_wait).
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	return unix.EpollWait(epfd, events, 0)
}

// drop forgets and closes a connection.
func (l *eventLoop) drop(lc *loopConn) {
	delete(l.conns, lc.fd)
	l.count.Add(-1)
	l.s.closeSession(lc.c)
	lc.fdMu.Lock()
	if !lc.fdClosed {
		lc.fdClosed = true
		syscall.Close(lc.fd) // also leaves the epoll set
	}
	lc.fdMu.Unlock()
}

// loopConn is the event-loop transport of one connection: its loop reads
// it, and writes what the socket refused once it is writable again.
type loopConn struct {
	c    *session
	fd   int
	loop *eventLoop
	// fdMu keeps a write from another goroutine off a closed (and maybe
	// reused) descriptor; a leaf lock.
	fdMu     sync.RWMutex
	fdClosed bool
	// closeRequested: close was called from elsewhere; the loop drops the
	// connection at its next event.
	closeRequested atomic.Bool
	// watching: EPOLLOUT is requested; guarded by c.out.mu, so that the
	// flag and the poller's interest change together.
	watching bool

	// Loop goroutine only: inbuf holds an incomplete request between
	// reads; unread is what this turn read and has not handled. failed (a
	// request the server cannot answer) and badFrame (bytes that cannot
	// be a request) close the connection after the turn.
	inbuf    []byte
	unread   []byte
	decoded  int // how many of the turn's msgs are this connection's
	failed   bool
	badFrame bool
}

func (lc *loopConn) write(p []byte) (int, error) {
	lc.fdMu.RLock()
	defer lc.fdMu.RUnlock()
	if lc.fdClosed {
		return 0, net.ErrClosed
	}
	return writeSome(lc.fd, p)
}

// awaitWritable asks the loop to report when the socket takes output
// again; the loop then writes (writable).
func (lc *loopConn) awaitWritable() { lc.watchWritable(true) }

// writable writes the output the socket refused before; it asks for
// EPOLLOUT again if the socket is still full.
func (lc *loopConn) writable() {
	o := lc.c.out
	o.mu.Lock()
	lc.watchWritable(false)
	o.mu.Unlock()
	o.writeOut(lc.write, true)
}

// watchWritable adds or removes EPOLLOUT; c.out.mu must be held.
func (lc *loopConn) watchWritable(on bool) {
	if lc.watching == on {
		return
	}
	lc.watching = on
	lc.fdMu.RLock()
	defer lc.fdMu.RUnlock()
	if lc.fdClosed {
		return
	}
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if on {
		events |= unix.EPOLLOUT
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(lc.fd)}
	unix.EpollCtl(lc.loop.epfd, unix.EPOLL_CTL_MOD, lc.fd, &ev)
}

// close shuts the socket down from any goroutine; the loop sees it end
// and closes it.
func (lc *loopConn) close() {
	// Linux goes on delivering what the peer sends after a shutdown, so the
	// loop is also told to drop the connection at its next event instead
	// of reading on.
	lc.closeRequested.Store(true)
	lc.fdMu.RLock()
	if !lc.fdClosed {
		syscall.Shutdown(lc.fd, syscall.SHUT_RDWR)
	}
	lc.fdMu.RUnlock()
}
