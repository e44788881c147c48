package server

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/testkit"
	"github.com/gearbridge/gearbridge/protocol"
)

// A randomized soak of the scheduler: workers that complete, fail, throw,
// drop their connection, CANT_DO or RESET_ABILITIES in the middle of a job,
// and clients that submit at every priority, coalesce on shared unique IDs,
// submit in the background, ask for status and hang up before the result.
// Whatever happens, every background job ends, every client that waits hears
// exactly one end for its job with the right result, no worker is handed a
// function it no longer does, and nothing is left queued or running. It runs
// with GB_SOAK=1 (make soak); GB_SOAK_SEED replays one run's random
// choices (each goroutine's, not their interleaving).
func TestSoakScheduler(t *testing.T) {
	seed := testkit.SoakSeed(t)
	s, addr := startServer(t, Config{GrabHold: 10 * time.Millisecond})

	const (
		soak    = 5 * time.Second
		workers = 6
		clients = 4
	)
	var (
		stop        atomic.Bool // clients stop submitting
		clientsDone atomic.Bool // and have all returned: workers may leave
		bgEnded     sync.Map    // background job ID -> true once a worker ended it
		bgCount     atomic.Int64
		problems    = make(chan string, 100)
	)
	report := func(format string, args ...any) {
		select {
		case problems <- fmt.Sprintf(format, args...):
		default:
		}
	}

	var workersWG, clientsWG sync.WaitGroup
	for i := range workers {
		workersWG.Add(1)
		go func() {
			defer workersWG.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for !clientsDone.Load() || !drained(s) {
				soakWorker(addr, rng, &clientsDone, &bgEnded, report)
			}
		}()
	}
	var fgWaited, fgEnded atomic.Int64
	for i := range clients {
		clientsWG.Add(1)
		go func() {
			defer clientsWG.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(100+i)))
			for n := 0; !stop.Load(); n++ {
				soakClient(addr, rng, fmt.Sprintf("c%d-%d", i, n), &bgCount, &fgWaited, &fgEnded, report)
			}
		}()
	}
	time.Sleep(soak) // the length of the soak, not a wait for readiness
	stop.Store(true)
	clientsWG.Wait() // a client may submit once more after stop: its job must still run
	clientsDone.Store(true)
	workersWG.Wait()
	close(problems)
	for p := range problems {
		t.Error(p)
	}
	missing := 0
	for n := range bgCount.Load() {
		if _, ok := bgEnded.Load(fmt.Sprintf("bg-%d", n)); !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d background jobs never ended", missing, bgCount.Load())
	}
	if fgWaited.Load() != fgEnded.Load() {
		t.Errorf("%d foreground clients waited, %d heard an end", fgWaited.Load(), fgEnded.Load())
	}
	for _, f := range s.Snapshot().Functions {
		if f.Total != 0 || f.Running != 0 {
			t.Errorf("left behind: %+v", f)
		}
	}
	// Every worker has hung up: no function may still count a held GRAB.
	waitFor(t, "every held GRAB to be forgotten", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, f := range s.functions {
			if f.held != 0 || len(f.workers) != 0 {
				return false
			}
		}
		return true
	})
	t.Logf("background jobs %d, foreground waits %d", bgCount.Load(), fgWaited.Load())
}

// drained reports whether no job is queued or running.
func drained(s *Server) bool {
	for _, f := range s.Snapshot().Functions {
		if f.Total != 0 {
			return false
		}
	}
	return true
}

var soakFunctions = []string{"soak-a", "soak-b"}

// soakConn is one connection with a response reader and a deadline per read.
type soakConn struct {
	nc net.Conn
	r  *protocol.Reader
}

func dialSoak(addr string) (*soakConn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &soakConn{nc: nc, r: protocol.NewResponseReader(nc, 1<<20)}, nil
}

func (c *soakConn) send(typ protocol.Type, args ...string) error {
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	_, err := c.nc.Write(protocol.AppendRequest(nil, typ, b...))
	return err
}

func (c *soakConn) read(within time.Duration) (*protocol.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(within))
	return c.r.ReadPacket()
}

