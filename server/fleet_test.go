package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/protocol"
)

// testClock is a Config.Now the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func testFleet(now time.Time) gearbridge.Fleet {
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	return gearbridge.Fleet{
		Masters: []gearbridge.MasterStatus{
			{Name: "jenkins01", URL: "https://j1.example.org/", Up: true, LastSuccess: ago(2 * time.Second), LatencyMS: 12,
				Nodes: []gearbridge.NodeStatus{
					{Name: "linux-1", State: gearbridge.NodeOnline, Labels: []string{"linux", "linux-1"}, Executors: []gearbridge.ExecutorStatus{
						{Busy: true, BuildURL: "https://j1.example.org/job/unit/7/", Build: "unit #7", Handle: "H:gb:42", Started: ago(75 * time.Second), ElapsedSeconds: 75},
						{},
					}},
					{Name: "linux-2", State: gearbridge.NodeTemporarilyOffline, OfflineReason: "disk full", Labels: []string{"linux-2"}, Executors: []gearbridge.ExecutorStatus{{}}},
				}},
			{Name: "jenkins<02>", URL: "https://j2.example.org/", Up: false, DownSince: ago(10 * time.Minute),
				LastError: "GET https://j2.example.org/api/json: HTTP 401", LastErrorAt: ago(time.Second)},
		},
		InFlight: []gearbridge.BuildStatus{{Master: "jenkins01", Project: "unit", Function: "build:unit", Handle: "H:gb:42", Worker: "linux-1_exec-0",
			Node: "linux-1", Number: 7, URL: "https://j1.example.org/job/unit/7/", State: "running", ElapsedSeconds: 75}},
		Finished: []gearbridge.BuildStatus{
			{Master: "jenkins01", Project: "unit", Handle: "H:gb:41", Number: 6, URL: "https://j1.example.org/job/unit/6/", State: "finished", Finished: ago(time.Minute), Result: "FAILURE"},
			{Master: "jenkins01", Function: "build:gone", Handle: "H:gb:40", State: "finished", Finished: ago(2 * time.Minute), Error: "project gone is not known"},
		},
	}
}

// The page shows every master up or down with its last poll and error,
// each node's state, labels and executors (a busy one links to its build
// with its handle and elapsed time), the builds in flight and finished,
// and the queue with the age of its oldest job; /api/status has the same.
func TestStatusPage_ShowsTheFleet(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	s, addr := startServer(t, Config{Now: clock.Now})
	s.SetFleet(func() gearbridge.Fleet { return testFleet(clock.Now()) })
	c := dial(t, addr)
	c.submit(protocol.SubmitJobBg, "build:unit", "", "{}")
	clock.advance(90 * time.Second)

	h := s.Handler(nil)
	code, page := get(t, h, "/")
	if code != 200 {
		t.Fatalf("status page: %d", code)
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`,
		`<tr class="master" data-master="jenkins01" data-state="up">`,
		`<tr class="master" data-master="jenkins&lt;02&gt;" data-state="down">`, // escaped
		"down for 10m00s\n<td>",
		`GET https://j2.example.org/api/json: HTTP 401`,
		`<td class="n">12 ms`,
		`<a class="ex busy" href="https://j1.example.org/job/unit/7/" title="executor 0 · Gearman H:gb:42">unit #7 <code>H:gb:42</code> · 1m15s</a>`,
		`<span class="ex idle" title="executor 1: idle">idle</span>`,
		`temporarily offline <span class="muted">(disk full)</span>`,
		`<code>linux</code> <code>linux-1</code>`,
		`<tr class="function" data-function="build:unit" data-oldest-seconds="90">`,
		`<td class="n oldest">1m30s`,
		`<td class="bad">FAILURE`,
		`not run <span class="err">project gone is not known</span>`,
		"<h2>Builds in flight (1)</h2>\n\n<details open><summary>1 running, 0 queued in Jenkins</summary>",
		`<h2>Last finished builds (2)</h2>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<02>") {
		t.Error("a master name went into the page unescaped")
	}
	if _, page := get(t, h, "/?refresh=0"); strings.Contains(page, `http-equiv="refresh"`) {
		t.Error("?refresh=0 still reloads")
	}

	_, body := get(t, h, "/api/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Bridge == nil || len(st.Bridge.Masters) != 2 || st.Bridge.Masters[1].Up || st.Bridge.Masters[0].Nodes[0].Executors[0].Handle != "H:gb:42" ||
		len(st.Bridge.InFlight) != 1 || len(st.Bridge.Finished) != 2 {
		t.Fatalf("api/status bridge: %s", body)
	}
	if len(st.Functions) != 1 || st.Functions[0].OldestQueuedSeconds != 90 {
		t.Fatalf("api/status functions: %+v", st.Functions)
	}
}

// Without a bridge the page is the job server's alone.
func TestStatusPage_WithoutABridge(t *testing.T) {
	s, addr := startServer(t, Config{})
	serving(t, addr)
	_, page := get(t, s.Handler(nil), "/")
	if strings.Contains(page, "Jenkins masters") || !strings.Contains(page, "no jobs queued or running") {
		t.Fatalf("page without a bridge:\n%s", page)
	}
	_, body := get(t, s.Handler(nil), "/api/status")
	if strings.Contains(body, `"bridge"`) {
		t.Fatalf("api/status without a bridge has one: %s", body)
	}
}

// The age is that of the longest-waiting job across priorities, and 0
// once nothing waits.
func TestOldestQueuedAge(t *testing.T) {
	clock := &testClock{now: time.Unix(1_000_000, 0)}
	s, addr := startServer(t, Config{Now: clock.Now})
	c := dial(t, addr)
	c.submit(protocol.SubmitJobLowBg, "f", "", "old")
	clock.advance(time.Minute)
	c.submit(protocol.SubmitJobHighBg, "f", "", "new")
	clock.advance(time.Second)
	if got := s.Snapshot().Functions[0].OldestQueuedSeconds; got != 61 {
		t.Fatalf("oldest = %vs, want 61", got)
	}
	w := worker(t, addr, "f")
	w.grab()
	w.grab()
	if got := s.Snapshot().Functions[0].OldestQueuedSeconds; got != 0 {
		t.Fatalf("oldest with nothing queued = %vs", got)
	}
}

// 3 masters of 50 nodes with 4 executors each: the page stays compact
// (about 200 bytes an executor at most) and renders from memory.
func TestStatusPage_ThreeMastersOf200Executors(t *testing.T) {
	s, addr := startServer(t, Config{})
	serving(t, addr)
	now := time.Now()
	var f gearbridge.Fleet
	for m := 0; m < 3; m++ {
		ms := gearbridge.MasterStatus{Name: fmt.Sprintf("jenkins%02d", m), URL: "https://example.org/", Up: true, LastSuccess: &now}
		for n := 0; n < 50; n++ {
			ns := gearbridge.NodeStatus{Name: fmt.Sprintf("node-%02d", n), State: gearbridge.NodeOnline, Labels: []string{"linux", "x86_64"}}
			for e := 0; e < 4; e++ {
				ex := gearbridge.ExecutorStatus{}
				if e%2 == 0 {
					ex = gearbridge.ExecutorStatus{Busy: true, BuildURL: fmt.Sprintf("https://example.org/job/p%d/%d/", n, e), Build: fmt.Sprintf("p%d #%d", n, e), Handle: fmt.Sprintf("H:gb:%d", m*1000+n*10+e), Started: &now}
					f.InFlight = append(f.InFlight, gearbridge.BuildStatus{Master: ms.Name, Project: fmt.Sprintf("p%d", n), Number: e, URL: ex.BuildURL, Handle: ex.Handle, State: "running"})
				}
				ns.Executors = append(ns.Executors, ex)
			}
			ms.Nodes = append(ms.Nodes, ns)
		}
		f.Masters = append(f.Masters, ms)
	}
	s.SetFleet(func() gearbridge.Fleet { return f })
	_, page := get(t, s.Handler(nil), "/")
	if n := len(regexp.MustCompile(`class="ex (busy|idle)`).FindAllString(page, -1)); n != 600 {
		t.Fatalf("%d executors on the page, want 600", n)
	}
	if len(page) > 600*400 {
		t.Fatalf("page is %d bytes for 600 executors", len(page))
	}
	// 300 builds in flight fold away: the executors show them already.
	if !strings.Contains(page, "<details><summary>300 running, 0 queued in Jenkins</summary>") {
		t.Fatalf("the builds in flight are not folded:\n%s", page[strings.Index(page, `<section id="inflight">`):][:300])
	}
}

