package server

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/protocol"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestForegroundJobForwardsEveryWorkPacket(t *testing.T) {
	_, addr := startServer(t, Config{})
	w := worker(t, addr, "rev")
	c := dial(t, addr)
	h := c.submit(protocol.SubmitJob, "rev", "u1", "abc")
	if h != "H:test:1" {
		t.Fatalf("handle %q", h)
	}
	got := w.grab()
	if want := []string{h, "rev", "u1", "abc"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("assign %q, want %q", got, want)
	}
	w.send(protocol.WorkStatus, h, "1", "2")
	w.send(protocol.WorkData, h, "d\x00ata")
	w.send(protocol.WorkWarning, h, "warn")
	w.send(protocol.WorkComplete, h, "cba")
	if got := c.recv(protocol.WorkStatus); got[1] != "1" || got[2] != "2" {
		t.Fatalf("status %q", got)
	}
	if got := c.recv(protocol.WorkData); got[1] != "d\x00ata" {
		t.Fatalf("data %q", got)
	}
	c.recv(protocol.WorkWarning)
	if got := c.recv(protocol.WorkComplete); got[0] != h || got[1] != "cba" {
		t.Fatalf("complete %q", got)
	}
	// The job is gone: its status is unknown and a second result is refused.
	c.send(protocol.GetStatus, h)
	if got := c.recv(protocol.StatusRes); got[1] != "0" {
		t.Fatalf("status after completion %q", got)
	}
	w.send(protocol.WorkComplete, h, "again")
	if got := w.recv(protocol.Error); got[0] != "JOB_NOT_FOUND" || got[1] != errWorkNotFound {
		t.Fatalf("error %q", got)
	}
}

func TestCoalescingByUnique(t *testing.T) {
	_, addr := startServer(t, Config{})
	c1, c2, c3 := dial(t, addr), dial(t, addr), dial(t, addr)
	h1 := c1.submit(protocol.SubmitJob, "f", "same", "one")
	h2 := c2.submit(protocol.SubmitJob, "f", "same", "two")
	if h1 != h2 {
		t.Fatalf("same unique gave %q and %q", h1, h2)
	}
	if h := c3.submit(protocol.SubmitJob, "g", "same", "x"); h == h1 {
		t.Fatal("same unique under another function coalesced")
	}
	if a, b := c3.submit(protocol.SubmitJobBg, "f", "", "x"), c3.submit(protocol.SubmitJobBg, "f", "", "x"); a == b {
		t.Fatal("empty uniques coalesced")
	}
	if a, b := c3.submit(protocol.SubmitJobBg, "f", "-", "payload"), c3.submit(protocol.SubmitJobBg, "f", "-", "payload"); a != b {
		t.Fatal(`unique "-" did not coalesce by payload`)
	}
	if a, b := c3.submit(protocol.SubmitJobBg, "f", "-", ""), c3.submit(protocol.SubmitJobBg, "f", "-", ""); a == b {
		t.Fatal(`unique "-" with an empty payload coalesced`)
	}

	w := worker(t, addr, "f")
	got := w.grab()
	if got[0] != h1 || got[3] != "one" {
		t.Fatalf("the first submit's data should win, got %q", got)
	}
	c1.send(protocol.GetStatusUnique, "same")
	if got := c1.recv(protocol.StatusResUnique); fmt.Sprint(got) != fmt.Sprint([]string{"same", "1", "1", "0", "0", "2"}) {
		t.Fatalf("status by unique %q", got)
	}
	w.send(protocol.WorkComplete, h1, "r")
	c1.recv(protocol.WorkComplete)
	c2.recv(protocol.WorkComplete)
	// After completion the same unique makes a new job.
	if h := c1.submit(protocol.SubmitJob, "f", "same", "three"); h == h1 {
		t.Fatal("finished job's unique still coalesced")
	}
}

