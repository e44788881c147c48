package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
	"github.com/gearbridge/gearbridge/server"
	"github.com/gearbridge/gearbridge/store"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// A failing master must show: in the bridge's metrics, on /api/status
// and in /readyz, and come back when Jenkins does.

// metric reads one series of the rig's bridge metrics, or -1 if absent.
func (r *bridgeRig) metric(series string) float64 {
	r.t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return seriesValue(rec.Body.String(), series)
}

func seriesValue(page, series string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// operatorHTTP wires the rig's bridge into its server's HTTP side as
// gearbridge serve does, with maxOutage for /readyz.
func (r *bridgeRig) operatorHTTP(maxOutage time.Duration) http.Handler {
	r.srv.SetFleet(r.bridge.Fleet)
	r.srv.AddReadyCheck("jenkins", func() error { return r.bridge.Ready(maxOutage) })
	return r.srv.Handler(nil)
}

func getJSON(t *testing.T, h http.Handler, path string, out any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		t.Fatalf("%s: %v: %s", path, err, rec.Body.String())
	}
	return rec.Code
}

func TestBridge_MasterDownAndUpInMetricsStatusAndReadyz(t *testing.T) {
	good, flaky := oneNodeJenkins(t), oneNodeJenkins(t)
	rig := startBridgeRig(t, nil, rigMaster{name: "good", emu: good}, rigMaster{name: "flaky", emu: flaky})
	h := rig.operatorHTTP(time.Second)
	rig.waitRegistered("build:job", 2)
	eventually(t, 10*time.Second, "both masters up", func() bool {
		return rig.metric(`gearbridge_bridge_master_up{master="good"}`) == 1 && rig.metric(`gearbridge_bridge_master_up{master="flaky"}`) == 1
	})
	if ts := rig.metric(`gearbridge_bridge_master_last_success_timestamp_seconds{master="flaky"}`); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Fatalf("last success %v", ts)
	}
	var rd server.Readiness
	if code := getJSON(t, h, "/readyz", &rd); code != 200 || !rd.Ready {
		t.Fatalf("readyz with both masters up: %d %+v", code, rd)
	}

	// flaky is killed: every connection is refused.
	remove, err := flaky.InjectFault(".", jenkinstest.Fault{Reset: true})
	must(t, err)
	eventually(t, 10*time.Second, "flaky down", func() bool {
		return rig.metric(`gearbridge_bridge_master_up{master="flaky"}`) == 0
	})
	if n := rig.metric(`gearbridge_bridge_poll_errors_total{master="flaky",reason="network"}`); n < 1 {
		t.Fatalf("poll errors: %v", n)
	}
	if rig.metric(`gearbridge_bridge_master_up{master="good"}`) != 1 {
		t.Fatal("good went down with flaky")
	}
	var st server.Status
	getJSON(t, h, "/api/status", &st)
	if st.Bridge == nil || len(st.Bridge.Masters) != 2 {
		t.Fatalf("api/status bridge: %+v", st.Bridge)
	}
	for _, m := range st.Bridge.Masters {
		if up := m.Name == "good"; m.Up != up || (!up && (m.LastError == "" || m.DownSince == nil)) {
			t.Fatalf("api/status master %+v", m)
		}
	}
	// Within the allowed outage /readyz still passes; past it, it fails
	// with a reason naming the master.
	eventually(t, 10*time.Second, "readyz to fail", func() bool {
		return getJSON(t, h, "/readyz", &rd) == http.StatusServiceUnavailable
	})
	if rd.Ready || len(rd.Reasons) != 1 || rd.Reasons[0].Check != "jenkins" || !strings.Contains(rd.Reasons[0].Reason, "Jenkins master flaky unreachable since") {
		t.Fatalf("readyz reasons: %+v", rd)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Fatalf("healthz while a master is down: %d", rec.Code)
	}

	remove()
	eventually(t, 10*time.Second, "flaky up again", func() bool {
		return rig.metric(`gearbridge_bridge_master_up{master="flaky"}`) == 1
	})
	if code := getJSON(t, h, "/readyz", &rd); code != 200 || !rd.Ready {
		t.Fatalf("readyz after flaky came back: %d %+v", code, rd)
	}
}

// A wrong token is counted as "unauthorized" and logged on one short line.
func TestBridge_BadTokenIsAShortErrorAndAMetric(t *testing.T) {
	bad := oneNodeJenkins(t)
	must(t, bad.AddJob(jenkinstest.JobSpec{Name: "a-project-with-a-long-name-" + strings.Repeat("x", 100)}))
	rig := startBridgeRig(t, nil, rigMaster{name: "bad", emu: bad, badToken: true})
	eventually(t, 10*time.Second, "an unauthorized poll", func() bool {
		return rig.metric(`gearbridge_bridge_poll_errors_total{master="bad",reason="unauthorized"}`) >= 1
	})
	if rig.metric(`gearbridge_bridge_master_up{master="bad"}`) != 0 || rig.metric(`gearbridge_bridge_master_last_success_timestamp_seconds{master="bad"}`) != 0 {
		t.Fatal("a master that never answered counts as up")
	}
	eventually(t, 10*time.Second, "the error logged", func() bool { return rig.logs.count("HTTP 401") > 0 })
	assertShortLines(t, rig.logs.String(), 500)
}

