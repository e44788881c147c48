package integration

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	p "github.com/gearbridge/gearbridge/protocol"
)

// Durability tests: the real binary with --durability sync, many clients
// submitting background jobs, SIGKILL at several points, restarts, and a
// ledger of what was acknowledged and what was delivered to workers.

const durableFn = "durable"

// ledger records, across server lives, every submitted, acknowledged and
// delivered job, keyed by its unique ID.
type ledger struct {
	mu         sync.Mutex
	life       int                   // server incarnation, bumped at each restart
	sent       map[string]bool       // submitted (acknowledged or not)
	acked      map[string]string     // unique -> handle from JOB_CREATED
	handles    map[string]string     // handle -> unique, every JOB_CREATED ever
	deliveries map[string][]delivery // unique -> each JOB_ASSIGN_UNIQ
	problems   []string

	nAcked     atomic.Int64
	nDelivered atomic.Int64 // in the current life
}

type delivery struct {
	handle string
	life   int
}

func newLedger() *ledger {
	return &ledger{sent: map[string]bool{}, acked: map[string]string{},
		handles: map[string]string{}, deliveries: map[string][]delivery{}}
}

func (l *ledger) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 20 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

func (l *ledger) ack(unique, handle string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u, ok := l.handles[handle]; ok && len(l.problems) < 20 {
		l.problems = append(l.problems, fmt.Sprintf("handle %s reused: for %s and %s", handle, u, unique))
	}
	l.handles[handle] = unique
	l.acked[unique] = handle
	l.nAcked.Add(1)
}

func (l *ledger) deliver(handle, unique string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deliveries[unique] = append(l.deliveries[unique], delivery{handle, l.life})
	l.nDelivered.Add(1)
}

func (l *ledger) restarted() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.life++
	l.nDelivered.Store(0)
}

func payloadOf(unique string) string { return "payload of " + unique + strings.Repeat(".", 150) }

// gearConn is a raw connection that returns errors instead of failing the
// test: the server is killed under it, and it runs on its own goroutine.
type gearConn struct {
	nc net.Conn
	r  *p.Reader
}

func dialGear(addr string) (*gearConn, error) {
	nc, err := net.DialTimeout("tcp", addr, opTimeout)
	if err != nil {
		return nil, err
	}
	return &gearConn{nc: nc, r: p.NewResponseReader(nc, 1<<20)}, nil
}

func (c *gearConn) send(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(opTimeout))
	_, err := c.nc.Write(b)
	return err
}

// read reads one packet, waiting at most d, or without a deadline if d is 0.
func (c *gearConn) read(d time.Duration) (*p.Packet, error) {
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	c.nc.SetReadDeadline(deadline)
	return c.r.ReadPacket()
}

// closeOn closes the connection when stop is closed, which ends a read
// blocked on it. Call the returned func when done with the connection.
// A read deadline would do the same by polling, but a deadline that
// expires in the middle of a packet leaves the reader out of step.
func (c *gearConn) closeOn(stop <-chan struct{}) (done func()) {
	if stop == nil {
		return func() {}
	}
	ch := make(chan struct{})
	go func() {
		select {
		case <-stop:
			c.nc.Close()
		case <-ch:
		}
	}()
	return func() { close(ch) }
}

// unlessStopped returns err, or nil if stop is closed: once the load is
// told to stop, a broken connection is how it ends.
func unlessStopped(stop <-chan struct{}, err error) error {
	select {
	case <-stop:
		return nil
	default:
		return err
	}
}

func req(typ p.Type, args ...string) []byte {
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	return p.AppendRequest(nil, typ, bs...)
}

// submitter submits background jobs in pipelined groups of four until stop
// is closed (it returns nil) or the connection fails: the server was
// killed, or it sent no reply within patience.
func submitter(addr, prefix string, l *ledger, stop <-chan struct{}, patience time.Duration) error {
	c, err := dialGear(addr)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	const window = 4
	for i := 0; ; i += window {
		select {
		case <-stop:
			return nil
		default:
		}
		var out []byte
		uniques := make([]string, window)
		for k := range uniques {
			uniques[k] = fmt.Sprintf("%s-%d", prefix, i+k)
			out = append(out, req(p.SubmitJobBg, durableFn, uniques[k], payloadOf(uniques[k]))...)
		}
		l.mu.Lock()
		for _, u := range uniques {
			l.sent[u] = true
		}
		l.mu.Unlock()
		if err := c.send(out); err != nil {
			return unlessStopped(stop, err)
		}
		for _, u := range uniques { // replies come in submit order
			pk, err := c.read(patience)
			if err != nil {
				return unlessStopped(stop, fmt.Errorf("reply to %s: %w", u, err))
			}
			switch pk.Type {
			case p.JobCreated:
				l.ack(u, string(pk.Arg(0)))
			case p.Error:
				// Not acknowledged: allowed, but not expected here.
				l.problem("submit %s: ERROR %q", u, pk.Args)
			default:
				l.problem("submit %s: unexpected %s", u, pk.Type)
				return fmt.Errorf("submit %s: unexpected %s", u, pk.Type)
			}
		}
	}
}