// soakWorker runs one worker connection until it chooses to drop it, or
// until the soak is over and nothing is left to do.
func soakWorker(addr string, rng *rand.Rand, stop *atomic.Bool, bgEnded *sync.Map, report func(string, ...any)) {
	c, err := dialSoak(addr)
	if err != nil {
		report("worker dial: %v", err)
		time.Sleep(10 * time.Millisecond)
		return
	}
	defer c.nc.Close()
	can := map[string]bool{}
	for _, fn := range soakFunctions {
		c.send(protocol.CanDo, fn)
		can[fn] = true
	}
	idle := 0
	for {
		if stop.Load() && idle > 20 {
			return // nothing came for a while after the soak: let the loop check
		}
		if err := c.send(protocol.GrabJobUniq); err != nil {
			report("worker send: %v", err)
			return
		}
		p, err := c.read(5 * time.Second)
		for err == nil && p.Type == protocol.Noop {
			p, err = c.read(5 * time.Second)
		}
		if err != nil {
			report("worker read: %v", err)
			return
		}
		switch p.Type {
		case protocol.NoJob:
			idle++
			// An idle worker takes its functions back, so that no job
			// waits long for a worker that does it.
			for _, fn := range soakFunctions {
				if !can[fn] {
					c.send(protocol.CanDo, fn)
					can[fn] = true
				}
			}
			c.send(protocol.PreSleep)
			if q, err := c.read(50 * time.Millisecond); err == nil && q.Type != protocol.Noop {
				report("worker got %v while asleep", q.Type)
				return
			} else if err != nil && !isTimeout(err) {
				report("worker read: %v", err)
				return
			}
			continue
		case protocol.JobAssignUniq:
		default:
			report("worker got %v for a GRAB", p.Type)
			return
		}
		idle = 0
		handle, fn, unique, payload := string(p.Args[0]), string(p.Args[1]), string(p.Args[2]), string(p.Args[3])
		if !can[fn] {
			report("worker handed %s, which it no longer does", fn)
		}
		if payload != "p-"+unique {
			report("job %s carries payload %q", unique, payload)
		}
		bg := strings.HasPrefix(unique, "bg-")
		switch k := rng.IntN(100); {
		case k < 60:
			if rng.IntN(2) == 0 {
				c.send(protocol.WorkStatus, handle, "1", "2")
			}
			c.send(protocol.WorkComplete, handle, "r:"+payload)
			if bg {
				bgEnded.Store(unique, true)
			}
		case k < 68:
			c.send(protocol.WorkFail, handle)
			if bg {
				bgEnded.Store(unique, true)
			}
		case k < 76:
			c.send(protocol.WorkException, handle, "boom")
			if bg {
				bgEnded.Store(unique, true)
			}
		case k < 86:
			return // drop the connection: the job goes back to the queue
		case k < 93:
			c.send(protocol.CantDo, fn) // the job goes back to the queue
			can[fn] = false
			if rng.IntN(2) == 0 {
				c.send(protocol.CanDo, fn)
				can[fn] = true
			}
		default:
			c.send(protocol.ResetAbilities) // the job goes back to the queue
			clear(can)
			for _, f := range soakFunctions {
				if rng.IntN(2) == 0 {
					c.send(protocol.CanDo, f)
					can[f] = true
				}
			}
		}
		if len(can) == 0 || !can[soakFunctions[0]] && !can[soakFunctions[1]] {
			fn := soakFunctions[rng.IntN(len(soakFunctions))]
			c.send(protocol.CanDo, fn)
			can[fn] = true
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// soakClient submits one job and, for a foreground job, usually waits for
// its end.
func soakClient(addr string, rng *rand.Rand, id string, bgCount, waited, ended *atomic.Int64, report func(string, ...any)) {
	c, err := dialSoak(addr)
	if err != nil {
		report("client dial: %v", err)
		return
	}
	defer c.nc.Close()
	fn := soakFunctions[rng.IntN(len(soakFunctions))]
	if rng.IntN(3) == 0 {
		unique := fmt.Sprintf("bg-%d", bgCount.Add(1)-1)
		c.send(protocol.SubmitJobBg, fn, unique, "p-"+unique)
		if p, err := c.read(5 * time.Second); err != nil || p.Type != protocol.JobCreated {
			report("background submit: %v %v", p, err)
		}
		return
	}
	unique := id
	if rng.IntN(3) == 0 {
		unique = fmt.Sprintf("shared-%d", rng.IntN(5)) // coalesces with other clients
	}
	typ := []protocol.Type{protocol.SubmitJob, protocol.SubmitJobHigh, protocol.SubmitJobLow}[rng.IntN(3)]
	c.send(typ, fn, unique, "p-"+unique)
	p, err := c.read(5 * time.Second)
	if err != nil || p.Type != protocol.JobCreated {
		report("submit: %v %v", p, err)
		return
	}
	handle := string(p.Args[0])
	if rng.IntN(10) == 0 {
		return // hang up before the result
	}
	statusAsked := rng.IntN(4) == 0
	if statusAsked {
		c.send(protocol.GetStatus, handle)
	}
	waited.Add(1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := c.read(time.Until(deadline))
		if err != nil {
			report("client %s: no end for %s: %v", id, unique, err)
			return
		}
		if p.Type == protocol.StatusRes && statusAsked {
			statusAsked = false
			continue
		}
		if p.Type == protocol.WorkStatus {
			continue
		}
		if string(p.Args[0]) != handle {
			report("client %s: %v for another job", id, p.Type)
			return
		}
		switch p.Type {
		case protocol.WorkComplete:
			if got := string(p.Args[1]); got != "r:p-"+unique {
				report("client %s: result %q for %s", id, got, unique)
			}
		case protocol.WorkFail:
		default:
			report("client %s: unexpected %v", id, p.Type)
			return
		}
		ended.Add(1)
		// Exactly one end: nothing more comes for this job (but the answer
		// to GET_STATUS, which the job may have overtaken).
		q, err := c.read(20 * time.Millisecond)
		if err == nil && q.Type == protocol.StatusRes && statusAsked {
			q, err = c.read(20 * time.Millisecond)
		}
		if err == nil {
			report("client %s: %v after the end", id, q.Type)
		}
		return
	}
}
