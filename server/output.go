package server

import (
	"sync"
	"syscall"
)

// output is a connection's output path, the same on every transport: the
// replies queued in order, the buffer memory they and an incomplete
// request hold (buffers.go), and the writes. How bytes reach the socket
// is the transport's: goroutines (transport_goroutine.go) or an event
// loop (eventloop_linux.go).
//
// Locking: mu is a leaf. Nothing else is taken while it is held, except
// the transport's own leaf lock inside write, awaitWritable and close.
// Writes happen outside mu: a writer takes the bytes (writing), and
// whatever is queued meanwhile is left for it to write next.
type output struct {
	srv *Server
	c   *session // for logs and the close
	t   transport

	mu    sync.Mutex
	buf   []byte // queued, not yet written
	spare []byte // the last written buffer, for reuse
	// writing: a writer holds a taken buffer outside mu.
	writing bool
	// awaiting: the transport will write once the socket takes more
	// (awaitWritable); until then nobody else tries.
	awaiting bool
	// dead: closing, or cut off; nothing more is queued or accounted.
	dead bool

	// Buffer memory held (buffers.go): an incomplete request, unsent
	// replies. evicted: the governor chose this connection to close.
	bufIn, bufOut int64
	evicted       bool
}

// transport moves a connection's bytes; it is one of two: a goroutine pair
// per connection, or an event loop that serves many.
type transport interface {
	// write writes what the socket takes now, without blocking, and
	// reports an error only when the connection failed.
	write(p []byte) (int, error)
	// awaitWritable has the transport write the pending output
	// (output.writeOut) once the socket may take more. Called with
	// output.mu held, at most once until that write.
	awaitWritable()
	// close ends the connection; any goroutine may call it, any number of
	// times.
	close()
}

// queue appends data to the output. It reports false when the connection
// is closing or its output cap is exceeded, after which it is closed.
func (o *output) queue(data []byte) bool {
	o.mu.Lock()
	if o.dead {
		o.mu.Unlock()
		return false
	}
	if len(o.buf)+len(data) > o.srv.cfg.MaxOutput && len(o.buf) > 0 {
		o.dead = true
		pending := len(o.buf)
		o.mu.Unlock()
		o.srv.log.Warn("client does not read its replies; closing", "conn", o.c.id, "peer", o.c.remote, "pending_bytes", pending)
		o.t.close()
		return false
	}
	o.buf = append(o.buf, data...)
	o.queued(len(data))
	o.mu.Unlock()
	return true
}

// pending is how many bytes wait to be written.
func (o *output) pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.buf)
}

// flush writes pending output without blocking, on the caller's goroutine
// (no hand-off for the common small reply); what the socket refuses is
// left to the transport.
func (o *output) flush() { o.writeOut(o.t.write, false) }

// flushLater leaves the pending output to the transport's writer. A burst
// of outputs for one connection (a store batch's JOB_CREATED packets) then
// goes out in one write.
func (o *output) flushLater() {
	o.mu.Lock()
	if !o.dead && !o.awaiting && len(o.buf) > 0 {
		o.awaiting = true
		o.t.awaitWritable()
	}
	o.mu.Unlock()
}

// writeOut writes pending output with write until none is left or write
// takes less than it was given; the rest is then left to the transport.
// resumed is true when the transport calls it after awaitWritable.
func (o *output) writeOut(write func([]byte) (int, error), resumed bool) {
	o.mu.Lock()
	if resumed {
		o.awaiting = false
	}
	if o.writing || o.dead || o.awaiting {
		// Someone is writing, or the transport will: what was queued is
		// theirs to write.
		o.mu.Unlock()
		return
	}
	o.writing = true
	for len(o.buf) > 0 {
		b := o.buf
		o.buf, o.spare = o.spare[:0], nil
		o.mu.Unlock()
		n, err := write(b)
		o.mu.Lock()
		o.sent(n)
		if n < len(b) || err != nil {
			// Keep the rest first, before anything queued meanwhile (only
			// that is copied: a big backlog is not).
			o.buf = append(b[n:], o.buf...)
			o.writing = false
			if err != nil {
				o.dead = true
				o.mu.Unlock()
				o.t.close()
				return
			}
			o.awaiting = true
			o.t.awaitWritable()
			o.mu.Unlock()
			return
		}
		if cap(b) <= 1<<20 { // keep ordinary buffers, drop huge ones
			o.spare = b[:0]
		}
	}
	o.writing = false
	o.mu.Unlock()
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
