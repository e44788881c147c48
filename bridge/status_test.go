package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
)

// A Jenkins error page, and the tree= query of a poll, must not make a
// log line or the status page kilobytes long.
func TestPollErrorsAreShort(t *testing.T) {
	page := "<html><body>" + strings.Repeat("Unauthorized. Please log in. ", 200) + "</body></html>"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, page, http.StatusUnauthorized)
	}))
	defer srv.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // a master that was killed: connection refused
	for _, tc := range []struct {
		url, reason string
	}{{srv.URL, "unauthorized"}, {down.URL, "network"}} {
		cfg, err := ParseConfig([]byte("masters:\n  - name: m\n    url: "+tc.url+"\n    request_timeout: 2s\n"), "x")
		if err != nil {
			t.Fatal(err)
		}
		_, err = poll(context.Background(), newJenkins(&cfg.Masters[0]), &legacyCache{}, slog.New(slog.DiscardHandler))
		if err == nil {
			t.Fatalf("%s: poll succeeded", tc.url)
		}
		if strings.Contains(err.Error(), "tree=") {
			t.Errorf("the error repeats the query: %v", err)
		}
		if s := shortError(err); len(s) > maxErrorText+len("…") || !strings.Contains(s, "/api/json") {
			t.Errorf("shortError is %d bytes: %s", len(s), s)
		}
		if got := pollErrorReason(err); got != tc.reason {
			t.Errorf("%s: reason %q, want %q (%v)", tc.url, got, tc.reason, err)
		}
	}
}

func TestShortErrorCutsOnARuneBoundary(t *testing.T) {
	s := shortError(errors.New(strings.Repeat("é", 400)))
	if !strings.HasSuffix(s, "…") || len(s) > maxErrorText+len("…") || strings.ContainsRune(s, '\uFFFD') {
		t.Fatalf("%q", s)
	}
	if got := shortError(errors.New("a\n  b")); got != "a b" {
		t.Fatalf("%q", got)
	}
}

func TestPollErrorReasons(t *testing.T) {
	for err, want := range map[error]string{
		&httpError{Status: 403}:                              "forbidden",
		&httpError{Status: 404}:                              "not_found",
		&httpError{Status: 502}:                              "server_error",
		&httpError{Status: 429}:                              "http_error",
		context.DeadlineExceeded:                             "timeout",
		fmt.Errorf("x: %w", errBadJSON):                      "bad_response",
		&net.OpError{Op: "dial", Err: errors.New("refused")}: "network",
		errors.New("something else"):                         "other",
	} {
		if got := pollErrorReason(fmt.Errorf("read nodes: %w", err)); got != want {
			t.Errorf("%v: %q, want %q", err, got, want)
		}
	}
}

// The tracker keeps builds in flight until they end, and the last 50
// that ended, newest first; a job dropped by a shutdown is not "finished".
func TestBuildTracker(t *testing.T) {
	var bt buildTracker
	runs := make([]*buildRun, 60)
	for i := range runs {
		runs[i] = &buildRun{}
		bt.update(runs[i], func(st *gearbridge.BuildStatus) { st.Master, st.Handle = "m", fmt.Sprint("H:", i) })
	}
	if n := bt.inFlightOn("m"); n != 60 {
		t.Fatalf("in flight %d", n)
	}
	for i, r := range runs[:55] {
		bt.update(r, func(st *gearbridge.BuildStatus) { st.Result = "SUCCESS" })
		bt.end(r, i != 0)
	}
	inFlight, finished := bt.snapshot(time.Now())
	if len(inFlight) != 5 || bt.inFlightOn("m") != 5 || bt.inFlightOn("other") != 0 {
		t.Fatalf("in flight %d", len(inFlight))
	}
	if len(finished) != gearbridge.FinishedBuildsKept || finished[0].Handle != "H:54" || finished[49].Handle != "H:5" || finished[0].State != "finished" || finished[0].Finished == nil {
		t.Fatalf("finished: %d, first %+v, last %+v", len(finished), finished[0], finished[len(finished)-1])
	}
}