func TestPriorityIsGlobalAcrossFunctions(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	low := c.submit(protocol.SubmitJobLowBg, "a", "", "")
	normal := c.submit(protocol.SubmitJobBg, "a", "", "")
	high := c.submit(protocol.SubmitJobHighBg, "b", "", "")
	normal2 := c.submit(protocol.SubmitJobBg, "b", "", "")
	w := worker(t, addr, "b", "a")
	for _, want := range []string{high, normal, normal2, low} {
		got := w.grab()
		if got[0] != want {
			t.Fatalf("grabbed %s, want %s", got[0], want)
		}
		w.send(protocol.WorkComplete, got[0], "")
	}
	w.send(protocol.GrabJob)
	w.recv(protocol.NoJob)
}

func TestOneNoopPerJobAmongManySleepers(t *testing.T) {
	s, addr := startServer(t, Config{})
	const sleepers = 50
	workers := make([]*client, sleepers)
	for i := range workers {
		workers[i] = worker(t, addr, "f")
		workers[i].send(protocol.PreSleep)
		workers[i].expectNothing()
	}
	c := dial(t, addr)
	c.submit(protocol.SubmitJobBg, "f", "", "1")
	c.submit(protocol.SubmitJobBg, "f", "", "2")
	if n := counterValue(t, s.metrics.noops); n != 2 {
		t.Fatalf("%v NOOPs for 2 jobs and %d sleepers", n, sleepers)
	}
	// The two woken workers each get a job.
	woken := 0
	for _, w := range workers {
		w.send(protocol.GrabJobUniq)
	}
	for _, w := range workers {
		w.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		p, err := w.r.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		switch p.Type {
		case protocol.Noop:
			woken++
			if p, err := w.r.ReadPacket(); err != nil || (p.Type != protocol.JobAssignUniq && p.Type != protocol.NoJob) {
				t.Fatalf("after NOOP: %v %v", p, err)
			}
		case protocol.JobAssignUniq, protocol.NoJob:
		default:
			t.Fatalf("unexpected %s", p.Type)
		}
	}
	if woken != 2 {
		t.Fatalf("%d workers woken, want 2", woken)
	}
}

func TestPreSleepWithWaitingJobGetsNoop(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	c.submit(protocol.SubmitJobBg, "f", "", "")
	w := worker(t, addr, "f")
	w.send(protocol.PreSleep)
	w.recv(protocol.Noop)
}

func TestRequeueOnDisconnectAndRetryLimit(t *testing.T) {
	_, addr := startServer(t, Config{JobRetries: 2})
	c := dial(t, addr)
	h := c.submit(protocol.SubmitJob, "f", "u", "x")
	h2 := c.submit(protocol.SubmitJobBg, "f", "", "y")

	w1 := worker(t, addr, "f")
	if got := w1.grab(); got[0] != h {
		t.Fatalf("got %q", got)
	}
	w1.nc.Close()

	// Requeued to the tail: the next grab returns the other job first.
	w2 := worker(t, addr, "f")
	waitFor(t, "requeue", func() bool { return strings.Contains(c.admin("status"), "f\t2\t0\t1") })
	if got := w2.grab(); got[0] != h2 {
		t.Fatalf("requeued job should go to the tail, got %q", got)
	}
	if got := w2.grab(); got[0] != h {
		t.Fatalf("got %q", got)
	}
	// A second lost worker uses up the retries: the client hears WORK_FAIL.
	w2.send(protocol.CantDo, "f")
	if got := c.recv(protocol.WorkFail); got[0] != h {
		t.Fatalf("fail %q", got)
	}
}

func TestCanDoTimeoutRequeues(t *testing.T) {
	var fire func()
	var after time.Duration
	timeAfterFunc = func(d time.Duration, f func()) *time.Timer {
		after, fire = d, f
		return time.NewTimer(time.Hour)
	}
	t.Cleanup(func() { timeAfterFunc = time.AfterFunc })

	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	h := c.submit(protocol.SubmitJob, "slow", "", "x")
	w := dial(t, addr)
	w.send(protocol.CanDoTimeout, "slow", "7")
	w.grab()
	if after != 7*time.Second {
		t.Fatalf("timeout %v, want 7s (the value is in seconds)", after)
	}
	fire()
	w.send(protocol.WorkComplete, h, "late")
	w.expectNothing() // dropped: the job is no longer this worker's
	if got := w.grab(); got[0] != h {
		t.Fatalf("job not requeued: %q", got)
	}
}

