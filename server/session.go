package server

import (
	"net"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// session is one client, worker or admin connection. A connection may be
// all three at once (node-gearman does this).
type session struct {
	srv    *Server
	id     uint64
	peer   string // remote address, host and port
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

	// out is the connection's output path, over its transport.
	out *output
}

const (
	// flushEvery bounds how much output one batch of pipelined requests
	// builds up before it is written.
	flushEvery = 256 << 10
)

// newSession is a connection's state over transport t. peer is the
// remote address, host and port.
func newSession(srv *Server, id uint64, peer string, t transport) *session {
	remote := peer
	if host, _, err := net.SplitHostPort(peer); err == nil {
		remote = host
	}
	c := &session{
		srv:       srv,
		id:        id,
		peer:      peer,
		remote:    remote,
		clientID:  "-",
		abilities: map[*function]*ability{},
		running:   map[*job]struct{}{},
		attached:  map[*job]struct{}{},
	}
	c.out = &output{srv: srv, c: c, t: t}
	return c
}

// queue adds data to c's output. other is true when c is not the
// connection whose request is being handled: its output is written when
// s.mu is released (Server.unlock). s.mu must be held.
func (c *session) queue(data []byte, other bool) {
	if c.out.queue(data) && other && !c.flushQueued {
		c.flushQueued = true
		c.srv.toFlush = append(c.srv.toFlush, c)
	}
}

// closeConn closes the connection, from any goroutine.
func (c *session) closeConn() { c.out.t.close() }
