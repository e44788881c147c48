package server

import (
	"errors"
	"net"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync/atomic"
	"time"
)

// Buffer memory is what connections hold for the server in bytes not yet
// handled or not yet sent: a large request that is still arriving, and
// replies that a client has not read. Each connection has its own caps
// (MaxPacket, MaxOutput); Config.MaxBufferMemory caps their sum, so that
// many connections at their caps cannot take the machine's memory. When
// the sum goes over, the connections holding the most are closed first
// (a governor goroutine picks them); well-behaved clients hold little and
// are never picked.
//
// Accounting: a connection's bufIn and bufOut are guarded by its
// output.mu, and every change to them goes to buffers.used as well.
// closeSession gives back what the connection still holds. Once an output
// is dead (closing, or cut off for not reading), takes and gives for it
// change nothing: what it held then is what closeSession gives back.
type buffers struct {
	limit int64 // 0: no limit
	used  atomic.Int64
	kick  chan struct{} // wakes the governor

	// governor goroutine only
	peak      int64
	lastFree  time.Time
	tight     bool  // the runtime's memory limit is ours (see tighten)
	userLimit int64 // the memory limit before (GOMEMLIMIT, or none)
}

// errOverBudget is returned to a reader that would take buffer memory far
// past the limit before the governor could act.
var errOverBudget = errors.New("buffer memory over --max-buffer-memory")

func newBuffers(limit int64) *buffers {
	return &buffers{limit: limit, kick: make(chan struct{}, 1)}
}

func (b *buffers) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// added notes that the total grew to total.
func (b *buffers) added(total int64) {
	if b.limit > 0 && total > b.limit/2 {
		b.wake()
	}
}

// hardLimit is where a reader is refused at once instead of waiting for the
// governor to close someone.
func (b *buffers) hardLimit() int64 { return b.limit }

// target is where the governor brings the total back to: a quarter below
// the limit, so that the garbage that buffers leave behind (a request's
// buffer grows by copies, replies by appends) fits under the limit too.
func (b *buffers) target() int64 { return b.limit - b.limit/4 }

// inputBudget is a connection's protocol.Budget for the payloads it reads.
type inputBudget struct{ o *output }

func (ib inputBudget) Take(n int) error {
	o, b := ib.o, ib.o.srv.buf
	o.mu.Lock()
	if o.dead {
		o.mu.Unlock()
		return net.ErrClosed
	}
	total := b.used.Add(int64(n))
	if b.limit > 0 && total > b.hardLimit() {
		b.used.Add(-int64(n))
		o.mu.Unlock()
		b.wake()
		return errOverBudget
	}
	o.bufIn += int64(n)
	o.mu.Unlock()
	b.added(total)
	return nil
}

func (ib inputBudget) Give(n int) {
	o := ib.o
	o.mu.Lock()
	if !o.dead {
		o.bufIn -= int64(n)
		o.srv.buf.used.Add(-int64(n))
	}
	o.mu.Unlock()
	if n >= 1<<20 {
		o.srv.buf.wake() // a peak may be over: see returnMemory
	}
}

// setInbuf accounts an event-loop connection's buffer for an incomplete
// request (held bytes: its capacity, or 0). It reports false when the
// connection must be closed for taking too much.
func (o *output) setInbuf(held int64) bool {
	b := o.srv.buf
	o.mu.Lock()
	if o.dead {
		o.mu.Unlock()
		return true
	}
	delta := held - o.bufIn
	total := b.used.Add(delta)
	if delta > 0 && b.limit > 0 && total > b.hardLimit() {
		b.used.Add(-delta)
		o.mu.Unlock()
		b.wake()
		return false
	}
	o.bufIn = held
	o.mu.Unlock()
	if delta > 0 {
		b.added(total)
	} else if delta <= -(1 << 20) {
		b.wake()
	}
	return true
}

// queued and sent account replies; mu must be held.
func (o *output) queued(n int) {
	if o.dead {
		return
	}
	o.bufOut += int64(n)
	o.srv.buf.added(o.srv.buf.used.Add(int64(n)))
}

func (o *output) sent(n int) {
	if o.dead || n == 0 {
		return
	}
	o.bufOut -= int64(n)
	o.srv.buf.used.Add(-int64(n))
}