// worker grabs jobs and completes them at once until stop is closed (it
// returns nil) or the connection fails. A sleeping worker may wait for work
// indefinitely, so with a stop channel its reads have no deadline: closing
// stop closes the connection. With drain set it returns at the first NO_JOB
// instead of sleeping, and reports whether it got there; then each reply
// must come within patience.
func worker(addr string, l *ledger, stop <-chan struct{}, drain bool, patience time.Duration) (drained bool, err error) {
	c, err := dialGear(addr)
	if err != nil {
		return false, err
	}
	defer c.nc.Close()
	defer c.closeOn(stop)()
	wait := time.Duration(0)
	if drain {
		wait = patience
	}
	if err := c.send(append(req(p.CanDo, durableFn), req(p.GrabJobUniq)...)); err != nil {
		return false, unlessStopped(stop, err)
	}
	for {
		pk, err := c.read(wait)
		if err != nil {
			return false, unlessStopped(stop, err)
		}
		var next []byte
		switch pk.Type {
		case p.JobAssignUniq:
			h, u, data := string(pk.Arg(0)), string(pk.Arg(2)), string(pk.Arg(3))
			l.deliver(h, u)
			if data != payloadOf(u) {
				l.problem("job %s (%s): payload %q", u, h, data)
			}
			next = append(req(p.WorkComplete, h, "done"), req(p.GrabJobUniq)...)
		case p.NoJob:
			if drain {
				return true, nil
			}
			next = req(p.PreSleep)
		case p.Noop:
			next = req(p.GrabJobUniq)
		default:
			return false, fmt.Errorf("worker: unexpected %s", pk.Type)
		}
		if err := c.send(next); err != nil {
			return false, unlessStopped(stop, err)
		}
	}
}

// patience bounds a wait for the load to make progress: two minutes, times
// GB_TEST_WAIT_SCALE, within the test's own deadline. Waits that could
// never end are caught otherwise (see waitFor), so it can be generous.
func patience(t *testing.T) time.Duration {
	t.Helper()
	return scaledWait(t, 2*time.Minute)
}

// load runs submitters and, optionally, a worker against s until Kill or
// Stop is called on it.
type load struct {
	l        *ledger
	stop     chan struct{}
	wg       sync.WaitGroup
	patience time.Duration

	mu   sync.Mutex
	quit error // why the first client that gave up did so
}

func startLoad(t *testing.T, s *Server, l *ledger, round string, submitters int, withWorker bool) *load {
	ld := &load{l: l, stop: make(chan struct{}), patience: patience(t)}
	for g := range submitters {
		name := fmt.Sprintf("%s-c%d", round, g)
		ld.client("submitter "+name, func() error {
			return submitter(s.Addr, name, l, ld.stop, ld.patience)
		})
	}
	if withWorker {
		ld.client(round+" worker", func() error {
			_, err := worker(s.Addr, l, ld.stop, false, ld.patience)
			return err
		})
	}
	return ld
}

func (ld *load) client(name string, run func() error) {
	ld.wg.Add(1)
	go func() {
		defer ld.wg.Done()
		err := run()
		if err == nil {
			select {
			case <-ld.stop:
				return
			default:
				err = errors.New("returned before the load was stopped")
			}
		}
		ld.mu.Lock()
		defer ld.mu.Unlock()
		if ld.quit == nil {
			ld.quit = fmt.Errorf("%s: %w", name, err)
		}
	}()
}

