package bridge

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// worker is one Jenkins executor's Gearman worker on one job server. Like
// the plugin's, it grabs a job only while its node's gate lets it, and
// runs one build at a time.
type worker struct {
	m      *master
	server string
	node   string // node name, "" for the built-in node
	id     string // <node>_exec-<i>, sent as SET_CLIENT_ID
	gate   *gate
	log    *slog.Logger

	mu      sync.Mutex
	want    []string      // the functions it should register, sorted
	changed chan struct{} // signalled when want changes
	stop    chan struct{} // closed to retire it (after its current build)
	once    sync.Once
}

func newWorker(m *master, server, node, id string, g *gate) *worker {
	return &worker{
		m: m, server: server, node: node, id: id, gate: g,
		log:     m.log.With("worker", id, "server", server),
		changed: make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
}

// setFunctions changes what the worker registers; it applies the change
// between builds, never during one (CANT_DO of a running job's function
// would make the server take the job back).
func (w *worker) setFunctions(fns []string) {
	w.mu.Lock()
	same := slices.Equal(w.want, fns)
	w.want = fns
	w.mu.Unlock()
	if !same {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

func (w *worker) functions() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.want
}

func (w *worker) retire() { w.once.Do(func() { close(w.stop) }) }

// run keeps a connection to the job server until ctx ends or the worker
// is retired, reconnecting with backoff.
func (w *worker) run(ctx context.Context) {
	bo := backoff{max: 10 * time.Second}
	failing := false
	for ctx.Err() == nil {
		select {
		case <-w.stop:
			return
		default:
		}
		conn, err := dialGear(ctx, w.server, w.m.gearTLS)
		if err == nil {
			if failing {
				w.log.Info("connected to the gearman server again")
			}
			failing = false
			bo.reset()
			err = w.session(ctx, conn)
			conn.close()
			if ctx.Err() != nil || errors.Is(err, errStopped) {
				return
			}
		}
		if !failing {
			w.log.Warn("gearman server connection lost; reconnecting", "err", err)
			failing = true
		}
		select {
		case <-w.stop:
			return
		default:
		}
		sleepCtx(ctx, bo.next())
	}
}

// session is one connection's life: register, then grab while the gate
// allows, run builds, sleep. The worker holds one of its node's gate slots
// only while its GRAB is outstanding (and then for the build it got): a
// worker asleep on one job server must not keep the node's executors from
// the node's workers on the other servers.
func (w *worker) session(ctx context.Context, conn *gearConn) error {
	if err := conn.sendString(protocol.SetClientID, w.id); err != nil {
		return err
	}
	var registered []string
	first := true
	// wantGrab: a NOOP (or a (re)start, a change of functions, a finished
	// build) says there may be work. It stays set until a GRAB is sent, so
	// a wake that comes while the node has no free slot is acted on as soon
	// as one frees: the server sends one NOOP per sleep, never another.
	wantGrab := true
	for {
		select {
		case <-w.stop:
			// Retired while it ran a build: it must not grab another.
			return errStopped
		default:
		}
		if want := w.functions(); first || !slices.Equal(want, registered) {
			if err := register(conn, registered, want, first); err != nil {
				return err
			}
			registered, first, wantGrab = want, false, true
		}
		if len(registered) == 0 || !wantGrab {
			// Asleep, holding no slot: wait for the server's NOOP.
			if err := w.idle(ctx, conn, nil, &wantGrab); err != nil {
				return err
			}
			continue
		}
		// Take Changed before trying, so that a slot freed in between
		// wakes us instead of being missed.
		changed := w.gate.Changed()
		if !w.gate.tryReserve() {
			if err := w.idle(ctx, conn, changed, &wantGrab); err != nil {
				return err
			}
			continue
		}
		wantGrab = false
		job, err := w.grab(ctx, conn, &wantGrab)
		if err != nil {
			w.gate.release()
			return err
		}
		if job == nil {
			// NO_JOB: nothing is outstanding, so the slot goes back now.
			w.gate.release()
			if !wantGrab {
				if err := conn.send(protocol.PreSleep); err != nil {
					return err
				}
			}
			continue
		}
		// The reservation becomes the build's claim.
		if err := w.runJob(ctx, conn, job, registered); err != nil {
			return err
		}
		wantGrab = true
	}
}

// grab sends one GRAB and waits for its answer: a job, or nil for NO_JOB.
// The ECHO right behind the GRAB makes any server answer the GRAB at once:
// gearbridge may otherwise hold a GRAB that finds no job (--grab-hold) and
// assign a job that arrives later, when this node may no longer have the
// executor the gate counted on, and the slot would be held meanwhile.
func (w *worker) grab(ctx context.Context, conn *gearConn, wantGrab *bool) (*assignment, error) {
	if err := conn.sendPair(protocol.GrabJobUniq, protocol.EchoReq); err != nil {
		return nil, err
	}
	return w.awaitAssignment(ctx, conn, wantGrab)
}

// register sends the difference between two function sets, as the plugin
// does: RESET_ABILITIES first when nothing is registered yet or nothing
// should be, then CAN_DO for additions and CANT_DO for removals.
func register(conn *gearConn, old, want []string, first bool) error {
	if first || len(want) == 0 {
		if err := conn.send(protocol.ResetAbilities); err != nil {
			return err
		}
		old = nil
	}
	for _, f := range want {
		if !slices.Contains(old, f) {
			if err := conn.sendString(protocol.CanDo, f); err != nil {
				return err
			}
		}
	}
	for _, f := range old {
		if !slices.Contains(want, f) {
			if err := conn.sendString(protocol.CantDo, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// idle waits for something to do: a packet (a NOOP sets *wantGrab), a
// change of functions, the gate opening, retirement or the end.
func (w *worker) idle(ctx context.Context, conn *gearConn, gateChanged <-chan struct{}, wantGrab *bool) error {
	select {
	case p := <-conn.packets:
		return w.unsolicited(p, wantGrab)
	case <-conn.done:
		p, err := conn.next(ctx)
		if err != nil {
			return err
		}
		return w.unsolicited(p, wantGrab)
	case <-w.changed:
		return nil
	case <-gateChanged:
		return nil
	case <-w.stop:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *worker) unsolicited(p *protocol.Packet, wantGrab *bool) error {
	switch p.Type {
	case protocol.Noop:
		*wantGrab = true
	case protocol.Error:
		// The plugin closes the session on ERROR; so do we, to start clean.
		return serverError(p)
	case protocol.EchoRes:
		// the answer to the ECHO sent behind each GRAB
	default:
		w.log.Debug("ignoring unexpected packet", "type", p.Type.String())
	}
	return nil
}

type assignment struct {
	handle, function string
	unique           string // "" when the client gave none
	payload          []byte
}

// awaitAssignment reads the answer to a GRAB: a job, or nil for NO_JOB.
func (w *worker) awaitAssignment(ctx context.Context, conn *gearConn, wantGrab *bool) (*assignment, error) {
	for {
		p, err := conn.next(ctx)
		if err != nil {
			return nil, err
		}
		switch p.Type {
		case protocol.NoJob:
			return nil, nil
		case protocol.JobAssignUniq:
			return &assignment{handle: string(p.Args[0]), function: string(p.Args[1]), unique: string(p.Args[2]), payload: p.Args[3]}, nil
		case protocol.JobAssign:
			return &assignment{handle: string(p.Args[0]), function: string(p.Args[1]), payload: p.Args[2]}, nil
		default:
			if err := w.unsolicited(p, wantGrab); err != nil {
				return nil, err
			}
		}
	}
}