// assertShortLines fails on any log line longer than max bytes.
func assertShortLines(t *testing.T, log string, max int) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if len(line) > max {
			t.Errorf("a %d-byte log line: %s", len(line), line)
		}
	}
}

// builds_completed_total and builds_in_flight are per master.
func TestBridge_BuildMetricsPerMaster(t *testing.T) {
	a := oneNodeJenkins(t)
	b := newJenkins(t)
	must(t, b.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 1}))
	must(t, b.AddJob(jenkinstest.JobSpec{Name: "slow"}))
	must(t, b.HoldBuilds(""))
	rig := startBridgeRig(t, nil, rigMaster{name: "a", emu: a}, rigMaster{name: "b", emu: b})
	h := rig.operatorHTTP(time.Minute)
	rig.waitRegistered("build:job", 1)
	rig.waitRegistered("build:slow", 1)
	held := rig.submit(protocol.SubmitJob, "build:slow", "", nil)
	held.started(10 * time.Second)
	res := rig.submit(protocol.SubmitJob, "build:job", "", nil).wait(10 * time.Second)
	if res.data["result"] != "SUCCESS" || res.data["manager"] != "a" {
		t.Fatalf("%v %s %v", res.packets, res.reason, res.data)
	}
	if got := rig.metric(`gearbridge_bridge_builds_completed_total{master="a",result="SUCCESS"}`); got != 1 {
		t.Fatalf("completed on a: %v", got)
	}
	if got := rig.metric(`gearbridge_bridge_builds_in_flight{master="b"}`); got != 1 {
		t.Fatalf("in flight on b: %v", got)
	}
	if got := rig.metric(`gearbridge_bridge_builds_in_flight{master="a"}`); got != 0 {
		t.Fatalf("in flight on a: %v", got)
	}
	var st server.Status
	getJSON(t, h, "/api/status", &st)
	if len(st.Bridge.InFlight) != 1 || st.Bridge.InFlight[0].Master != "b" || st.Bridge.InFlight[0].State != "running" ||
		st.Bridge.InFlight[0].URL != b.URL+"/job/slow/1/" || st.Bridge.InFlight[0].Node != "n" ||
		len(st.Bridge.Finished) != 1 || st.Bridge.Finished[0].Result != "SUCCESS" || st.Bridge.Finished[0].Master != "a" {
		t.Fatalf("api/status builds: %+v / %+v", st.Bridge.InFlight, st.Bridge.Finished)
	}
	_, err := b.Release("")
	must(t, err)
	if res := held.wait(10 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("%v %s", res.packets, res.reason)
	}
	eventually(t, 5*time.Second, "nothing in flight", func() bool {
		return rig.metric(`gearbridge_bridge_builds_in_flight{master="b"}`) == 0 &&
			rig.metric(`gearbridge_bridge_builds_completed_total{master="b",result="SUCCESS"}`) == 1
	})
}

