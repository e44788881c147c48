package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/testkit"
	"github.com/gearbridge/gearbridge/protocol"
)

// A protocol-abuse soak (issue 14), on both transports: for
// GB_SOAK_DURATION (default 2m, `make soak`) abusers send random bytes,
// mutated valid packets, huge declared sizes, truncated packets, admin
// garbage, slowloris trickles and replies nobody reads, while a steady
// client and worker check that every round trip succeeds. Then the server
// restarts on the file it left and must serve again. Runs with GB_SOAK=1.
func TestSoakProtocolAbuse(t *testing.T) {
	seed := testkit.SoakSeed(t)
	duration := 2 * time.Minute
	if d := os.Getenv("GB_SOAK_DURATION"); d != "" {
		var err error
		if duration, err = time.ParseDuration(d); err != nil {
			t.Fatalf("GB_SOAK_DURATION: %v", err)
		}
	}
	t.Logf("%v per transport", duration)
	for _, transport := range []string{"event-loop", "goroutines"} {
		t.Run(transport, func(t *testing.T) {
			args := []string{"--durability", "sync", "--max-buffer-memory", "256MiB", "--max-packet", "16777216"}
			if transport == "goroutines" {
				args = append(args, "--event-loop=false")
			}
			abuseSoak(t, StartGearbridge(t, args...), seed, duration)
		})
	}
}

func abuseSoak(t *testing.T, s *Server, seed uint64, duration time.Duration) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var roundTrips atomic.Int64

	// The steady worker and client: a foreground job each round trip.
	steady := startSteady(s.Addr, &roundTrips)

	var attacks [8]atomic.Int64
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := rng.IntN(len(attacks))
				abuse(s.Addr, rng, k, stop)
				attacks[k].Add(1)
			}
		}()
	}
	timer := time.NewTimer(duration)
	select {
	case <-timer.C:
	case <-s.Exited():
		t.Fatalf("gearbridge exited during the soak:\n%s", s.output())
	}
	close(stop)
	wg.Wait()
	for _, err := range steady() {
		t.Errorf("well-behaved client: %v", err)
	}
	select {
	case <-s.Exited():
		t.Fatalf("gearbridge exited during the soak:\n%s", s.output())
	default:
	}
	counts := make([]int64, len(attacks))
	for i := range attacks {
		counts[i] = attacks[i].Load()
	}
	t.Logf("%d steady round trips; attacks by kind (random, mutated, huge, truncated, admin, slowloris, non-reader, vanishing) %v",
		roundTrips.Load(), counts)
	if roundTrips.Load() == 0 {
		t.Error("no steady round trip")
	}

	// Restart on the file the abuse left, and serve.
	s.Stop()
	s.Restart()
	var n atomic.Int64
	steady = startSteady(s.Addr, &n)
	eventually(t, 30*time.Second, "round trips after the restart", func() bool { return n.Load() >= 10 })
	for _, err := range steady() {
		t.Errorf("after the restart: %v", err)
	}
}

// startSteady starts the steady worker and client; the function it returns
// stops the client, then the worker, and returns their errors.
func startSteady(addr string, n *atomic.Int64) (stop func() []error) {
	stopClient, stopWorker := make(chan struct{}), make(chan struct{})
	clientErr, workerErr := make(chan error, 1), make(chan error, 1)
	go func() { workerErr <- steadyWorker(addr, stopWorker) }()
	go func() { clientErr <- steadyClient(addr, stopClient, n) }()
	return func() []error {
		var errs []error
		close(stopClient)
		if err := <-clientErr; err != nil {
			errs = append(errs, err)
		}
		close(stopWorker)
		if err := <-workerErr; err != nil {
			errs = append(errs, err)
		}
		return errs
	}
}

const steadyFn = "abuse-steady"

// steadyWorker does steadyFn jobs until stop; any error is a failure.
func steadyWorker(addr string, stop <-chan struct{}) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	go func() { <-stop; nc.Close() }()
	r := protocol.NewResponseReader(nc, 1<<20)
	send := func(typ protocol.Type, args ...[]byte) error {
		_, err := nc.Write(protocol.AppendRequest(nil, typ, args...))
		return err
	}
	stopped := func(err error) error {
		select {
		case <-stop:
			return nil
		default:
			return err
		}
	}
	if err := send(protocol.CanDo, []byte(steadyFn)); err != nil {
		return err
	}
	for {
		if err := send(protocol.GrabJobUniq); err != nil {
			return stopped(err)
		}
		p, err := r.ReadPacket()
		for err == nil && p.Type == protocol.Noop {
			p, err = r.ReadPacket()
		}
		if err != nil {
			return stopped(fmt.Errorf("worker: %w", err))
		}
		switch p.Type {
		case protocol.JobAssignUniq:
			if err := send(protocol.WorkComplete, p.Args[0], append([]byte("done:"), p.Args[3]...)); err != nil {
				return stopped(err)
			}
		case protocol.NoJob:
			if err := send(protocol.PreSleep); err != nil {
				return stopped(err)
			}
			if p, err = r.ReadPacket(); err != nil {
				return stopped(fmt.Errorf("worker asleep: %w", err))
			}
			if p.Type != protocol.Noop {
				return fmt.Errorf("worker asleep got %v", p.Type)
			}
		default:
			return fmt.Errorf("worker got %v", p.Type)
		}
	}
}

