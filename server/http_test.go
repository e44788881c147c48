package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestHTTPMetricsStatusAndHealth(t *testing.T) {
	s, addr := startServer(t, Config{})
	w := worker(t, addr, "f")
	c := dial(t, addr)
	high := c.submit(protocol.SubmitJobHighBg, "f", "", "x")
	c.submit(protocol.SubmitJob, "f", "", "y")
	if got := w.grab(); got[0] != high {
		t.Fatalf("grabbed %q", got)
	}
	w.send(protocol.WorkComplete, high, "")
	w.expectNothing()

	hh := s.Handler(nil)
	if code, body := get(t, hh, "/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("healthz %d %q", code, body)
	}
	code, body := get(t, hh, "/metrics")
	if code != 200 {
		t.Fatalf("metrics %d", code)
	}
	for _, want := range []string{
		`gearbridge_jobs_queued{function="f",priority="high"} 0`,
		`gearbridge_jobs_queued{function="f",priority="normal"} 1`,
		`gearbridge_workers{function="f"} 1`,
		`gearbridge_connections 2`,
		`gearbridge_packets_received_total{type="SUBMIT_JOB"} 1`,
		`gearbridge_packets_received_total{type="SUBMIT_JOB_HIGH_BG"} 1`,
		`gearbridge_job_duration_seconds_count 1`,
		`gearbridge_jobs_completed_total 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The normal-priority foreground job is still queued.
	code, body = get(t, hh, "/api/status")
	var st Status
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("api/status %d %q", code, body)
	}
	if len(st.Functions) != 1 || st.Functions[0].Name != "f" || st.Functions[0].Total != 1 || st.Functions[0].Workers != 1 {
		t.Fatalf("status %+v", st.Functions)
	}
	if len(st.Workers) != 2 {
		t.Fatalf("workers %+v", st.Workers)
	}
	if code, _ := get(t, hh, "/backup"); code != http.StatusNotFound {
		t.Fatalf("backup without a durable store: %d", code)
	}
	if code, body := get(t, hh, "/"); code != 200 || !strings.Contains(body, `<tr class="function" data-function="f"`) {
		t.Fatalf("status page %d %q", code, body)
	}
}

// /api/status lists workers as they are, whatever their client IDs and
// function names contain.
func TestAPIStatusWorkersKeepOddNames(t *testing.T) {
	s, addr := startServer(t, Config{})
	w := dial(t, addr)
	w.send(protocol.SetClientID, "id :with colon")
	w.send(protocol.CanDo, "a b")
	w.send(protocol.CanDo, "c")
	w.send(protocol.EchoReq, "x")
	w.recv(protocol.EchoRes)
	var st Status
	_, body := get(t, s.Handler(nil), "/api/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil || len(st.Workers) != 1 {
		t.Fatalf("api/status %q: %v", body, err)
	}
	got := st.Workers[0]
	if got.ClientID != "id :with colon" || strings.Join(got.Functions, "|") != "c|a b" {
		t.Fatalf("worker %+v", got)
	}
}

// Function names are bytes: a name that is not UTF-8 shows in /metrics
// with its bad bytes escaped, and does not break the scrape for the rest.
func TestMetricsSurviveNamesThatAreNotUTF8(t *testing.T) {
	s, addr := startServer(t, Config{})
	c := dial(t, addr)
	c.submit(protocol.SubmitJobBg, "bad\xff\xfe", "", "x")
	c.submit(protocol.SubmitJobBg, `bad\xff\xfe`, "", "x") // reads the same once escaped
	c.submit(protocol.SubmitJobBg, "good", "", "x")
	code, body := get(t, s.Handler(nil), "/metrics")
	if code != 200 {
		t.Fatalf("metrics %d: %s", code, body)
	}
	for _, want := range []string{
		`gearbridge_jobs_queued{function="good",priority="normal"} 1`,
		`gearbridge_jobs_queued{function="bad\\xff\\xfe",priority="normal"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestMaxConnectionsRefusesTheRest(t *testing.T) {
	_, addr := startServer(t, Config{MaxConnections: 2})
	a, b := dial(t, addr), dial(t, addr)
	a.expectNothing()
	b.expectNothing()
	c := dial(t, addr)
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("third connection was served")
	}
	a.nc.Close()
	waitFor(t, "a slot", func() bool {
		d := dial(t, addr)
		d.send(protocol.EchoReq, "x")
		d.nc.SetReadDeadline(time.Now().Add(time.Second))
		_, err := d.r.ReadPacket()
		d.nc.Close()
		return err == nil
	})
}

func TestClosedConnectionsLeaveNoGoroutines(t *testing.T) {
	s, addr := startServer(t, Config{})
	base := runtime.NumGoroutine()
	var conns []*client
	for i := 0; i < 50; i++ {
		c := worker(t, addr, "f")
		c.send(protocol.PreSleep)
		conns = append(conns, c)
	}
	conns[49].expectNothing()
	// Goroutine connections have a reader each; the event loop has none.
	n := runtime.NumGoroutine()
	if eventLoop := os.Getenv("GB_TEST_EVENT_LOOP") == "1"; eventLoop && n >= base+50 {
		t.Fatalf("%d goroutines with 50 event-loop connections (base %d)", n, base)
	} else if !eventLoop && n < base+50 {
		t.Fatalf("%d goroutines with 50 connections (base %d)", n, base)
	}
	for _, c := range conns {
		c.nc.Close()
	}
	waitFor(t, "the server to forget the connections", func() bool { return len(s.Snapshot().Workers) == 0 })
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base+2 })
}

// With a token, only /healthz and /metrics are open; /debug/pprof is
// served only when asked for, and then behind the token too.
func TestHTTPTokenAndPprof(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	req := func(h http.Handler, path, auth string) int {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	h := s.HTTPHandler(HTTPOptions{Token: "s3cret"})
	for _, path := range []string{"/healthz", "/metrics"} {
		if code := req(h, path, ""); code != 200 {
			t.Errorf("%s without a token: %d, want 200", path, code)
		}
	}
	for _, path := range []string{"/", "/api/status", "/backup", "/debug/pprof/", "/nothing"} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer s3cret2", "s3cret", "Basic czNjcmV0"} {
			if code := req(h, path, auth); code != http.StatusUnauthorized {
				t.Errorf("%s with %q: %d, want 401", path, auth, code)
			}
		}
	}
	for path, want := range map[string]int{"/": 200, "/api/status": 200, "/backup": 404, "/debug/pprof/": 404} {
		if code := req(h, path, "Bearer s3cret"); code != want {
			t.Errorf("%s with the token: %d, want %d", path, code, want)
		}
	}
	if code := req(s.Handler(nil), "/debug/pprof/", ""); code != 404 {
		t.Errorf("/debug/pprof/ without Pprof: %d, want 404", code)
	}
	if code := req(s.HTTPHandler(HTTPOptions{Pprof: true}), "/debug/pprof/", ""); code != 200 {
		t.Errorf("/debug/pprof/ with Pprof: %d, want 200", code)
	}
	if code := req(s.HTTPHandler(HTTPOptions{Pprof: true, Token: "s3cret"}), "/debug/pprof/", "Bearer s3cret"); code != 200 {
		t.Errorf("/debug/pprof/ with Pprof and the token: %d, want 200", code)
	}
}
