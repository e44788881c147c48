package server

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/protocol"
)

// /metrics has a packet series for each of the 30 request types and none
// for the 12 types only a server sends; a response type that a confused
// client sends anyway is counted as UNEXPECTED. The Go and process
// collectors and gearbridge_build_info are there.
func TestMetricsPacketSeriesRuntimeAndBuildInfo(t *testing.T) {
	s, addr := startServer(t, Config{})
	c := dial(t, addr)
	c.send(protocol.JobCreated, "H:x:1")
	c.send(protocol.Noop)
	c.send(protocol.EchoReq, "sync")
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		p, err := c.r.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		if p.Type == protocol.EchoRes {
			break
		}
	}
	_, body := get(t, s.Handler(nil), "/metrics")
	var series []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "gearbridge_packets_received_total{") {
			series = append(series, line)
		}
	}
	if len(series) != 31 {
		t.Errorf("%d packet series, want 30 request types and UNEXPECTED:\n%s", len(series), strings.Join(series, "\n"))
	}
	for typ := protocol.CanDo; typ <= protocol.MaxType; typ++ {
		has := strings.Contains(body, fmt.Sprintf(`gearbridge_packets_received_total{type=%q}`, typ.String()))
		if has != typ.IsRequest() {
			t.Errorf("series for %s: %v", typ, has)
		}
	}
	for _, want := range []string{
		`gearbridge_packets_received_total{type="UNEXPECTED"} 2`,
		`gearbridge_packets_received_total{type="ECHO_REQ"} 1`,
		fmt.Sprintf(`gearbridge_build_info{goarch=%q,goos=%q,goversion=%q,revision=`, runtime.GOARCH, runtime.GOOS, runtime.Version()),
		fmt.Sprintf(`,version=%q} 1`, gearbridge.Version),
		"go_goroutines ",
		"go_memstats_heap_alloc_bytes ",
		"process_open_fds ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
