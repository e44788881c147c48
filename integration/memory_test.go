package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// rssBytes reads a process's resident set size. It does not fail the test
// itself: the sampler that calls it runs off the test's goroutine.
func rssBytes(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// The buffer memory of all connections has a ceiling (issue 14): 20
// connections each send 32 MiB of a 64 MiB packet while 4 clients never
// read their replies. The server stays under the cap plus 200 MiB, closes
// the connections holding the most, keeps answering a steady client, and
// gives the memory back once they are gone.
func TestMemoryCeiling_ManyLargeRequestsAndNonReaders(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	for _, transport := range []string{"event-loop", "goroutines"} {
		t.Run(transport, func(t *testing.T) {
			const limit = 512 << 20
			args := []string{"--max-buffer-memory", "512MiB"}
			if transport == "goroutines" {
				args = append(args, "--event-loop=false")
			}
			s := StartGearbridge(t, args...)
			pid := s.Pid()

			var peak atomic.Int64
			var sampleErr error
			stopSampling := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					r, err := rssBytes(pid)
					if err != nil {
						sampleErr = err
						return
					}
					if r > peak.Load() {
						peak.Store(r)
					}
					select {
					case <-stopSampling:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}()

			// The steady client: small round trips all along.
			steadyStop := make(chan struct{})
			steadyErr := make(chan error, 1)
			var roundTrips atomic.Int64
			go func() {
				c, err := net.Dial("tcp", s.Addr)
				if err != nil {
					steadyErr <- err
					return
				}
				defer c.Close()
				r := protocol.NewResponseReader(c, 1<<20)
				req := protocol.AppendRequest(nil, protocol.EchoReq, bytes.Repeat([]byte("s"), 1024))
				for {
					select {
					case <-steadyStop:
						steadyErr <- nil
						return
					default:
					}
					c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := c.Write(req); err != nil {
						steadyErr <- fmt.Errorf("round trip %d: write: %w", roundTrips.Load(), err)
						return
					}
					if p, err := r.ReadPacket(); err != nil || p.Type != protocol.EchoRes {
						steadyErr <- fmt.Errorf("round trip %d: %v %v", roundTrips.Load(), p, err)
						return
					}
					roundTrips.Add(1)
				}
			}()

			var attackers sync.WaitGroup
			var conns sync.Map
			// attack runs send on a connection of its own, kept open.
			attack := func(name string, send func(c net.Conn) error) {
				attackers.Add(1)
				go func() {
					defer attackers.Done()
					c, err := net.Dial("tcp", s.Addr)
					if err != nil {
						return
					}
					conns.Store(name, c)
					c.SetWriteDeadline(time.Now().Add(20 * time.Second))
					send(c) // fails once the server closes it
				}()
			}
			// 4 clients that never read: 1 MiB echoes until the server
			// closes them (or 200 MiB each).
			echo := protocol.AppendRequest(nil, protocol.EchoReq, bytes.Repeat([]byte("e"), 1<<20))
			for i := range 4 {
				attack(fmt.Sprint("reader", i), func(c net.Conn) error {
					for range 200 {
						if _, err := c.Write(echo); err != nil {
							return err
						}
					}
					return nil
				})
			}
			// 20 connections that send half of a 64 MiB packet.
			var hdr [protocol.HeaderSize]byte
			copy(hdr[:], protocol.ReqMagic)
			binary.BigEndian.PutUint32(hdr[4:], uint32(protocol.SubmitJobBg))
			binary.BigEndian.PutUint32(hdr[8:], 64<<20)
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for i := range 20 {
				attack(fmt.Sprint("large", i), func(c net.Conn) error {
					if _, err := c.Write(append(hdr[:], "f\x00u\x00"...)); err != nil {
						return err
					}
					for range 32 {
						if _, err := c.Write(chunk); err != nil {
							return err
						}
					}
					return nil
				})
			}
			attackers.Wait()
			// The server has read what it will; let it settle, still
			// answering the steady client.
			before := roundTrips.Load()
			eventually(t, 30*time.Second, "the steady client's round trips to go on", func() bool {
				return roundTrips.Load() > before+100
			})
			close(steadyStop)
			if err := <-steadyErr; err != nil {
				t.Errorf("steady client: %v", err)
			}
			if p := peak.Load(); p > limit+200<<20 {
				t.Errorf("peak RSS %d MiB, over the cap (512 MiB) plus 200 MiB", p>>20)
			} else {
				t.Logf("peak RSS %d MiB with a 512 MiB cap; %d steady round trips", p>>20, roundTrips.Load())
			}
			conns.Range(func(_, v any) bool { v.(net.Conn).Close(); return true })
			eventually(t, 30*time.Second, "RSS to fall under 100 MiB", func() bool {
				r, err := rssBytes(pid)
				must(t, err)
				return r < 100<<20
			})
			close(stopSampling)
			<-sampled
			if sampleErr != nil {
				t.Fatalf("sampling RSS: %v", sampleErr)
			}
			if n := metricValue(t, s, "gearbridge_connections_closed_for_memory_total"); n == 0 {
				t.Error("no connection was closed for memory")
			}
		})
	}
}

// metricsText returns gearbridge's /metrics page.
func metricsText(t *testing.T, s *Server) string {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// metricValue returns the value of an unlabelled metric (0 when absent;
// the metrics read this way are never negative).
func metricValue(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	return max(0, seriesValue(metricsText(t, s), name))
}