// /readyz answers 200 while every check passes and 503 with the reasons
// as JSON when one fails; /healthz stays 200 all along.
func TestReadyz(t *testing.T) {
	s, addr := startServer(t, Config{})
	serving(t, addr)
	h := s.Handler(nil)
	if code, body := get(t, h, "/readyz"); code != 200 || strings.TrimSpace(body) != `{"ready":true}` {
		t.Fatalf("readyz with no checks: %d %s", code, body)
	}
	var mu sync.Mutex
	storeErr := errors.New("commit to gearbridge.db: no space left on device")
	s.AddReadyCheck("store", func() error { mu.Lock(); defer mu.Unlock(); return storeErr })
	s.AddReadyCheck("jenkins", func() error { return nil })
	code, body := get(t, h, "/readyz")
	var rd Readiness
	if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &rd) != nil || rd.Ready ||
		len(rd.Reasons) != 1 || rd.Reasons[0].Check != "store" || !strings.Contains(rd.Reasons[0].Reason, "no space left") {
		t.Fatalf("readyz with a failing store: %d %s", code, body)
	}
	if code, _ := get(t, h, "/healthz"); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	// A check added again under its name replaces the old one.
	s.AddReadyCheck("jenkins", func() error { return errors.New("Jenkins master m unreachable") })
	if _, body := get(t, h, "/readyz"); json.Unmarshal([]byte(body), &rd) != nil || len(rd.Reasons) != 2 {
		t.Fatalf("readyz with two failing checks: %s", body)
	}
	s.AddReadyCheck("jenkins", func() error { return nil })
	mu.Lock()
	storeErr = nil
	mu.Unlock()
	if code, body := get(t, h, "/readyz"); code != 200 {
		t.Fatalf("readyz after the store recovered: %d %s", code, body)
	}
	// Like /healthz, /readyz needs no token: probes seldom carry one.
	guarded := s.HTTPHandler(HTTPOptions{Token: "secret"})
	if code, body := get(t, guarded, "/readyz"); code != 200 {
		t.Fatalf("readyz behind a token: %d %s", code, body)
	}
	if code, _ := get(t, guarded, "/api/status"); code != http.StatusUnauthorized {
		t.Fatalf("api/status without the token: %d", code)
	}
}

// serving waits for one round trip, so that the test's cleanup does not
// close the server before Serve began.
func serving(t *testing.T, addr string) {
	c := dial(t, addr)
	c.send(protocol.EchoReq, "x")
	c.recv(protocol.EchoRes)
}
