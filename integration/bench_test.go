package integration

// Go benchmarks against the real binaries, for quick comparisons while
// working on the server (bench/run.sh gives the reported figures):
//
//	go test -run '^$' -bench . ./integration

import (
	"strconv"
	"testing"

	p "github.com/gearbridge/gearbridge/protocol"
)

func forEachServerB(b *testing.B, f func(b *testing.B, s *Server)) {
	for _, kind := range []string{"gearmand", "gearbridge"} {
		b.Run(kind, func(b *testing.B) { f(b, StartServer(b, kind, nil, nil)) })
	}
}

// BenchmarkSubmitBackground: one client, SUBMIT_JOB_BG and wait for
// JOB_CREATED (in-memory queue).
func BenchmarkSubmitBackground(b *testing.B) {
	forEachServerB(b, func(b *testing.B, s *Server) {
		c := Dial(b, s.Addr)
		for i := 0; b.Loop(); i++ {
			c.Send(p.SubmitJobBg, "bench", strconv.Itoa(i), "payload")
			if pk := c.Read(); pk.Type != p.JobCreated {
				b.Fatalf("got %v", pk)
			}
		}
	})
}

// BenchmarkForegroundRoundTrip: one client and one worker on separate
// connections; submit, grab, complete, result.
func BenchmarkForegroundRoundTrip(b *testing.B) {
	forEachServerB(b, func(b *testing.B, s *Server) {
		c, w := Dial(b, s.Addr), Dial(b, s.Addr)
		w.Send(p.CanDo, "rt")
		w.Barrier()
		for i := 0; b.Loop(); i++ {
			c.Send(p.SubmitJob, "rt", strconv.Itoa(i), "x")
			h := string(c.Read().Data)
			w.Send(p.GrabJob)
			w.Expect(p.JobAssign, h, "rt", "x")
			w.Send(p.WorkComplete, h, "y")
			c.Expect(p.WorkComplete, h, "y")
		}
	})
}
