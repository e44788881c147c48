package server

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/testkit"
	"github.com/gearbridge/gearbridge/protocol"
)

// A randomized soak of workers that stop reading with their socket open
// (a hung worker, a forked one whose parent keeps the socket): at a random
// moment, right after PRE_SLEEP, after its NOOP, or while its GRAB is held.
// Live workers only GRAB when woken, so a job that the server leaves with a
// silent worker is never found by polling. Every job must end while the
// silent sockets stay open, and no job may reach live workers twice. Runs
// with GB_SOAK=1 (make soak), with and without --grab-hold.
func TestSoakSilentWorkers(t *testing.T) {
	seed := testkit.SoakSeed(t)
	for _, hold := range []time.Duration{0, 250 * time.Millisecond} {
		t.Run(fmt.Sprintf("grab-hold=%v", hold), func(t *testing.T) {
			soakSilentWorkers(t, seed, hold)
		})
	}
}

func soakSilentWorkers(t *testing.T, seed uint64, hold time.Duration) {
	s, addr := startServer(t, Config{GrabHold: hold})
	const (
		soak       = 4 * time.Second
		live       = 3
		clients    = 2
		maxSilent  = 24
		jobTimeout = 15 * time.Second // far above the 500 ms re-wake bound, for a loaded machine
	)
	var (
		stop     atomic.Bool
		runs     sync.Map // unique -> *atomic.Int32: times a working worker got it
		problems = make(chan string, 100)
		silentN  atomic.Int32
	)
	report := func(format string, args ...any) {
		select {
		case problems <- fmt.Sprintf(format, args...):
		default:
		}
	}
	got := func(unique string) {
		n, _ := runs.LoadOrStore(unique, new(atomic.Int32))
		if n.(*atomic.Int32).Add(1) > 1 {
			report("job %s reached working workers twice", unique)
		}
	}

	var workersWG, silentWG, clientsWG sync.WaitGroup
	done := make(chan struct{}) // closes the silent workers' sockets at the end
	for i := range live {
		workersWG.Add(1)
		go func() {
			defer workersWG.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			silentWorker(s, addr, rng, -1, got, report, done)
		}()
	}
	silentWG.Add(1)
	go func() { // keeps starting workers that will go silent
		defer silentWG.Done()
		rng := rand.New(rand.NewPCG(seed, 1000))
		for !stop.Load() && silentN.Load() < maxSilent {
			silentN.Add(1)
			silentWG.Add(1)
			steps := rng.IntN(4)
			wrng := rand.New(rand.NewPCG(seed, uint64(2000+silentN.Load())))
			go func() {
				defer silentWG.Done()
				silentWorker(s, addr, wrng, steps, got, report, done)
			}()
			time.Sleep(time.Duration(50+rng.IntN(150)) * time.Millisecond) // pacing, not a wait
		}
	}()
	var submitted, ended atomic.Int64
	for i := range clients {
		clientsWG.Add(1)
		go func() {
			defer clientsWG.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(100+i)))
			for n := 0; !stop.Load(); n++ {
				unique := fmt.Sprintf("c%d-%d", i, n)
				c, err := dialSoak(addr)
				if err != nil {
					report("client dial: %v", err)
					return
				}
				typ := protocol.SubmitJob
				if rng.IntN(3) == 0 {
					typ = protocol.SubmitJobHigh
				}
				c.send(typ, "silent-f", unique, "p")
				p, err := c.read(5 * time.Second)
				if err != nil || p.Type != protocol.JobCreated {
					report("submit %s: %v %v", unique, p, err)
					c.nc.Close()
					return
				}
				submitted.Add(1)
				p, err = c.read(jobTimeout)
				switch {
				case err != nil:
					report("job %s never ended while silent workers kept their sockets: %v", unique, err)
				case p.Type != protocol.WorkComplete:
					report("job %s: %v", unique, p.Type)
				default:
					ended.Add(1)
				}
				c.nc.Close()
				if rng.IntN(4) == 0 {
					// Quiet spells, in which no new job wakes another
					// worker for one that waits.
					time.Sleep(time.Duration(rng.IntN(700)) * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(soak) // the length of the soak, not a wait for readiness
	stop.Store(true)
	clientsWG.Wait()
	close(done)
	workersWG.Wait()
	silentWG.Wait()
	close(problems)
	for p := range problems {
		t.Error(p)
	}
	if submitted.Load() == 0 || submitted.Load() != ended.Load() {
		t.Errorf("%d jobs submitted, %d ended", submitted.Load(), ended.Load())
	}
	t.Logf("jobs %d, silent workers %d, held assignments offered again %v",
		submitted.Load(), silentN.Load(), counterValue(t, s.metrics.unansweredAssignments))
}

// silentWorker works like a well-behaved worker that only grabs when
// woken, and after steps jobs (never, if steps < 0) stops reading at a
// random moment, keeping its socket open until done closes.
func silentWorker(s *Server, addr string, rng *rand.Rand, steps int, got func(string), report func(string, ...any), done <-chan struct{}) {
	c, err := dialSoak(addr)
	if err != nil {
		report("worker dial: %v", err)
		return
	}
	defer c.nc.Close()
	go func() { <-done; c.nc.Close() }()
	fail := func(what string, err error) {
		select {
		case <-done: // the soak is over
		default:
			report("worker %s: %v", what, err)
		}
	}
	goSilent := func() { <-done }
	wantSilent := func() bool { return steps == 0 && rng.IntN(3) == 0 }
	var sent uint64 // packets sent, to know when the server has read them all
	send := func(typ protocol.Type, args ...string) error {
		sent++
		return c.send(typ, args...)
	}
	send(protocol.CanDo, "silent-f")
	for {
		if err := send(protocol.GrabJobUniq); err != nil {
			fail("send", err)
			return
		}
		if steps == 0 && heldNow(s, c, sent) {
			goSilent() // a job that comes now is assigned into an unread socket
			return
		}
		p, err := c.read(time.Hour)
		for err == nil && p.Type == protocol.Noop {
			p, err = c.read(time.Hour)
		}
		if err != nil {
			fail("read", err)
			return
		}
		switch p.Type {
		case protocol.JobAssignUniq:
			got(string(p.Args[2]))
			send(protocol.WorkComplete, string(p.Args[0]), "r")
			if steps > 0 {
				steps--
			}
			continue
		case protocol.NoJob:
		default:
			report("worker got %v for a GRAB", p.Type)
			return
		}
		send(protocol.PreSleep)
		if wantSilent() {
			goSilent() // asleep: its NOOP will never be answered
			return
		}
		p, err = c.read(time.Hour)
		if err != nil {
			fail("read", err)
			return
		}
		if p.Type != protocol.Noop {
			report("worker got %v while asleep", p.Type)
			return
		}
		if wantSilent() {
			goSilent() // woken, but never grabs
			return
		}
	}
}

// heldNow waits until the server has handled the sent packets from c,
// the last a GRAB, and reports whether it holds that GRAB. Only then can a
// worker stop reading without taking a job the server handed it at once
// (which a worker that dies in the middle of a job keeps until its socket
// closes, as in gearmand).
func heldNow(s *Server, c *soakConn, sent uint64) bool {
	local := c.nc.LocalAddr().String()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		s.mu.Lock()
		for _, sc := range s.sessions {
			if sc.peer == local && sc.heard == sent {
				held := sc.held != 0
				s.mu.Unlock()
				return held
			}
		}
		s.mu.Unlock()
		time.Sleep(time.Millisecond) // polling the server's state
	}
	return false // not found: the worker reads on, and will see why
}