func TestWorkExceptionOption(t *testing.T) {
	_, addr := startServer(t, Config{})
	plain, withOpt := dial(t, addr), dial(t, addr)
	withOpt.send(protocol.OptionReq, "exceptions")
	if got := withOpt.recv(protocol.OptionRes); got[0] != "exceptions" {
		t.Fatalf("option %q", got)
	}
	withOpt.send(protocol.OptionReq, "bogus")
	if got := withOpt.recv(protocol.Error); got[0] != "UNKNOWN_OPTION" {
		t.Fatalf("got %q", got)
	}
	h := plain.submit(protocol.SubmitJob, "f", "u", "")
	withOpt.submit(protocol.SubmitJob, "f", "u", "")
	w := worker(t, addr, "f")
	w.grab()
	w.send(protocol.WorkException, h, "boom")
	if got := withOpt.recv(protocol.WorkException); got[1] != "boom" {
		t.Fatalf("exception %q", got)
	}
	if got := plain.recv(protocol.WorkFail); len(got) != 1 || got[0] != h {
		t.Fatalf("fail %q", got)
	}
	plain.expectNothing() // and no second packet after it
}

// Perl's Gearman::Worker sends WORK_FAIL after its WORK_EXCEPTION for the
// same job, and dies on an ERROR reply. That one WORK_FAIL is taken
// silently; any other result for a job that is gone still gets the ERROR.
func TestWorkFailAfterOwnExceptionIsTakenSilently(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	h := c.submit(protocol.SubmitJob, "f", "", "")
	w := worker(t, addr, "f")
	w.grab()
	w.send(protocol.WorkException, h, "boom")
	w.send(protocol.WorkFail, h)
	if got := c.recv(protocol.WorkFail); got[0] != h {
		t.Fatalf("fail %q", got)
	}
	w.send(protocol.EchoReq, "after")
	if got := w.recv(protocol.EchoRes); got[0] != "after" { // no ERROR before it
		t.Fatalf("echo %q", got)
	}
	// One WORK_FAIL for the client, not two: w's echo shows both were handled.
	c.expectNothing()
	w.send(protocol.WorkFail, h) // a second one is an error again
	if got := w.recv(protocol.Error); got[0] != "JOB_NOT_FOUND" {
		t.Fatalf("got %q", got)
	}
	other := dial(t, addr)
	other.send(protocol.WorkFail, h) // so is another connection's
	if got := other.recv(protocol.Error); got[0] != "JOB_NOT_FOUND" {
		t.Fatalf("got %q", got)
	}
}

// A queue that drains from a large peak rebuilds its job maps; the jobs
// still queued stay known by handle and by unique ID.
func TestDrainedPeakKeepsTheJobsLeft(t *testing.T) {
	old := shrinkPeak
	t.Cleanup(func() { shrinkPeak = old }) // after the server's own cleanup
	shrinkPeak = 64
	s, addr := startServer(t, Config{})
	c := dial(t, addr)
	var handles []string
	for i := range 80 {
		handles = append(handles, c.submit(protocol.SubmitJobBg, "f", fmt.Sprintf("u%d", i), "x"))
	}
	w := worker(t, addr, "f")
	for i := range 76 {
		job := w.grab()
		if job[0] != handles[i] {
			t.Fatalf("grab %d: %q", i, job)
		}
		w.send(protocol.WorkComplete, job[0], "")
	}
	w.send(protocol.EchoReq, "sync")
	w.recv(protocol.EchoRes)
	s.mu.Lock()
	peak := s.jobsPeak
	s.mu.Unlock()
	if peak > 5 {
		t.Fatalf("peak %d: the maps were not rebuilt when 5 of 80 jobs were left", peak)
	}
	for i := 76; i < 80; i++ {
		c.send(protocol.GetStatus, handles[i])
		if got := c.recv(protocol.StatusRes); got[1] != "1" {
			t.Fatalf("status of job %d: %q", i, got)
		}
		if again := c.submit(protocol.SubmitJobBg, "f", fmt.Sprintf("u%d", i), "x"); again != handles[i] {
			t.Fatalf("job %d did not coalesce: %s, want %s", i, again, handles[i])
		}
	}
	for i := 76; i < 80; i++ {
		if job := w.grab(); job[0] != handles[i] {
			t.Fatalf("grab %d: %q", i, job)
		}
	}
}