// Fleet reads the last poll: nodes with their state, labels and
// executors, a master's health; it sends Jenkins nothing.
func TestFleetFromThePolls(t *testing.T) {
	e := jenkinstest.New(t)
	e.ConfigureBuiltIn(0, jenkinstest.Normal)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.AddNode(jenkinstest.NodeSpec{Name: "linux-1", Labels: []string{"linux"}, Executors: 2}))
	must(e.AddNode(jenkinstest.NodeSpec{Name: "linux-2", Executors: 1}))
	must(e.SetNodeOffline("linux-2", true, "maintenance"))
	must(e.AddJob(jenkinstest.JobSpec{Name: "job"}))
	must(e.HoldBuilds(""))
	_, err := e.Trigger("job", nil, 0)
	must(err)
	deadline := time.Now().Add(10 * time.Second)
	for len(e.RunningBuilds()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no build started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Setenv("FLEET_TOKEN", e.AddUser("gb", "pw"))
	cfg, err := ParseConfig([]byte("masters:\n  - name: m\n    url: "+e.URL+"\n    user: gb\n    token_env: FLEET_TOKEN\n"), "x")
	must(err)
	b := New(cfg, Options{Embedded: "127.0.0.1:1"})
	m := b.master("m")
	if f := b.Fleet(); len(f.Masters) != 1 || f.Masters[0].Up || f.Masters[0].DownSince == nil {
		t.Fatalf("before the first poll: %+v", f.Masters)
	}
	if err := b.Ready(time.Hour); err != nil {
		t.Fatalf("Ready within the outage allowance: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	must(m.pollOnce(ctx))
	before := len(e.Requests())
	f := b.Fleet()
	if len(e.Requests()) != before {
		t.Fatal("Fleet sent requests to Jenkins")
	}
	ms := f.Masters[0]
	if !ms.Up || ms.LastSuccess == nil || ms.DownSince != nil || ms.LatencyMS <= 0 {
		t.Fatalf("after a poll: %+v", ms)
	}
	nodes := map[string]gearbridge.NodeStatus{}
	for _, n := range ms.Nodes {
		nodes[n.Name] = n
	}
	l1, l2 := nodes["linux-1"], nodes["linux-2"]
	if l1.State != gearbridge.NodeOnline || strings.Join(l1.Labels, ",") != "linux,linux-1" || len(l1.Executors) != 2 {
		t.Fatalf("linux-1: %+v", l1)
	}
	busy := l1.Executors[0]
	if !busy.Busy {
		busy = l1.Executors[1]
	}
	if !busy.Busy || busy.BuildURL != e.URL+"/job/job/1/" || busy.Build != "job #1" || busy.Handle != "" || busy.Started == nil || busy.ElapsedSeconds < 0 {
		t.Fatalf("busy executor: %+v", l1.Executors)
	}
	if l2.State != gearbridge.NodeTemporarilyOffline || l2.OfflineReason != "maintenance" {
		t.Fatalf("linux-2: %+v", l2)
	}
	if _, ok := nodes["built-in"]; !ok {
		t.Fatalf("no built-in node: %+v", nodes)
	}

	// Jenkins goes away: the master is down, with the error, and Ready
	// fails once the outage is longer than allowed.
	e.Close()
	if err := m.pollOnce(ctx); err == nil {
		t.Fatal("poll of a closed master succeeded")
	}
	ms = b.Fleet().Masters[0]
	if ms.Up || ms.DownSince == nil || ms.LastError == "" || ms.LastErrorAt == nil || ms.LastSuccess == nil {
		t.Fatalf("down: %+v", ms)
	}
	if err := b.Ready(time.Hour); err != nil {
		t.Fatalf("Ready a moment into the outage: %v", err)
	}
	if err := b.Ready(time.Nanosecond); err == nil || !strings.Contains(err.Error(), "Jenkins master m unreachable since") {
		t.Fatalf("Ready after the outage allowance: %v", err)
	}
	if err := b.Ready(0); err != nil {
		t.Fatalf("Ready with the check off: %v", err)
	}
}

// Every error the bridge logs is cut, whichever call logs it.
func TestBridgeLogCutsErrors(t *testing.T) {
	var buf strings.Builder
	cfg, err := ParseConfig([]byte("masters:\n  - name: m\n    url: http://127.0.0.1:1/\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	b := New(cfg, Options{Embedded: "127.0.0.1:1", Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	long := errors.New(strings.Repeat("x", 5000))
	b.log.With("early", long).Error("failed", "err", long, "note", "kept")
	line := buf.String()
	if len(line) > 2*maxErrorText+200 || !strings.Contains(line, "note=kept") || !strings.Contains(line, "component=bridge") {
		t.Fatalf("%d bytes: %s", len(line), line)
	}
}

// A password in a master's URL never reaches the page, /readyz or a log
// line, even when the cut falls inside it.
func TestShortErrorHidesURLPasswords(t *testing.T) {
	for _, pad := range []int{0, maxErrorText - 30, maxErrorText - 10} {
		err := fmt.Errorf("%s Get \"https://gearbridge:s3cr3t-t0ken@jenkins.example.org/api/json\": EOF", strings.Repeat("x", pad))
		if s := shortError(err); strings.Contains(s, "s3cr3t") || strings.Contains(s, "s3cr") {
			t.Errorf("pad %d: %s", pad, s)
		}
	}
	cfg, err := ParseConfig([]byte("masters:\n  - name: m\n    url: https://gb:s3cr3t@jenkins.example.org/\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	b := New(cfg, Options{Embedded: "127.0.0.1:1"})
	if u := b.Fleet().Masters[0].URL; strings.Contains(u, "s3cr3t") || !strings.Contains(u, "jenkins.example.org") {
		t.Fatalf("master URL on the page: %s", u)
	}
}
