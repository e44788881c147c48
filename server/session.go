package server

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// session is one client, worker or admin connection. A connection may be
// all three at once (node-gearman does this).
type session struct {
	srv    *Server
	id     uint64
	nc     net.Conn
	remote string // peer IP, as the `workers` listing shows it

	// Guarded by Server.mu.
	clientID   string
	abilities  map[*function]*ability
	abilityLog []*function // registration order, newest last
	sleeping   bool
	noopSent   bool
	wokeAt     time.Time     // when the pending NOOP was sent
	held       protocol.Type // a GRAB variant waiting for a job (GrabHold), or 0
	holdUntil  time.Time
	holdTimer  *time.Timer
	exceptions bool
	// excepted: the job this worker last ended with WORK_EXCEPTION. Perl's
	// Gearman::Worker follows the exception with a WORK_FAIL for the same
	// job, and dies on gearmand's ERROR for it; that one WORK_FAIL is taken
	// silently.
	excepted string
	// takenBack: jobs taken back from this worker while it may still be
	// working on them (CAN_DO_TIMEOUT, a held assignment it never
	// answered). Its late WORK_* packets for them are dropped silently:
	// gearmand answers ERROR, on which Perl's Gearman::Worker dies.
	takenBack map[string]struct{}
	// heard counts the binary packets received: any packet after a
	// JOB_ASSIGN shows the worker is alive (see expectWordFrom).
	heard    uint64
	running  map[*job]struct{}
	attached map[*job]struct{} // jobs this session listens to
	replies  []*outEntry       // ordered replies behind a pending commit
	closed   bool
	// flushQueued: the session is in Server.toFlush.
	flushQueued bool

	raw syscall.RawConn // for non-blocking writes; nil if not a socket

	// Event-loop connections (loop != nil) have no reader or writer goroutine:
	// the loop reads them and writes what the socket refuses when it is
	// writable again. fdMu keeps a write from hitting a closed (and maybe
	// reused) descriptor.
	fd       int
	loop     *eventLoop
	fdMu     sync.RWMutex
	fdClosed bool
	inbuf    []byte
	// closeRequested: closeConn was called from elsewhere; the loop drops
	// the connection at its next event.
	closeRequested atomic.Bool
	outWatch       bool // EPOLLOUT requested; guarded by outMu

	// Output, guarded by outMu (a leaf lock: nothing else is taken under it).
	// bufIn and bufOut are the buffer memory this connection holds: an
	// incomplete request, unsent replies (buffers.go).
	bufIn, bufOut int64
	bufEvicted    bool
	outMu         sync.Mutex
	out           []byte
	spare         []byte
	writing       bool
	dead          bool
	wake          chan struct{}
	done          chan struct{}
}

const (
	// flushEvery bounds how much output one batch of pipelined requests
	// builds up before it is written.
	flushEvery = 256 << 10
	// writeTimeout is how long one write may make no progress before the
	// peer is taken for dead: a client that never reads its replies is cut
	// off instead of holding memory forever.
	writeTimeout = 60 * time.Second
)

func newSession(srv *Server, id uint64, nc net.Conn) *session {
	remote := nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	c := newSessionState(srv, id, remote)
	c.nc = nc
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	return c
}

// newSessionState is a connection's state before any transport is set.
func newSessionState(srv *Server, id uint64, remote string) *session {
	return &session{
		fd:        -1,
		srv:       srv,
		id:        id,
		remote:    remote,
		clientID:  "-",
		abilities: map[*function]*ability{},
		running:   map[*job]struct{}{},
		attached:  map[*job]struct{}{},
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
}

// serve reads and handles requests until the connection ends.
func (c *session) serve() {
	go c.writeLoop()
	defer c.srv.closeSession(c)

	r := protocol.NewReader(c.nc, c.srv.cfg.MaxPacket, maxAdminLine)
	r.SetBudget(inputBudget{c})
	for {
		msg, err := r.Read()
		if !c.srv.handleRead(c, msg, err) {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.srv.log.Debug("closing connection", "conn", c.id, "peer", c.nc.RemoteAddr(), "err", err)
			}
			return
		}
		// Replies to pipelined requests go out together, once the buffer
		// holds no further complete request: the next Read may block, and
		// the replies must not wait for bytes that may never come (a
		// buffer that holds only the start of the next request is not
		// empty, but Read still waits for the rest).
		if !r.Ready() || c.pendingOutput() > flushEvery {
			// Never block on our own replies: a client that does not read
			// them fills its output up to the cap and is cut off there,
			// while its requests are still read.
			c.tryFlush()
		}
	}
}

// queue appends data to the connection's output; s.mu must be held. A
// connection other than the one whose reader holds s.mu is written when
// s.mu is released (Server.unlock). It reports false when the output cap
// is exceeded, after which the connection is closed.
func (c *session) queue(data []byte, other bool) bool {
	c.outMu.Lock()
	if c.dead {
		c.outMu.Unlock()
		return false
	}
	if len(c.out)+len(data) > c.srv.cfg.MaxOutput && len(c.out) > 0 {
		c.dead = true
		c.outMu.Unlock()
		c.srv.log.Warn("client does not read its replies; closing", "conn", c.id, "peer", c.remote, "pending_bytes", len(c.out))
		c.closeConn()
		return false
	}
	c.out = append(c.out, data...)
	c.outputQueued(len(data))
	c.outMu.Unlock()
	if other && !c.flushQueued {
		c.flushQueued = true
		c.srv.toFlush = append(c.srv.toFlush, c)
	}
	return true
}