// A held GRAB counts in each of the worker's functions until it ends, so
// that new jobs look for held workers only where there are some.
func TestHeldGrabIsCountedInEachFunction(t *testing.T) {
	s, addr := startServer(t, Config{GrabHold: time.Minute})
	held := func(fn string) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		if f := s.functions[fn]; f != nil {
			return f.held
		}
		return 0
	}
	w := worker(t, addr, "f", "g")
	w.send(protocol.GrabJob)
	waitFor(t, "the GRAB to be held", func() bool { return held("f") == 1 && held("g") == 1 })
	c := dial(t, addr)
	h := c.submit(protocol.SubmitJobBg, "g", "", "x")
	if got := w.recv(protocol.JobAssign); got[0] != h {
		t.Fatalf("assigned %q", got)
	}
	if held("f") != 0 || held("g") != 0 {
		t.Fatalf("after the assignment: f %d, g %d", held("f"), held("g"))
	}
	w.send(protocol.GrabJob)
	waitFor(t, "the second GRAB to be held", func() bool { return held("f") == 1 })
	w.nc.Close()
	waitFor(t, "the hang-up to end the hold", func() bool { return held("f") == 0 && held("g") == 0 })
}

func TestEpochJobWakesWorkerWhenDue(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s, addr := startServer(t, Config{Now: func() time.Time { return now }})
	w := worker(t, addr, "later")
	w.send(protocol.PreSleep)
	c := dial(t, addr)
	c.send(protocol.SubmitJobEpoch, "later", "", fmt.Sprint(now.Unix()+60), "x")
	h := c.recv(protocol.JobCreated)[0]
	w.expectNothing()
	if !strings.Contains(c.admin("status"), "later\t1\t0\t1") {
		t.Fatal("delayed job not listed in status")
	}
	s.mu.Lock()
	now = now.Add(time.Minute)
	s.mu.Unlock()
	s.releaseDue()
	w.recv(protocol.Noop)
	if got := w.grab(); got[0] != h {
		t.Fatalf("got %q", got)
	}
}

func TestRepliesWaitForCommitInOrder(t *testing.T) {
	fs := newFakeStore()
	_, addr := startServer(t, Config{Store: fs})
	c := dial(t, addr)
	// Pipelined: a submit whose commit is held, then an echo.
	c.send(protocol.SubmitJobBg, "f", "", "x")
	c.send(protocol.EchoReq, "after")
	<-fs.added
	other := dial(t, addr)
	other.expectNothing() // the server is still serving others
	fs.release()
	c.recv(protocol.JobCreated)
	if got := c.recv(protocol.EchoRes); got[0] != "after" {
		t.Fatalf("echo %q", got)
	}
}

func TestStoreFailureRefusesTheJob(t *testing.T) {
	fs := newFakeStore()
	fs.fail = errors.New("disk full")
	_, addr := startServer(t, Config{Store: fs})
	c := dial(t, addr)
	c.send(protocol.SubmitJob, "f", "u", "x")
	<-fs.added
	fs.release()
	if got := c.recv(protocol.Error); got[0] != "QUEUE_ERROR" {
		t.Fatalf("got %q", got)
	}
	if strings.Contains(c.admin("show jobs"), "H:") {
		t.Fatal("refused job is listed")
	}
	fs.fail = nil
	c.send(protocol.SubmitJob, "f", "u", "x")
	<-fs.added
	fs.release()
	c.recv(protocol.JobCreated)
}

