package server

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// A burst of connections is spread over the event loops: the loop that
// accepts them places each on the loop serving the fewest. (Each used to
// stay on the loop that accepted it, and one accept takes every waiting
// connection, so a burst could all land on one loop and leave the others
// idle.) Every connection is served wherever it lands.
func TestEventLoopsShareABurstOfConnections(t *testing.T) {
	const loops, conns = 4, 64
	s, addr := startServer(t, Config{EventLoop: true, EventLoops: loops})
	concurrently(t, conns, func(int) error { return echoOn(t, addr) })

	s.mu.Lock()
	group := s.loops
	s.mu.Unlock()
	if len(group) != loops {
		t.Fatalf("%d loops, want %d", len(group), loops)
	}
	least, most := int64(conns), int64(0)
	for _, l := range group {
		n := l.count.Load()
		least, most = min(least, n), max(most, n)
	}
	if most-least > 2 {
		counts := make([]int64, 0, loops)
		for _, l := range group {
			counts = append(counts, l.count.Load())
		}
		t.Fatalf("connections per loop %v: not spread (want within 2 of each other)", counts)
	}
}

// Many connections pipelining more than a turn's read arena at once, while
// the scheduler lock is contended: each gets every reply in request order,
// however the loops split the reads into turns and the turns into lock
// acquisitions.
func TestEventLoopsAnswerPipelinesLargerThanATurn(t *testing.T) {
	const loops, conns, jobs = 2, 16, 3000
	s, addr := startServer(t, Config{EventLoop: true, EventLoops: loops})
	payload := bytes.Repeat([]byte("x"), 100)

	// Another taker of the scheduler lock, so that the loops find it
	// taken and handle what is left of their turns in one batch.
	stop := make(chan struct{})
	contended := make(chan struct{})
	go func() {
		defer close(contended)
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.mu.Lock()
			for i := 0; i < 1000; i++ {
				runtime.Gosched() // hold it a while, letting the loops run
			}
			s.mu.Unlock()
		}
	}()

	concurrently(t, conns, func(i int) error { return pipelineSubmits(addr, i, jobs, payload) })
	close(stop)
	<-contended
	if waits := counterValue(t, s.metrics.lockWaits); waits == 0 {
		t.Error("no loop ever found the scheduler lock taken: the batched path was not exercised")
	}
	c := dial(t, addr)
	if got, want := c.admin("status"), fmt.Sprintf("f\t%d\t0\t0\n.\n", conns*jobs); got != want {
		t.Fatalf("status %q, want %q", got, want)
	}
}

// pipelineSubmits sends jobs background submits and an ECHO_REQ in one
// write, then checks the replies: JOB_CREATED with rising job IDs, then
// ECHO_RES.
func pipelineSubmits(addr string, conn, jobs int, payload []byte) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	var req []byte
	for n := 0; n < jobs; n++ {
		unique := fmt.Sprintf("c%d-%d", conn, n)
		req = protocol.AppendRequest(req, protocol.SubmitJobBg, []byte("f"), []byte(unique), payload)
	}
	req = protocol.AppendRequest(req, protocol.EchoReq, []byte("end"))
	if len(req) <= loopArenaSize {
		return fmt.Errorf("the pipeline is %d bytes, not more than a turn's arena", len(req))
	}
	go nc.Write(req) // the replies are read meanwhile
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	r := protocol.NewResponseReader(nc, 1<<20)
	last := uint64(0)
	for n := 0; n < jobs; n++ {
		p, err := r.ReadPacket()
		if err != nil {
			return fmt.Errorf("conn %d, reply %d: %w", conn, n, err)
		}
		if p.Type != protocol.JobCreated {
			return fmt.Errorf("conn %d, reply %d: %v %q, want JOB_CREATED", conn, n, p.Type, p.Args)
		}
		h := string(p.Args[0])
		id, err := strconv.ParseUint(h[strings.LastIndexByte(h, ':')+1:], 10, 64)
		if err != nil || id <= last {
			return fmt.Errorf("conn %d, reply %d: handle %q after ID %d: out of order", conn, n, h, last)
		}
		last = id
	}
	p, err := r.ReadPacket()
	if err != nil || p.Type != protocol.EchoRes || string(p.Args[0]) != "end" {
		return fmt.Errorf("conn %d: after the submits got %v (%v), want ECHO_RES \"end\"", conn, p, err)
	}
	return nil
}

// concurrently runs each(0) to each(n-1) at once and fails the test with
// the first error.
func concurrently(t *testing.T, n int, each func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- each(i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// echoOn opens a connection that stays open until the test ends, and
// checks that it is served: ECHO_REQ gets its ECHO_RES.
func echoOn(t *testing.T, addr string) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := nc.Write(protocol.AppendRequest(nil, protocol.EchoReq, []byte("hi"))); err != nil {
		return err
	}
	p, err := protocol.NewResponseReader(nc, 1<<20).ReadPacket()
	if err == nil && (p.Type != protocol.EchoRes || string(p.Args[0]) != "hi") {
		err = fmt.Errorf("reply %v %q, want ECHO_RES \"hi\"", p.Type, p.Args)
	}
	return err
}
