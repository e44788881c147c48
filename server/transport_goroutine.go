package server

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// goConn is the goroutine transport: a reader goroutine that handles the
// connection's requests, and a writer goroutine for the output that the
// socket did not take at once. It serves any net.Conn (TLS included), on
// every platform.
type goConn struct {
	nc   net.Conn
	raw  syscall.RawConn // for non-blocking writes; nil if not a socket
	out  *output
	wake chan struct{} // output waits for the writer
	done chan struct{} // closed by close: the writer ends
	once sync.Once
}

// writeTimeout is how long one write may make no progress before the peer
// is taken for dead: a client that never reads its replies is cut off
// instead of holding memory forever.
const writeTimeout = 60 * time.Second

func newGoConn(nc net.Conn) *goConn {
	t := &goConn{nc: nc, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if sc, ok := nc.(syscall.Conn); ok {
		t.raw, _ = sc.SyscallConn()
	}
	return t
}

// write is one non-blocking write(2) on the socket; a connection that is
// not a socket (TLS) takes nothing here and is written by writeLoop.
func (t *goConn) write(p []byte) (int, error) {
	if t.raw == nil {
		return 0, nil
	}
	var n int
	var werr error
	err := t.raw.Write(func(fd uintptr) bool {
		n, werr = writeSome(int(fd), p)
		return true // never wait: that is writeLoop's job
	})
	if err != nil {
		return n, err
	}
	return n, werr
}

func (t *goConn) awaitWritable() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *goConn) close() {
	t.once.Do(func() {
		t.nc.Close()
		close(t.done)
	})
}

// writeBlocking writes p, waiting for the socket up to writeTimeout.
func (t *goConn) writeBlocking(p []byte) (int, error) {
	t.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return t.nc.Write(p)
}

// writeLoop writes the output the socket did not take at once, and output
// that other connections' events leave to it (see Server.unlockToWriters).
func (t *goConn) writeLoop() {
	for {
		select {
		case <-t.wake:
			t.out.writeOut(t.writeBlocking, true)
		case <-t.done:
			return
		}
	}
}

// serve reads and handles c's requests until the connection ends.
func (t *goConn) serve(c *session) {
	go t.writeLoop()
	defer c.srv.closeSession(c)

	s := c.srv
	r := protocol.NewReader(t.nc, s.cfg.MaxPacket, maxAdminLine)
	r.SetBudget(inputBudget{c.out})
	var newJobs []*job
	for {
		msg, err := r.Read() // may block: outside the lock
		s.countPacket(msg.Packet)
		// One acquisition per request: what it sends to other connections
		// (a WORK_COMPLETE to its client) is written as soon as the lock
		// is released, not after the requests buffered behind it.
		s.mu.Lock()
		ok := s.handleHeld(c, msg, err, &newJobs)
		s.unlock()
		for _, j := range newJobs {
			s.persist(j)
		}
		clear(newJobs)
		newJobs = newJobs[:0]
		if !ok {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("closing connection", "conn", c.id, "peer", c.peer, "err", err)
			}
			return
		}
		// Replies to pipelined requests go out together, once the buffer
		// holds no further complete request: the next Read may block, and
		// the replies must not wait for bytes that may never come (a
		// buffer that holds only the start of the next request is not
		// empty, but Read still waits for the rest).
		if !r.Ready() || c.out.pending() > flushEvery {
			// Never block on our own replies: a client that does not read
			// them fills its output up to the cap and is cut off there,
			// while its requests are still read.
			c.out.flush()
		}
	}
}