// steadyClient submits steadyFn jobs one after the other and checks each
// result, and an ECHO, within 10 s.
func steadyClient(addr string, stop <-chan struct{}, n *atomic.Int64) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	r := protocol.NewResponseReader(nc, 1<<20)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		data := []byte(strconv.Itoa(i))
		req := protocol.AppendRequest(nil, protocol.SubmitJob, []byte(steadyFn), nil, data)
		req = protocol.AppendRequest(req, protocol.EchoReq, data)
		if _, err := nc.Write(req); err != nil {
			return fmt.Errorf("round trip %d: %w", i, err)
		}
		want := []protocol.Type{protocol.JobCreated, protocol.WorkComplete, protocol.EchoRes}
		for len(want) > 0 {
			p, err := r.ReadPacket()
			if err != nil {
				return fmt.Errorf("round trip %d, waiting for %v: %w", i, want, err)
			}
			switch {
			case p.Type == protocol.EchoRes && string(p.Args[0]) == string(data):
			case p.Type == protocol.WorkComplete && string(p.Args[1]) == "done:"+string(data):
			case p.Type == protocol.JobCreated:
			default:
				return fmt.Errorf("round trip %d: unexpected %v %q", i, p.Type, p.Args)
			}
			for k, w := range want {
				if w == p.Type {
					want = append(want[:k], want[k+1:]...)
					break
				}
			}
		}
		n.Add(1)
	}
}

// abuse makes one attack of kind k on a connection of its own.
func abuse(addr string, rng *rand.Rand, k int, stop <-chan struct{}) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	drain := func(d time.Duration) { // read whatever comes for a moment
		nc.SetReadDeadline(time.Now().Add(d))
		buf := make([]byte, 64<<10)
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}
	switch k {
	case 0: // random bytes
		b := make([]byte, 1+rng.IntN(4096))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		nc.Write(b)
		drain(50 * time.Millisecond)
	case 1: // mutated valid packets
		var b []byte
		for range 1 + rng.IntN(8) {
			typ := protocol.Type(1 + rng.IntN(int(protocol.MaxType)))
			args := make([][]byte, typ.NumArgs())
			for i := range args {
				args[i] = []byte(fmt.Sprintf("a%d", rng.IntN(1000)))
			}
			p := protocol.AppendRequest(nil, typ, args...)
			for range rng.IntN(3) {
				p[rng.IntN(len(p))] = byte(rng.Uint32())
			}
			b = append(b, p...)
		}
		nc.Write(b)
		drain(50 * time.Millisecond)
	case 2: // a huge declared size, then a little of it
		hdr := make([]byte, protocol.HeaderSize)
		copy(hdr, protocol.ReqMagic)
		binary.BigEndian.PutUint32(hdr[4:], uint32(protocol.SubmitJobBg))
		binary.BigEndian.PutUint32(hdr[8:], uint32(rng.IntN(1<<31)))
		nc.Write(hdr)
		nc.Write(bytes.Repeat([]byte("h"), rng.IntN(4<<20)))
		drain(20 * time.Millisecond)
	case 3: // a truncated packet
		p := protocol.AppendRequest(nil, protocol.SubmitJob, []byte("abuse-trunc"), []byte("u"), bytes.Repeat([]byte("t"), 1000))
		nc.Write(p[:rng.IntN(len(p))])
	case 4: // admin garbage
		// Not "shutdown": from loopback it stops the server, as it should.
		words := []string{"status", "workers", "show", "jobs", "unique", "cancel", "job", "create", "drop", "function", "maxqueue", "verbose", "version", "prioritystatus", "\x00", "\xff", "H:x:1", "-1", "99999999999"}
		var line []byte
		for range 1 + rng.IntN(7) {
			line = append(line, words[rng.IntN(len(words))]...)
			line = append(line, " \t"[rng.IntN(2)])
		}
		line = append(line, '\n')
		nc.Write(line)
		drain(50 * time.Millisecond)
	case 5: // slowloris: a header trickled a byte at a time
		p := protocol.AppendRequest(nil, protocol.EchoReq, []byte("slow"))
		for i := range p {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(20+rng.IntN(80)) * time.Millisecond):
			}
			if _, err := nc.Write(p[i : i+1]); err != nil {
				return
			}
		}
		drain(100 * time.Millisecond)
	case 6: // replies nobody reads
		echo := protocol.AppendRequest(nil, protocol.EchoReq, bytes.Repeat([]byte("r"), 256<<10))
		for range 1 + rng.IntN(200) {
			if _, err := nc.Write(echo); err != nil {
				return
			}
		}
	case 7: // a worker that grabs and vanishes, a client that submits and vanishes
		var b []byte
		b = protocol.AppendRequest(b, protocol.CanDo, []byte("abuse-fn"))
		b = protocol.AppendRequest(b, protocol.SubmitJob, []byte("abuse-fn"), []byte(strconv.Itoa(rng.IntN(50))), []byte("x"))
		b = protocol.AppendRequest(b, protocol.GrabJobUniq)
		nc.Write(b)
		drain(time.Duration(rng.IntN(30)) * time.Millisecond)
	}
}
