package server

import (
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// fakeClock drives the scheduler's clock (Config.Now) and its timers
// (timeAfterFunc): a timer fires only when the test moves the clock past
// it, and only if the server armed it. Timers cannot be stopped; the
// server's callbacks check their state when they run.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func newFakeClock(t *testing.T) *fakeClock {
	c := &fakeClock{now: time.Unix(1_000_000, 0)}
	timeAfterFunc = func(d time.Duration, f func()) *time.Timer {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), f: f})
		return time.NewTimer(time.Hour) // never fires; Stop works on it
	}
	t.Cleanup(func() { timeAfterFunc = time.AfterFunc })
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// advance moves the clock by d, firing in order every timer that falls due,
// including timers that those callbacks arm within the interval.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		next := -1
		for i, tm := range c.timers {
			if !tm.at.After(end) && (next < 0 || tm.at.Before(c.timers[next].at)) {
				next = i
			}
		}
		if next < 0 {
			c.now = end
			c.mu.Unlock()
			return
		}
		tm := c.timers[next]
		c.timers = append(c.timers[:next], c.timers[next+1:]...)
		if tm.at.After(c.now) {
			c.now = tm.at
		}
		c.mu.Unlock()
		tm.f()
	}
}

// A worker woken a second time shortly before the re-wake check must not
// keep the job from the others once its grace ends (issue 11, 1a): the
// check looks again when that grace is over.
func TestSilentWorkerWokenTwiceDoesNotStrandTheJob(t *testing.T) {
	clock := newFakeClock(t)
	_, addr := startServer(t, Config{Now: clock.Now})
	c := dial(t, addr)

	silent := worker(t, addr, "f")
	silent.send(protocol.PreSleep)
	silent.expectNothing()
	first := c.submit(protocol.SubmitJobBg, "f", "", "1")
	silent.recv(protocol.Noop)
	if got := silent.grab(); got[0] != first {
		t.Fatalf("grabbed %q", got)
	}
	silent.send(protocol.WorkComplete, first, "")
	silent.send(protocol.PreSleep)
	silent.expectNothing()

	other := worker(t, addr, "f")
	other.send(protocol.PreSleep)
	other.expectNothing()

	clock.advance(200 * time.Millisecond)
	second := c.submit(protocol.SubmitJobBg, "f", "", "2")
	silent.recv(protocol.Noop) // and from now on it reads nothing
	other.expectNothing()

	// The first check, 500 ms after the first wake: the second wake is
	// 300 ms old, within its grace.
	clock.advance(300 * time.Millisecond)
	other.expectNothing()
	// When that grace ends, the other sleeper is woken.
	clock.advance(wakeGrace - 300*time.Millisecond)
	other.recv(protocol.Noop)
	if got := other.grab(); got[0] != second {
		t.Fatalf("grabbed %q", got)
	}
}

// Woken again and again by new jobs, a silent worker never holds them up
// longer than one grace period each.
func TestSilentWorkerWokenManyTimesInARow(t *testing.T) {
	clock := newFakeClock(t)
	_, addr := startServer(t, Config{Now: clock.Now})
	c := dial(t, addr)
	silent := worker(t, addr, "f")
	for i := 0; i < 3; i++ {
		silent.send(protocol.PreSleep)
		silent.expectNothing()
		h := c.submit(protocol.SubmitJobBg, "f", "", "x")
		silent.recv(protocol.Noop)
		if got := silent.grab(); got[0] != h {
			t.Fatalf("round %d: grabbed %q", i, got)
		}
		silent.send(protocol.WorkComplete, h, "")
		clock.advance(150 * time.Millisecond)
	}
	silent.send(protocol.PreSleep)
	silent.expectNothing()
	other := worker(t, addr, "f")
	other.send(protocol.PreSleep)
	other.expectNothing()
	stranded := c.submit(protocol.SubmitJobBg, "f", "", "y")
	silent.recv(protocol.Noop) // its fourth wake in 450 ms; it says nothing more
	clock.advance(wakeGrace - time.Millisecond)
	other.expectNothing()
	clock.advance(time.Millisecond)
	other.recv(protocol.Noop)
	if got := other.grab(); got[0] != stranded {
		t.Fatalf("grabbed %q", got)
	}
}

// sleeperAndHeldGrab starts a server that holds GRABs for an hour, with a
// worker of f asleep (other) and one whose GRAB_JOB is held (held).
func sleeperAndHeldGrab(t *testing.T, clock *fakeClock) (s *Server, addr string, other, held *client) {
	t.Helper()
	s, addr = startServer(t, Config{Now: clock.Now, GrabHold: time.Hour})
	other = worker(t, addr, "f")
	other.send(protocol.PreSleep)
	other.expectNothing()
	held = worker(t, addr, "f")
	held.send(protocol.GrabJob)
	waitFor(t, "the GRAB to be held", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.functions["f"].held == 1
	})
	return s, addr, other, held
}