// tryFlush writes pending output without blocking: what the socket takes
// now goes at once, on the caller's goroutine (no hand-off to the writer
// goroutine for the common small packet); the rest is left to writeLoop.
func (c *session) tryFlush() {
	c.outMu.Lock()
	if c.writing || c.dead || c.outWatch {
		// Someone is writing, or the socket is full and the event loop
		// will write when it drains: nothing to do here.
		c.outMu.Unlock()
		return
	}
	c.writing = true
	// Loop: whoever found writing set left its output to us.
	for len(c.out) > 0 {
		buf := c.out
		c.out, c.spare = c.spare[:0], nil
		c.outMu.Unlock()
		n, err := c.writeNow(buf)
		c.outMu.Lock()
		c.outputSent(n)
		if n < len(buf) || err != nil {
			// Keep the rest first, before anything queued meanwhile (only
			// that is copied: a big backlog is not), and leave it to the
			// connection's writer.
			c.out = append(buf[n:], c.out...)
			c.writing = false
			if c.loop != nil {
				if err == nil {
					c.watchWritable(true)
				}
				c.outMu.Unlock()
				if err != nil {
					c.closeConn()
				}
				return
			}
			c.outMu.Unlock()
			c.flushLater()
			return
		}
		if cap(buf) <= 1<<20 {
			c.spare = buf[:0]
		}
	}
	c.writing = false
	c.outMu.Unlock()
}

// writeNow is one non-blocking write(2): it returns what the socket took.
func (c *session) writeNow(buf []byte) (int, error) {
	if c.loop != nil {
		c.fdMu.RLock()
		defer c.fdMu.RUnlock()
		if c.fdClosed {
			return 0, net.ErrClosed
		}
		return writeSome(c.fd, buf)
	}
	if c.raw == nil {
		return 0, nil // not a socket: leave it to writeLoop
	}
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		n, werr = writeSome(int(fd), buf)
		return true // never wait: that is writeLoop's job
	})
	if err != nil {
		return n, err
	}
	return n, werr
}

// writeSome is write(2) on a non-blocking socket: what it took, and an
// error only if the socket failed (a full one is not an error).
func writeSome(fd int, buf []byte) (int, error) {
	n, err := syscall.Write(fd, buf)
	if n < 0 {
		n = 0
	}
	if err == syscall.EAGAIN || err == syscall.EINTR {
		err = nil
	}
	return n, err
}

func (c *session) pendingOutput() int {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return len(c.out)
}

// flush writes pending output unless another goroutine is already writing
// (it will pick up what was added).
func (c *session) flush() error {
	c.outMu.Lock()
	if c.writing || c.dead {
		c.outMu.Unlock()
		return nil
	}
	c.writing = true
	for len(c.out) > 0 {
		buf := c.out
		c.out, c.spare = c.spare[:0], nil
		c.outMu.Unlock()
		c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		n, err := c.nc.Write(buf)
		c.outMu.Lock()
		c.outputSent(n)
		if cap(buf) <= 1<<20 { // keep ordinary buffers, drop huge ones
			c.spare = buf[:0]
		}
		if err != nil {
			c.writing, c.dead = false, true
			c.outMu.Unlock()
			c.closeConn()
			return err
		}
	}
	c.writing = false
	c.outMu.Unlock()
	return nil
}

// writeLoop writes output that other connections' events produce (NOOPs,
// forwarded WORK_* packets, commit acknowledgements).
func (c *session) writeLoop() {
	for {
		select {
		case <-c.wake:
			if c.flush() != nil {
				return
			}
		case <-c.done:
			return
		}
	}
}

// flushLater leaves the pending output to the connection's writer: its
// writer goroutine, or its event loop once the socket is writable.
func (c *session) flushLater() {
	if c.loop == nil {
		select {
		case c.wake <- struct{}{}:
		default:
		}
		return
	}
	c.outMu.Lock()
	if !c.dead {
		c.watchWritable(true)
	}
	c.outMu.Unlock()
}

// watchWritable asks the event loop (or stops asking) to report when the
// socket takes output again. outMu must be held, so that the flag and
// the poller's interest change together.
func (c *session) watchWritable(on bool) {
	if c.outWatch == on {
		return
	}
	c.outWatch = on
	c.loop.setWritableInterest(c, on)
}

// closeConn closes the connection from any goroutine. An event-loop
// socket is only shut down here; the loop sees it end and closes it.
func (c *session) closeConn() {
	if c.loop == nil {
		c.nc.Close()
		return
	}
	// Linux goes on delivering what the peer sends after a shutdown, so the
	// loop is also told to drop the connection at its next event instead
	// of reading on.
	c.closeRequested.Store(true)
	c.fdMu.RLock()
	if !c.fdClosed {
		syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	}
	c.fdMu.RUnlock()
}