// release marks the output dead and gives back all the buffer memory the
// connection holds; it is closing.
func (o *output) release() {
	o.mu.Lock()
	held := o.bufIn + o.bufOut
	o.srv.buf.used.Add(-held)
	o.bufIn, o.bufOut, o.dead = 0, 0, true
	o.mu.Unlock()
	if held >= 1<<20 {
		o.srv.buf.wake()
	}
}

// governBuffers runs until the server closes: it closes the connections
// that hold the most while the total is over the limit, and gives memory
// back to the system after a peak.
func (s *Server) governBuffers() {
	for {
		select {
		case <-s.buf.kick:
		case <-s.quit:
			return
		}
		s.tighten()
		s.evictOverLimit()
		s.returnMemory()
	}
}

// tighten makes the garbage collector keep the heap near what is live
// while buffers are over half the limit. Buffers churn (a request's
// buffer grows by copies, replies are appended), and with the default
// pacing the heap may grow to twice what is live before a collection: a
// limit on buffers alone would not bound the process. The runtime's soft
// memory limit is set to what the heap held apart from buffers, plus the
// buffer limit and some room, and given back (to GOMEMLIMIT, or none) once
// buffers are under a quarter of the limit: in normal operation the
// collector paces itself as usual.
func (s *Server) tighten() {
	b := s.buf
	if b.limit <= 0 {
		return
	}
	used := b.used.Load()
	switch {
	case used > b.limit/2 && !b.tight:
		// What the heap held apart from buffers at the last collection,
		// taken once, as the surge begins: later collections count the
		// buffers of connections being closed, no longer in used.
		sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
		rtmetrics.Read(sample)
		var live int64
		if sample[0].Value.Kind() == rtmetrics.KindUint64 {
			live = int64(sample[0].Value.Uint64())
		}
		base := max(0, live-used)
		b.userLimit = debug.SetMemoryLimit(-1)
		b.tight = true
		debug.SetMemoryLimit(min(b.userLimit, base+b.limit))
	case used < b.limit/4 && b.tight:
		debug.SetMemoryLimit(b.userLimit)
		b.tight = false
	}
}

// evictOverLimit closes the connections holding the most buffer memory
// until the rest fits under the target. Connections already closing count
// as freed: their memory goes back when they are gone.
func (s *Server) evictOverLimit() {
	b := s.buf
	evicted := false
	defer func() {
		if evicted && time.Since(b.lastFree) >= time.Second/4 {
			// Collect the closed connections' buffers now, not at the
			// collector's next turn: the process must stay near the limit.
			b.lastFree = time.Now()
			debug.FreeOSMemory()
		}
	}()
	for b.limit > 0 && b.used.Load() > b.target() {
		var victim *session
		var most, closing int64
		s.mu.Lock()
		for _, c := range s.sessions {
			c.out.mu.Lock()
			held, evicted := c.out.bufIn+c.out.bufOut, c.out.evicted
			c.out.mu.Unlock()
			if evicted {
				closing += held
			} else if held > most {
				victim, most = c, held
			}
		}
		s.mu.Unlock()
		total := b.used.Load()
		if victim == nil || total-closing <= b.target() {
			return
		}
		evicted = true
		victim.out.mu.Lock()
		victim.out.evicted = true
		victim.out.mu.Unlock()
		s.metrics.memoryClosed.Inc()
		s.log.Warn("closing the connection that holds the most buffer memory: the total is over --max-buffer-memory",
			"conn", victim.id, "peer", victim.remote, "held_bytes", most, "total_bytes", total, "limit_bytes", b.limit)
		victim.closeConn()
	}
}

// returnMemory gives freed buffer memory back to the system once the total
// has fallen to a quarter of a peak of 64 MiB or more: the Go heap keeps a
// peak's pages otherwise, for minutes.
func (s *Server) returnMemory() {
	b := s.buf
	used := b.used.Load()
	if used > b.peak {
		b.peak = used
		return
	}
	if b.peak < 64<<20 || used > b.peak/4 {
		return
	}
	if wait := time.Second - time.Since(b.lastFree); wait > 0 {
		time.AfterFunc(wait, b.wake) // not more than once a second
		return
	}
	b.peak = used
	b.lastFree = time.Now()
	debug.FreeOSMemory()
}
