package jenkinstest

import (
	"sort"
	"sync"
	"time"
)

// Clock is the emulator's source of time. Quiet periods, build durations,
// stop delays, fault delays and the left-item TTL all run on it, so a test
// with a FakeClock decides when time passes.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (real clock) or inside
	// FakeClock.Advance (fake clock) once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call; it reports whether the call was still pending.
	Stop() bool
}

// RealClock is the wall clock. It is the default.
type RealClock struct{}

func (RealClock) Now() time.Time { return time.Now() }

func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// FakeClock only moves when Advance is called. Timers due by the new time
// fire in due order, synchronously, from the goroutine calling Advance.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*fakeTimer
}

// NewFakeClock returns a FakeClock that starts at start, or at a fixed date
// if start is zero.
func NewFakeClock(start time.Time) *FakeClock {
	if start.IsZero() {
		start = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	return &FakeClock{now: start}
}

type fakeTimer struct {
	c    *FakeClock
	when time.Time
	seq  int
	f    func()
	done bool
}

func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *FakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, when: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	return true
}

// Advance moves the clock forward by d, firing every timer that falls due,
// including timers that those callbacks create within the window.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		t := c.nextDue(end)
		if t == nil {
			break
		}
		t.f()
	}
	c.mu.Lock()
	c.now = end
	c.mu.Unlock()
}

// nextDue pops the earliest live timer due by end and moves the clock to it.
func (c *FakeClock) nextDue(end time.Time) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := c.timers[:0]
	for _, t := range c.timers {
		if !t.done {
			live = append(live, t)
		}
	}
	c.timers = live
	sort.Slice(live, func(i, j int) bool {
		if !live[i].when.Equal(live[j].when) {
			return live[i].when.Before(live[j].when)
		}
		return live[i].seq < live[j].seq
	})
	if len(live) == 0 || live[0].when.After(end) {
		return nil
	}
	t := live[0]
	t.done = true
	if t.when.After(c.now) {
		c.now = t.when
	}
	return t
}

// Pending reports how many timers are waiting to fire.
func (c *FakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}