// waitFor polls cond until it holds. It fails at once if a client gave up
// first, since the load then may never get there, and after ld.patience.
// Before a kill no client has a reason to give up.
func (ld *load) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ld.patience)
	for !cond() {
		ld.mu.Lock()
		quit := ld.quit
		ld.mu.Unlock()
		switch {
		case quit != nil:
			t.Fatalf("waiting for %s (%d acks in all, %d deliveries in this life): %v",
				what, ld.l.nAcked.Load(), ld.l.nDelivered.Load(), quit)
		case time.Now().After(deadline):
			t.Fatalf("timed out after %v waiting for %s (%d acks in all, %d deliveries in this life)",
				ld.patience, what, ld.l.nAcked.Load(), ld.l.nDelivered.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// end stops the load and waits for every client goroutine.
func (ld *load) end() {
	close(ld.stop)
	ld.wg.Wait()
}

// drainAll takes every queued job with one worker and then checks that the
// server reports nothing left for the function.
func drainAll(t *testing.T, s *Server, l *ledger) {
	t.Helper()
	drained, err := worker(s.Addr, l, nil, true, patience(t))
	if !drained {
		t.Fatalf("drain: %v", err)
	}
	status := AdminOnce(t, s.Addr, "status\n")
	for _, line := range strings.Split(status, "\n") {
		if f := strings.Split(line, "\t"); len(f) == 4 && f[0] == durableFn && (f[1] != "0" || f[2] != "0") {
			t.Errorf("after drain, status: %q", line)
		}
	}
}

// queued returns how many jobs the server holds for durableFn, queued or
// running, as its admin status says.
func queued(t *testing.T, s *Server) int {
	t.Helper()
	status := AdminOnce(t, s.Addr, "status\n")
	for _, line := range strings.Split(status, "\n") {
		if f := strings.Split(line, "\t"); len(f) == 4 && f[0] == durableFn {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("status: %q", line)
			}
			return n
		}
	}
	return 0
}

// ensureBacklog makes at least n jobs queued for durableFn: with no worker
// running it submits the ones missing and then stops the submitters
// cleanly, with no kill. The jobs go in the ledger like any others.
func ensureBacklog(t *testing.T, s *Server, l *ledger, round string, n int) {
	t.Helper()
	have := queued(t, s)
	if have >= n {
		t.Logf("%s: %d jobs queued", round, have)
		return
	}
	ld := startLoad(t, s, l, round+"-backlog", 4, false)
	target := l.nAcked.Load() + int64(n-have)
	ld.waitFor(t, fmt.Sprintf("%d more jobs queued for %s", n-have, round), func() bool { return l.nAcked.Load() >= target })
	ld.end()
	after := queued(t, s)
	t.Logf("%s: %d jobs queued, %d after topping up", round, have, after)
	if after < n {
		t.Fatalf("%s: %d jobs queued after topping up, want at least %d", round, after, n)
	}
}

func TestDurability_CrashRestart(t *testing.T) {
	s := StartGearbridge(t, "--durability", "sync")
	l := newLedger()
	kills := 0
	// Each round runs some load, SIGKILLs the server at a different point,
	// and restarts it on the same file.
	rounds := []struct {
		name       string
		backlog    int // jobs queued before the round's load starts, at least
		submitters int
		worker     bool
		until      func() bool
	}{
		{"submit-only", 0, 16, false, func() bool { return l.nAcked.Load() >= 300 }},
		{"submit-and-work", 0, 16, true, func() bool { return l.nAcked.Load() >= 2000 && l.nDelivered.Load() >= 100 }},
		// The worker of the round before often keeps up with the
		// submitters and leaves fewer than 100 jobs queued; with nothing
		// submitted, this round would then wait for deliveries that
		// cannot come. The backlog makes the kill land mid-drain.
		{"work-only", 300, 0, true, func() bool { return l.nDelivered.Load() >= 100 }},
		{"submit-and-work-2", 0, 8, true, func() bool { return l.nAcked.Load() >= 4000 && l.nDelivered.Load() >= 100 }},
	}
	for _, r := range rounds {
		if r.backlog > 0 {
			ensureBacklog(t, s, l, r.name, r.backlog)
		}
		ld := startLoad(t, s, l, r.name, r.submitters, r.worker)
		ld.waitFor(t, r.name+" load", r.until)
		s.Kill()
		kills++
		ld.end()
		t.Logf("%s: killed after %d acks in all, %d deliveries in that life", r.name, l.nAcked.Load(), l.nDelivered.Load())
		l.restarted()
		s.Restart()
	}
	drainAll(t, s, l)
	s.Stop()
	checkLedger(t, l, kills)

	out, err := exec.Command(GearbridgeBinary(t), "check", "--db", filepath.Join(s.Dir, "gearbridge.db")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), " 0 jobs") {
		t.Errorf("gearbridge check after draining: %v\n%s", err, out)
	}
}

// checkLedger asserts the durability contract: every acknowledged job was
// delivered, with the handle it was acknowledged with; no job was delivered
// twice in one server life, nor more than once more per crash; nothing was
// delivered that was not submitted.
func checkLedger(t *testing.T, l *ledger, kills int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, msg := range l.problems {
		t.Error(msg)
	}
	for u, h := range l.acked {
		ds := l.deliveries[u]
		if len(ds) == 0 {
			t.Errorf("acknowledged job %s (%s) was never delivered", u, h)
			continue
		}
		for _, d := range ds {
			if d.handle != h {
				t.Errorf("job %s acknowledged as %s, delivered as %s in life %d", u, h, d.handle, d.life)
			}
		}
	}
	unacked := 0
	for u, ds := range l.deliveries {
		if !l.sent[u] {
			t.Errorf("delivered %s, which was never submitted", u)
		}
		if _, ok := l.acked[u]; !ok {
			unacked++ // committed, killed before JOB_CREATED went out: allowed
		}
		lives := map[int]bool{}
		for _, d := range ds {
			if lives[d.life] {
				t.Errorf("job %s delivered twice in life %d", u, d.life)
			}
			lives[d.life] = true
		}
		if len(ds) > 1+kills {
			t.Errorf("job %s delivered %d times with %d crashes", u, len(ds), kills)
		}
	}
	again := 0
	for _, ds := range l.deliveries {
		again += len(ds) - 1
	}
	t.Logf("%d submitted, %d acknowledged, %d delivered (%d again after a crash, %d never acknowledged), %d crashes",
		len(l.sent), len(l.acked), len(l.deliveries), again, unacked, kills)
	if len(l.acked) == 0 {
		t.Error("nothing was acknowledged")
	}
}

func TestDurability_BackupUnderLoad(t *testing.T) {
	s := StartGearbridge(t, "--durability", "sync")
	l := newLedger()
	ld := startLoad(t, s, l, "backup", 8, false)
	eventually(t, 30*time.Second, "first acks", func() bool { return l.nAcked.Load() >= 500 })

	l.mu.Lock()
	before := make(map[string]string, len(l.acked))
	for u, h := range l.acked {
		before[u] = h
	}
	l.mu.Unlock()
	dst := filepath.Join(t.TempDir(), "backup.db")
	cmd := exec.Command(GearbridgeBinary(t), "backup", "--server", "http://"+s.HTTPAddr, dst)
	out, err := cmd.CombinedOutput()
	if err != nil {
		ld.end()
		t.Fatalf("gearbridge backup: %v\n%s", err, out)
	}
	t.Logf("gearbridge backup:\n%s", out)
	if !strings.Contains(string(out), "backup: ") || !strings.Contains(string(out), "ok:") {
		t.Errorf("backup printed no progress or verdict:\n%s", out)
	}
	// The server kept accepting jobs during and after the backup.
	n := l.nAcked.Load()
	eventually(t, 10*time.Second, "acks after the backup", func() bool { return l.nAcked.Load() >= n+100 })
	ld.end()
	s.Stop()

	// The copy restores every job acknowledged before the backup began,
	// with the same handles, and nothing that was never submitted.
	r := StartGearbridge(t, "--durability", "sync", "--db", dst)
	restored := newLedger()
	drainAll(t, r, restored)
	for u, h := range before {
		ds := restored.deliveries[u]
		if len(ds) != 1 || ds[0].handle != h {
			t.Errorf("job %s (%s) acknowledged before the backup: restored as %v", u, h, ds)
		}
	}
	for u := range restored.deliveries {
		if !l.sent[u] {
			t.Errorf("backup holds %s, which was never submitted", u)
		}
	}
	for _, msg := range append(l.problems, restored.problems...) {
		t.Error(msg)
	}
	t.Logf("%d acknowledged before the backup, %d in the copy, %d acknowledged in all",
		len(before), len(restored.deliveries), len(l.acked))
}

func TestDurability_SecondServerOnSameFile(t *testing.T) {
	s := StartGearbridge(t, "--durability", "sync")
	db := filepath.Join(s.Dir, "gearbridge.db")
	start := time.Now()
	cmd := exec.Command(GearbridgeBinary(t), "serve", "--listen", "127.0.0.1", "--port", "0",
		"--http", "", "--durability", "sync", "--db", db, "--log-file", "stderr")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("second server on %s: %v (want a non-zero exit)\n%s", db, err, out)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("second server took %s to give up", el)
	}
	if !strings.Contains(string(out), db) || !strings.Contains(string(out), "in use") {
		t.Errorf("error should name %s and say it is in use:\n%s", db, out)
	}
	// The first server is unaffected.
	Dial(t, s.Addr).Barrier()
}