// The page costs Jenkins nothing: with every Jenkins request held, the
// status page and /api/status still answer at once, and no request
// beyond the polls reaches Jenkins.
func TestBridge_StatusIsServedFromMemory(t *testing.T) {
	e := oneNodeJenkins(t)
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	h := rig.operatorHTTP(time.Minute)
	rig.waitRegistered("build:job", 1)
	remove, err := e.InjectFault(".", jenkinstest.Fault{Delay: time.Hour})
	must(t, err)
	defer remove()
	before := len(e.Requests())
	start := time.Now()
	for i := 0; i < 20; i++ {
		for _, path := range []string{"/", "/api/status"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"m"`) && path != "/" {
				t.Fatalf("%s: %d", path, rec.Code)
			}
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("40 page views took %v with Jenkins hanging", d)
	}
	// At most the poll that was under way when the fault came, and the
	// one after it, which hangs.
	if n := len(e.Requests()) - before; n > 3 {
		t.Fatalf("%d Jenkins requests during 40 page views", n)
	}
}

// The binary logs each build at INFO (triggered; started with number,
// URL and node; finished with result and duration), and a killed master
// on one short line; --readyz-master-outage makes /readyz fail.
func TestGearbridge_LogsBuildsAndReportsAKilledMaster(t *testing.T) {
	e := oneNodeJenkins(t)
	t.Setenv("GB_LOG_TOKEN", e.AddUser("gearbridge", "secret"))
	cfg := filepath.Join(t.TempDir(), "gearbridge.yaml")
	must(t, os.WriteFile(cfg, []byte("masters:\n  - name: jenkins01\n    url: "+e.URL+"\n    user: gearbridge\n    token_env: GB_LOG_TOKEN\n    poll_interval: 200ms\n    request_timeout: 2s\n"), 0o644))
	gb := StartGearbridge(t, "--config", cfg, "--readyz-master-outage", "500ms")
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + gb.HTTPAddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	eventually(t, 10*time.Second, "readyz", func() bool { code, _ := readyz(); return code == 200 })
	eventually(t, 10*time.Second, "build:job registered", func() bool {
		return strings.Contains(AdminOnce(t, gb.Addr, "status\n"), "build:job\t0\t0\t1")
	})

	c := Dial(t, gb.Addr)
	c.Send(protocol.SubmitJob, "build:job", "log-1", "{}")
	handle := jobCreated(t, c)
	for p := c.Read(); p.Type != protocol.WorkComplete; p = c.Read() {
	}
	logText := func() string { b, _ := os.ReadFile(gb.LogPath); return string(b) }
	for _, re := range []string{
		`level=INFO msg="build triggered" component=bridge master=jenkins01 worker=n_exec-0 server=\S+ handle=` + regexp.QuoteMeta(handle) + ` function=build:job project=job queue_item=\d+`,
		`level=INFO msg="build started" .*handle=` + regexp.QuoteMeta(handle) + ` project=job number=1 url=` + regexp.QuoteMeta(e.URL) + `/job/job/1/ node=n`,
		`level=INFO msg="build finished" .*handle=` + regexp.QuoteMeta(handle) + ` project=job number=1 url=\S+ result=SUCCESS duration=\S+`,
	} {
		eventually(t, 5*time.Second, re, func() bool { return regexp.MustCompile(re).MatchString(logText()) })
	}
	for _, line := range strings.Split(logText(), "\n") {
		if strings.Contains(line, `msg="build `) && strings.Count(line, " master=") != 1 {
			t.Errorf("master named %d times: %s", strings.Count(line, " master="), line)
		}
	}

	e.Close() // the master is killed
	eventually(t, 10*time.Second, "readyz to fail", func() bool { code, _ := readyz(); return code == http.StatusServiceUnavailable })
	if _, body := readyz(); !strings.Contains(body, `"check":"jenkins"`) || !strings.Contains(body, "Jenkins master jenkins01 unreachable since") {
		t.Fatalf("readyz: %s", body)
	}
	eventually(t, 5*time.Second, "the outage logged", func() bool { return strings.Contains(logText(), "Jenkins master unreachable") })
	assertShortLines(t, logText(), 600)
}

// /readyz fails while the store cannot commit (here: the file may not
// grow), and passes again once it can, with no new job needed.
func TestReadyz_StoreThatCannotCommit(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "gb.db"), store.Options{MaxSize: 1 << 20})
	must(t, err)
	t.Cleanup(func() { db.Close() })
	e := oneNodeJenkins(t)
	rig := startBridgeRig(t, db, rigMaster{name: "m", emu: e})
	h := rig.operatorHTTP(time.Minute)
	rig.srv.AddReadyCheck("store", db.CommitError) // as gearbridge serve wires it
	var rd server.Readiness
	eventually(t, 10*time.Second, "ready", func() bool { return getJSON(t, h, "/readyz", &rd) == 200 })

	c := Dial(t, rig.addr)
	big := strings.Repeat("x", 16<<10)
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatal("a 1 MiB store took 200 jobs of 16 KiB")
		}
		c.Send(protocol.SubmitJobBg, "no-worker", strconv.Itoa(i), big)
		if p := c.Read(); p.Type == protocol.Error {
			break
		}
	}
	if code := getJSON(t, h, "/readyz", &rd); code != http.StatusServiceUnavailable || rd.Ready || len(rd.Reasons) != 1 ||
		rd.Reasons[0].Check != "store" || !strings.Contains(rd.Reasons[0].Reason, "commits failing since") {
		t.Fatalf("readyz with a full store: %d %+v", code, rd)
	}
	// Drain the queue: the removes free the space.
	w := Dial(t, rig.addr)
	w.Send(protocol.CanDo, "no-worker")
	for {
		w.Send(protocol.GrabJob)
		p := w.Read()
		if p.Type == protocol.NoJob {
			break
		}
		w.Send(protocol.WorkComplete, p.Args()[0], "")
	}
	eventually(t, 10*time.Second, "ready again", func() bool { return getJSON(t, h, "/readyz", &rd) == 200 })
}