func TestRestoreRunsJobsDetachedInOrder(t *testing.T) {
	fs := newFakeStore()
	fs.jobs = []*gearbridge.Job{
		{ID: 3, Handle: "H:old:3", Function: "f", Unique: "fg", Payload: []byte("a")},
		{ID: 5, Handle: "H:old:5", Function: "f", Background: true, Payload: []byte("b"), Attempts: 1},
	}
	fs.lastID = 9
	go func() {
		for range fs.added {
			fs.release()
		}
	}()
	_, addr := startServer(t, Config{Store: fs})
	c := dial(t, addr)
	// A client submitting the restored job's unique is attached to it.
	if h := c.submit(protocol.SubmitJob, "f", "fg", "ignored"); h != "H:old:3" {
		t.Fatalf("coalesced onto %q", h)
	}
	if h := c.submit(protocol.SubmitJobBg, "f", "", ""); h != "H:test:10" {
		t.Fatalf("handle counter not restored: %q", h)
	}
	w := worker(t, addr, "f")
	for _, want := range []string{"H:old:3", "H:old:5", "H:test:10"} {
		got := w.grab()
		if got[0] != want {
			t.Fatalf("grabbed %s, want %s", got[0], want)
		}
		w.send(protocol.WorkComplete, got[0], "done")
	}
	if got := c.recv(protocol.WorkComplete); got[0] != "H:old:3" {
		t.Fatalf("complete %q", got)
	}
}

func TestForegroundJobDroppedWhenItsClientLeaves(t *testing.T) {
	fs := newFakeStore()
	go func() {
		for range fs.added {
			fs.release()
		}
	}()
	_, addr := startServer(t, Config{Store: fs})
	c := dial(t, addr)
	c.submit(protocol.SubmitJob, "f", "", "x")
	c.nc.Close()
	a := dial(t, addr)
	waitFor(t, "drop", func() bool { return a.admin("status") == "f\t0\t0\t0\n.\n" })
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.removed) != 1 {
		t.Fatalf("store removes %v", fs.removed)
	}
}

func TestSlowReaderIsCutOff(t *testing.T) {
	_, addr := startServer(t, Config{MaxOutput: 1 << 20})
	c := dial(t, addr)
	h := c.submit(protocol.SubmitJob, "f", "", "")
	w := worker(t, addr, "f")
	w.grab()
	chunk := strings.Repeat("x", 64<<10)
	// The client never reads; the worker streams data until the server
	// gives up on the client.
	for i := 0; i < 200; i++ {
		w.send(protocol.WorkData, h, chunk)
	}
	w.expectNothing() // the worker is still served
	other := dial(t, addr)
	waitFor(t, "cut-off", func() bool { return strings.Count(other.admin("workers"), "\n") == 3 })
}