// A job given to a held GRAB whose worker then sends nothing is offered
// to the other workers after the grace period (issue 11, 1b); a late
// result from that worker is dropped without an ERROR.
func TestHeldGrabOfASilentWorkerDoesNotStrandTheJob(t *testing.T) {
	clock := newFakeClock(t)
	s, addr, other, silent := sleeperAndHeldGrab(t, clock)
	c := dial(t, addr)
	h := c.submit(protocol.SubmitJob, "f", "", "x")
	silent.recv(protocol.JobAssign) // in its socket; the worker never reads it
	other.expectNothing()
	clock.advance(wakeGrace - time.Millisecond)
	other.expectNothing()
	clock.advance(time.Millisecond)
	other.recv(protocol.Noop)
	if got := other.grab(); got[0] != h {
		t.Fatalf("grabbed %q", got)
	}
	other.send(protocol.WorkComplete, h, "done")
	if got := c.recv(protocol.WorkComplete); got[1] != "done" {
		t.Fatalf("client heard %q", got)
	}

	// The first worker was slow, not dead: its result comes too late and
	// is dropped, with no ERROR that would kill a Perl worker.
	silent.send(protocol.WorkStatus, h, "1", "2")
	silent.send(protocol.WorkComplete, h, "late")
	silent.expectNothing()
	if got := counterValue(t, s.metrics.lateResults); got != 2 {
		t.Fatalf("late packets counted: %v, want 2", got)
	}
	if got := counterValue(t, s.metrics.unansweredAssignments); got != 1 {
		t.Fatalf("unanswered assignments counted: %v, want 1", got)
	}
	// Dropped once: a result for the handle after that is an error again.
	silent.send(protocol.WorkComplete, h, "again")
	silent.recv(protocol.Error)
}

// A worker that says anything after a held JOB_ASSIGN is alive and keeps
// the job, however long it works.
func TestHeldGrabOfAWorkerThatSpeaksKeepsTheJob(t *testing.T) {
	for _, word := range []struct {
		name string
		send func(w, c *client, h string) // says it, and waits until it was heard
	}{
		{"WORK_STATUS", func(w, c *client, h string) { w.send(protocol.WorkStatus, h, "1", "10"); c.recv(protocol.WorkStatus) }},
		{"WORK_DATA", func(w, c *client, h string) { w.send(protocol.WorkData, h, "d"); c.recv(protocol.WorkData) }},
		{"ECHO_REQ", func(w, c *client, h string) { w.send(protocol.EchoReq, "alive"); w.recv(protocol.EchoRes) }},
	} {
		t.Run(word.name, func(t *testing.T) {
			clock := newFakeClock(t)
			_, addr, other, slow := sleeperAndHeldGrab(t, clock)
			c := dial(t, addr)
			h := c.submit(protocol.SubmitJob, "f", "", "x")
			slow.recv(protocol.JobAssign)
			word.send(slow, c, h)
			clock.advance(10 * wakeGrace)
			other.expectNothing()
			slow.send(protocol.WorkComplete, h, "mine")
			if got := c.recv(protocol.WorkComplete); got[1] != "mine" {
				t.Fatalf("client heard %q", got)
			}
			slow.expectNothing()
		})
	}
}

// A result that comes after CAN_DO_TIMEOUT took the job back is dropped
// silently (issue 11, 4): gearmand answers ERROR, on which Perl's
// Gearman::Worker dies.
func TestLateResultAfterCanDoTimeoutIsDropped(t *testing.T) {
	for _, last := range []protocol.Type{protocol.WorkComplete, protocol.WorkFail, protocol.WorkException} {
		t.Run(last.String(), func(t *testing.T) {
			clock := newFakeClock(t)
			s, addr := startServer(t, Config{Now: clock.Now})
			c := dial(t, addr)
			h := c.submit(protocol.SubmitJob, "slow", "", "x")
			late := dial(t, addr)
			late.send(protocol.CanDoTimeout, "slow", "7")
			late.grab()
			clock.advance(7 * time.Second)

			late.send(protocol.WorkData, h, "d")
			late.send(protocol.WorkStatus, h, "1", "2")
			switch last {
			case protocol.WorkFail:
				late.send(last, h)
			case protocol.WorkException:
				late.send(last, h, "boom")
				late.send(protocol.WorkFail, h) // as Perl's worker follows it
			default:
				late.send(last, h, "late")
			}
			late.expectNothing()
			if got := counterValue(t, s.metrics.lateResults); got != 3 {
				t.Fatalf("late packets counted: %v, want 3", got)
			}

			// The job runs again, for its client, on the next grab.
			if got := late.grab(); got[0] != h {
				t.Fatalf("job not requeued: %q", got)
			}
			late.send(protocol.WorkComplete, h, "second run")
			if got := c.recv(protocol.WorkComplete); got[1] != "second run" {
				t.Fatalf("client heard %q", got)
			}
		})
	}
}
