package server

import (
	"fmt"
	"net"
	"sync"
	"testing"

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

	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			t.Cleanup(func() { nc.Close() })
			if _, err := nc.Write(protocol.AppendRequest(nil, protocol.EchoReq, []byte("hi"))); err != nil {
				errs <- err
				return
			}
			p, err := protocol.NewResponseReader(nc, 1<<20).ReadPacket()
			if err == nil && (p.Type != protocol.EchoRes || string(p.Args[0]) != "hi") {
				err = fmt.Errorf("reply %v %q, want ECHO_RES \"hi\"", p.Type, p.Args)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

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