func TestInvalidCommandsKeepTheConnection(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	for _, typ := range []protocol.Type{5, protocol.Noop, protocol.JobCreated, protocol.AllYours, protocol.SubmitJobSched, protocol.StatusResUnique} {
		args := make([]string, typ.NumArgs())
		c.send(typ, args...)
		if got := c.recv(protocol.Error); got[0] != "INVALID_COMMAND" || got[1] != errInvalidCommand {
			t.Fatalf("%s: %q", typ, got)
		}
	}
	c.send(protocol.SubmitJob, "f", strings.Repeat("u", 65), "")
	if got := c.recv(protocol.Error); got[0] != "ARGUMENT_TOO_LARGE" {
		t.Fatalf("long unique: %q", got)
	}
	if h := c.submit(protocol.SubmitJobBg, "f", strings.Repeat("u", 64), ""); h == "" {
		t.Fatal("64-byte unique refused")
	}
	c.expectNothing()
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestWokenWorkerThatDoesNotGrabIsNotWaitedFor(t *testing.T) {
	var rewake func()
	timeAfterFunc = func(d time.Duration, f func()) *time.Timer {
		rewake = f
		return time.NewTimer(time.Hour)
	}
	t.Cleanup(func() { timeAfterFunc = time.AfterFunc })
	now := time.Unix(1_000_000, 0)
	s, addr := startServer(t, Config{Now: func() time.Time { return now }})

	// Registered one after the other (a round trip apart), so that the
	// order of the function's workers is known.
	var reluctant, willing *client
	for _, w := range []**client{&reluctant, &willing} {
		*w = worker(t, addr, "f")
		(*w).send(protocol.PreSleep)
		(*w).expectNothing()
	}
	c := dial(t, addr)
	h := c.submit(protocol.SubmitJobBg, "f", "", "")
	reluctant.recv(protocol.Noop) // the first registered sleeper is woken first
	willing.expectNothing()

	// Within the grace period nothing more happens...
	rewake()
	willing.expectNothing()
	// ...after it, the next sleeper is woken, once.
	s.mu.Lock()
	now = now.Add(wakeGrace)
	s.mu.Unlock()
	rewake()
	willing.recv(protocol.Noop)
	if got := willing.grab(); got[0] != h {
		t.Fatalf("got %q", got)
	}
	rewake()
	reluctant.expectNothing()
	willing.expectNothing()
}

func TestLateClientHearsTheLastDataAndStatus(t *testing.T) {
	_, addr := startServer(t, Config{})
	first := dial(t, addr)
	h := first.submit(protocol.SubmitJob, "build:x", "zuul-1", "{}")
	w := worker(t, addr, "build:x")
	w.grab()
	w.send(protocol.WorkData, h, `{"number":7}`)
	w.send(protocol.WorkStatus, h, "10", "100")
	first.recv(protocol.WorkData)
	first.recv(protocol.WorkStatus)

	// A client that attaches now (after a restart, say) learns the build
	// at once, then gets the rest like everyone else.
	late := dial(t, addr)
	if got := late.submit(protocol.SubmitJob, "build:x", "zuul-1", "{}"); got != h {
		t.Fatalf("attached to %s", got)
	}
	if got := late.recv(protocol.WorkData); got[1] != `{"number":7}` {
		t.Fatalf("replayed data %q", got)
	}
	if got := late.recv(protocol.WorkStatus); got[1] != "10" || got[2] != "100" {
		t.Fatalf("replayed status %q", got)
	}
	w.send(protocol.WorkComplete, h, "done")
	late.recv(protocol.WorkComplete)
	first.recv(protocol.WorkComplete)
}

func TestRestoreRulesForForegroundRetriesAndEpochs(t *testing.T) {
	now := time.Unix(2_000_000, 0)
	restored := func() *fakeStore {
		fs := newFakeStore()
		fs.jobs = []*gearbridge.Job{
			{ID: 1, Handle: "H:old:1", Function: "f", Payload: []byte("fg")},
			{ID: 2, Handle: "H:old:2", Function: "f", Background: true, Attempts: 3},
			{ID: 3, Handle: "H:old:3", Function: "f", Background: true, Epoch: now.Unix() + 60},
			{ID: 4, Handle: "H:old:4", Function: "f", Background: true},
		}
		fs.lastID = 4
		return fs
	}

	fs := restored()
	_, addr := startServer(t, Config{Store: fs, DropRestoredForeground: true, JobRetries: 3, Now: func() time.Time { return now }})
	a := dial(t, addr)
	// Dropped: the foreground job (as gearmand does) and the job that was
	// running at its third and last try. Kept: the epoch job, still
	// waiting, and the plain background job.
	if got := a.admin("show jobs"); got != "H:old:3\t0\t0\t1\nH:old:4\t0\t0\t1\n.\n" {
		t.Fatalf("show jobs %q", got)
	}
	fs.mu.Lock()
	removed := fmt.Sprint(fs.removed)
	fs.mu.Unlock()
	if removed != "[1 2]" {
		t.Fatalf("removed from the store: %s", removed)
	}
	w := worker(t, addr, "f")
	if got := w.grab(); got[0] != "H:old:4" {
		t.Fatalf("grabbed %q; the epoch job is not due", got)
	}
	w.send(protocol.GrabJobUniq)
	w.recv(protocol.NoJob)
}

// Column 4 of `show jobs` is per job, as gearmand's job_queued: 1 for
// background jobs and restored jobs (restored foreground ones included, as
// gearmand prints 1 for every job it replays), 0 for foreground jobs and
// for a cancelled running job.
func TestShowJobsQueuedColumnIsPerJob(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	fg := c.submit(protocol.SubmitJob, "f", "", "fg")
	bg := c.submit(protocol.SubmitJobBg, "f", "", "bg")
	c.submit(protocol.SubmitJobBg, "g", "", "queued bg")
	c.submit(protocol.SubmitJob, "g", "", "queued fg")
	w := worker(t, addr, "f")
	w.grab()
	w.grab()
	if got := c.admin("cancel job " + bg); got != "OK\n" {
		t.Fatalf("cancel %q", got)
	}
	want := fg + "\t0\t0\t0\n" + bg + "\t0\t1\t0\nH:test:3\t0\t0\t1\nH:test:4\t0\t0\t0\n.\n"
	if got := c.admin("show jobs"); got != want {
		t.Fatalf("show jobs %q, want %q", got, want)
	}

	fs := newFakeStore()
	fs.jobs = []*gearbridge.Job{
		{ID: 1, Handle: "H:old:1", Function: "f"},
		{ID: 2, Handle: "H:old:2", Function: "f", Background: true},
	}
	fs.lastID = 2
	_, addr = startServer(t, Config{Store: fs})
	if got := dial(t, addr).admin("show jobs"); got != "H:old:1\t0\t0\t1\nH:old:2\t0\t0\t1\n.\n" {
		t.Fatalf("restored: show jobs %q", got)
	}
}

func TestHeldGrabTakesTheNextJobDirectly(t *testing.T) {
	_, addr := startServer(t, Config{GrabHold: time.Hour})
	w := worker(t, addr, "f")
	w.send(protocol.GrabJobUniq) // nothing queued: held, not answered
	c := dial(t, addr)
	h := c.submit(protocol.SubmitJob, "f", "u", "x")
	if got := w.recv(protocol.JobAssignUniq); got[0] != h || got[2] != "u" {
		t.Fatalf("assigned %q", got)
	}
	// Anything else the worker sends first answers its held GRAB.
	w.send(protocol.GrabJob)
	w.send(protocol.EchoReq, "e")
	w.recv(protocol.NoJob)
	w.recv(protocol.EchoRes)
	// Without functions there is nothing to wait for.
	idle := dial(t, addr)
	idle.send(protocol.GrabJob)
	idle.recv(protocol.NoJob)
}

// The hold ends on the timer's clock, whatever the scheduler's clock (here
// frozen) says.
func TestHeldGrabIsAnsweredWhenTheHoldEnds(t *testing.T) {
	frozen := time.Unix(1_000_000, 0)
	_, addr := startServer(t, Config{GrabHold: 20 * time.Millisecond, Now: func() time.Time { return frozen }})
	w := worker(t, addr, "f")
	start := time.Now()
	w.send(protocol.GrabJobUniq)
	w.recv(protocol.NoJob)
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("NO_JOB after %v, before the hold ended", waited)
	}
}

// A worker may hold many jobs at once; its results are matched to the jobs
// it holds, in any order, and never to another worker's job.
func TestWorkerHoldingManyJobsCompletesThemInAnyOrder(t *testing.T) {
	_, addr := startServer(t, Config{})
	w, other := worker(t, addr, "f"), worker(t, addr, "f")
	c := dial(t, addr)
	const n = 6 // more than a worker's own list is searched for
	var handles []string
	for i := 0; i < 2*n; i++ {
		handles = append(handles, c.submit(protocol.SubmitJob, "f", fmt.Sprint("u", i), fmt.Sprint(i)))
	}
	for i := 0; i < 2*n; i++ {
		holder := w
		if i >= n {
			holder = other
		}
		if got := holder.grab(); got[0] != handles[i] {
			t.Fatalf("grab %d: %q, want %s", i, got, handles[i])
		}
	}
	notYours := func() {
		t.Helper()
		other.send(protocol.WorkComplete, handles[0], "not yours")
		if got := other.recv(protocol.Error); got[0] != "JOB_NOT_FOUND" {
			t.Fatalf("another worker's result: %q", got)
		}
	}
	notYours()
	for i := n - 1; i >= 0; i-- {
		w.send(protocol.WorkComplete, handles[i], fmt.Sprint("done", i))
		if got := c.recv(protocol.WorkComplete); got[0] != handles[i] || got[1] != fmt.Sprint("done", i) {
			t.Fatalf("complete %d: %q", i, got)
		}
		if i == 2 { // w is down to a few jobs, and so is other
			for j := n; j < 2*n-1; j++ {
				other.send(protocol.WorkComplete, handles[j], "ok")
				c.recv(protocol.WorkComplete)
			}
			notYours()
		}
	}
	w.send(protocol.WorkComplete, handles[0], "again")
	if got := w.recv(protocol.Error); got[0] != "JOB_NOT_FOUND" {
		t.Fatalf("second result: %q", got)
	}
}

// Every complete request is answered at once, even when the read that
// brought it also brought the first bytes of the next request: the reply
// must not wait for the rest of that one, which may never come. Each case
// writes complete requests and the start of another in one write and
// reads the replies; then it sends the rest and reads that reply too.
func TestCompleteRequestIsAnsweredWithoutWaitingForTheNext(t *testing.T) {
	echo := func(s string) []byte { return protocol.AppendRequest(nil, protocol.EchoReq, []byte(s)) }
	next := echo("next")
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name     string
		first    []byte   // complete requests and the start of one more
		want     []string // their replies: "echo DATA", or an admin line
		rest     []byte   // the rest of the last request
		wantRest string
	}{
		{"echo, then 5 bytes of a header", cat(echo("a"), next[:5]), []string{"echo a"}, next[5:], "echo next"},
		{"echo, then a header and part of its payload", cat(echo("a"), next[:protocol.HeaderSize+2]), []string{"echo a"}, next[protocol.HeaderSize+2:], "echo next"},
		{"admin line, then part of a line", []byte("status\nst"), []string{"."}, []byte("atus\n"), "."},
		{"echo, then part of an admin line", cat(echo("a"), []byte("st")), []string{"echo a"}, []byte("atus\r\n"), "."},
		{"admin line, then 5 bytes of a header", cat([]byte("status\r\n"), next[:5]), []string{"."}, next[5:], "echo next"},
		{"pipelined requests, then 5 bytes of a header", cat(echo("a"), []byte("status\n"), echo("b"), next[:5]), []string{"echo a", ".", "echo b"}, next[5:], "echo next"},
	}
	_, addr := startServer(t, Config{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			if _, err := c.nc.Write(tc.first); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.want {
				expectReply(t, c, want, "with the next request incomplete")
			}
			if _, err := c.nc.Write(tc.rest); err != nil {
				t.Fatal(err)
			}
			expectReply(t, c, tc.wantRest, "after the rest of the request")
		})
	}
}

// expectReply reads one reply, "echo DATA" (an ECHO_RES) or an admin line,
// within a few seconds.
func expectReply(t *testing.T, c *client, want, when string) {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if data, ok := strings.CutPrefix(want, "echo "); ok {
		p, err := c.r.ReadPacket()
		if err != nil {
			t.Fatalf("no ECHO_RES %q %s: %v", data, when, err)
		}
		if p.Type != protocol.EchoRes || string(p.Arg(0)) != data {
			t.Fatalf("got %s %q %s, want ECHO_RES %q", p.Type, p.Args, when, data)
		}
		return
	}
	line, err := c.r.ReadLine()
	if err != nil {
		t.Fatalf("no admin reply %q %s: %v", want, when, err)
	}
	if string(line) != want {
		t.Fatalf("admin reply %q %s, want %q", line, when, want)
	}
}
