package jenkinstest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
)

func TestInjectFault(t *testing.T) {
	clock := jenkinstest.NewFakeClock(time.Time{})
	e := jenkinstest.New(t, jenkinstest.WithClock(clock))
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	c := newClient(t, e.URL, "", "")

	if _, err := e.InjectFault("^POST .*/buildWithParameters$", jenkinstest.Fault{Status: 500, Times: 1}); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.trigger("/job/p/", url.Values{"A": {"1"}}); r.status != 500 {
		t.Fatalf("first trigger = %d, want the injected 500", r.status)
	}
	if r, _ := c.trigger("/job/p/", url.Values{"A": {"1"}}); r.status != http.StatusCreated {
		t.Fatalf("second trigger = %d, want 201 (Times: 1)", r.status)
	}
	if n := len(e.QueueItems()); n != 1 {
		t.Fatalf("%d queue items, want 1: a faulted request must change nothing", n)
	}

	remove, _ := e.InjectFault("^GET /queue/", jenkinstest.Fault{Status: 503})
	for i := 0; i < 2; i++ {
		if r := c.get("/queue/api/json"); r.status != http.StatusServiceUnavailable {
			t.Fatalf("queue = %d, want 503", r.status)
		}
	}
	remove()
	if r := c.get("/queue/api/json"); r.status != http.StatusOK {
		t.Fatalf("queue after removing the fault = %d", r.status)
	}

	// A fresh connection: Go retries an idempotent request that fails on a
	// reused one, which would consume the fault.
	e.InjectFault("^GET /api/json$", jenkinstest.Fault{Reset: true, Times: 1})
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := fresh.Get(e.URL + "/api/json"); err == nil {
		t.Fatal("GET through a reset fault succeeded")
	}

	// A delay runs on the emulator's clock: the request is held until the
	// test advances it.
	e.InjectFault("^GET /computer/api/json$", jenkinstest.Fault{Delay: 30 * time.Second, Times: 1})
	done := make(chan int)
	before := clock.Pending() // the quiet period of the queued item
	go func() {
		resp, err := http.Get(e.URL + "/computer/api/json")
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	eventually(t, "the delayed request to wait on the clock", func() bool { return clock.Pending() > before })
	select {
	case s := <-done:
		t.Fatalf("delayed request finished (%d) before the clock moved", s)
	default:
	}
	clock.Advance(30 * time.Second)
	if s := <-done; s != http.StatusOK {
		t.Fatalf("delayed request = %d, want 200", s)
	}
}

func TestRequestLog(t *testing.T) {
	e := jenkinstest.New(t)
	token := e.AddUser("gb", "pw")
	mustJob(t, e, jenkinstest.JobSpec{Name: "f/p", Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	c := newClient(t, e.URL, "gb", token)
	for i := 0; i < 3; i++ {
		c.trigger("/job/f/job/p/", url.Values{"A": {fmt.Sprint(i)}})
	}
	c.get("/queue/api/json")
	newClient(t, e.URL, "gb", "bad").get("/api/json")

	if n := e.CountRequests("^POST /job/f/job/p/buildWithParameters$"); n != 3 {
		t.Errorf("CountRequests(trigger) = %d, want 3", n)
	}
	log := e.Requests()
	if len(log) != 5 {
		t.Fatalf("%d log entries, want 5", len(log))
	}
	if r := log[0]; r.Method != "POST" || r.User != "gb" || r.Status != http.StatusCreated {
		t.Errorf("first entry = %+v", r)
	}
	if r := log[4]; r.Status != http.StatusUnauthorized || r.User != "anonymous" {
		t.Errorf("bad credentials entry = %+v", r)
	}
	e.ResetRequests()
	if n := len(e.Requests()); n != 0 {
		t.Errorf("%d entries after ResetRequests", n)
	}
}

func TestWaitedItems(t *testing.T) {
	clock := jenkinstest.NewFakeClock(time.Time{})
	e := jenkinstest.New(t, jenkinstest.WithClock(clock))
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1", Labels: []string{"linux"}})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Label: "linux", Concurrent: true, Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	e.HoldBuilds("p")
	tok := e.AddUser("bridge", "")
	c := newClient(t, e.URL, "bridge", tok)

	_, first := c.trigger("/job/p/", url.Values{"A": {"1"}, "delay": {"0sec"}})
	c.pollItem(first)
	_, second := c.trigger("/job/p/", url.Values{"A": {"2"}, "delay": {"0sec"}})
	eventually(t, "second item to wait", func() bool { return len(e.WaitedItems()) == 1 })
	w := e.WaitedItems()[0]
	if w.Params["A"] != "2" || w.User != "bridge" || w.WaitReasons[0] != "Waiting for next available executor on ‘linux’" {
		t.Fatalf("waited item = %+v", w)
	}
	clock.Advance(3 * time.Second)
	if n, _ := e.Release("p"); n != 1 {
		t.Fatalf("released %d builds, want 1", n)
	}
	c.pollItem(second)
	hist := e.QueueHistory()
	if len(hist) != 2 || len(hist[0].WaitReasons) != 0 || hist[1].ExecutorWait != 3*time.Second || hist[1].BuildNumber != 2 {
		t.Fatalf("history = %+v", hist)
	}
}

func TestNodeParameterPinsBuild(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1", Labels: []string{"linux"}})
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n2", Labels: []string{"linux"}})
	mustNode(t, e, jenkinstest.NodeSpec{Name: "w1", Labels: []string{"windows"}, Mode: jenkinstest.Exclusive})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Label: "linux", Concurrent: true, Params: []jenkinstest.ParamSpec{
		{Name: "NODE", Type: jenkinstest.NodeParam}, {Name: "U"},
	}})
	e.HoldBuilds("")
	c := newClient(t, e.URL, "", "")
	builtOn := func(node, u string) any {
		_, item := c.trigger("/job/p/", url.Values{"NODE": {node}, "U": {u}, "delay": {"0sec"}})
		exe := c.pollItem(item)["executable"].(map[string]any)
		return c.json(relPath(t, str(exe["url"])) + "api/json?tree=builtOn")["builtOn"]
	}
	if got := builtOn("n2", "1"); got != "n2" {
		t.Errorf("NODE=n2 ran on %v", got)
	}
	// The node parameter overrides the job's label, even onto an EXCLUSIVE node.
	if got := builtOn("w1", "2"); got != "w1" {
		t.Errorf("NODE=w1 ran on %v", got)
	}
	_, item := c.trigger("/job/p/", url.Values{"NODE": {"nowhere"}, "delay": {"0sec"}})
	eventually(t, "why text for a missing node", func() bool {
		return c.json(item + "api/json")["why"] == "There are no nodes with the label ‘nowhere’"
	})
}

func TestWhyTexts(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1", Labels: []string{"linux"}})
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n2", Labels: []string{"linux"}})
	mustJob(t, e, jenkinstest.JobSpec{Name: "on-n1", Label: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "on-linux", Label: "linux"})
	c := newClient(t, e.URL, "", "")
	why := func(item, want string) {
		t.Helper()
		eventually(t, fmt.Sprintf("why %q", want), func() bool { return c.json(item + "api/json")["why"] == want })
	}
	e.SetNodeOffline("n1", true, "")
	e.SetNodeConnected("n2", false)
	i1 := relPath(t, c.post("/job/on-n1/build?delay=0sec", nil).header.Get("Location"))
	i2 := relPath(t, c.post("/job/on-linux/build?delay=0sec", nil).header.Get("Location"))
	why(i1, "‘n1’ is offline")
	why(i2, "All nodes of label ‘linux’ are offline")

	c.post("/quietDown", nil)
	if m := c.json("/api/json?tree=quietingDown"); m["quietingDown"] != true {
		t.Fatal("quietingDown not set")
	}
	e.SetNodeOffline("n1", false, "")
	why(i1, "Jenkins is about to shut down")
	c.post("/cancelQuietDown", nil)
	c.pollItem(i1)
}

func TestDisconnectAndRemoveNode(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n2"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "a", Label: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "b", Label: "n2"})
	e.HoldBuilds("")
	for _, j := range []string{"a", "b"} {
		if _, err := e.Trigger(j, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.RunningBuilds()); n != 2 {
		t.Fatalf("%d running builds, want 2", n)
	}
	e.SetNodeConnected("n1", false)
	e.RemoveNode("n2")
	if a := e.Builds("a")[0]; a.Building || a.Result != jenkinstest.ResultFailure {
		t.Errorf("build on a disconnected node = %+v, want FAILURE", a)
	}
	if b := e.Builds("b")[0]; b.Building || b.Result != jenkinstest.ResultAborted {
		t.Errorf("build on a removed node = %+v, want ABORTED", b)
	}
	c := newClient(t, e.URL, "", "")
	if r := c.get("/computer/n2/api/json"); r.status != http.StatusNotFound {
		t.Errorf("removed node = %d", r.status)
	}
}

func TestOutcomesAndEstimates(t *testing.T) {
	clock := jenkinstest.NewFakeClock(time.Time{})
	e := jenkinstest.New(t, jenkinstest.WithClock(clock))
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Duration: 4 * time.Second, Outcomes: []jenkinstest.Outcome{
		{Duration: time.Second, Result: jenkinstest.ResultFailure},
		{Duration: 2 * time.Second, Result: jenkinstest.ResultUnstable},
	}})
	c := newClient(t, e.URL, "", "")
	var results []string
	for i := 0; i < 3; i++ {
		id, err := e.Trigger("p", nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(10 * time.Second)
		m := c.json(fmt.Sprintf("/queue/item/%d/api/json", id))
		b := c.json(relPath(t, str(m["executable"].(map[string]any)["url"])) + "api/json?tree=result,duration")
		results = append(results, fmt.Sprintf("%v/%v", b["result"], b["duration"]))
	}
	if got := strings.Join(results, " "); got != "FAILURE/1000 UNSTABLE/2000 SUCCESS/4000" {
		t.Errorf("outcomes = %s", got)
	}
	// Successful and unstable builds first, then failures: (2000+4000+1000)/3.
	if m := c.json("/job/p/lastBuild/api/json?tree=estimatedDuration"); num(m["estimatedDuration"]) != 2333 {
		t.Errorf("estimatedDuration = %v, want 2333", m["estimatedDuration"])
	}
	if m := c.json("/job/p/api/json?tree=color,builds[number]{0,2}"); m["color"] != "blue" || len(m["builds"].([]any)) != 2 {
		t.Errorf("job = %v, want blue and two builds", m)
	}
	// A job's builds are whole builds: at the default depth only their
	// number and url show, and a tree may ask for more.
	first := c.json("/job/p/api/json")["builds"].([]any)[0].(map[string]any)
	if len(first) != 3 || first["_class"] == nil || num(first["number"]) != 3 || first["url"] == nil {
		t.Errorf("a build at depth 0 = %v, want _class, number and url", first)
	}
	first = c.json("/job/p/api/json?tree=builds[number,queueId,result]{0,1}")["builds"].([]any)[0].(map[string]any)
	if num(first["number"]) != 3 || num(first["queueId"]) == 0 || first["result"] != "SUCCESS" {
		t.Errorf("a build with a tree = %v, want number 3, its queueId and SUCCESS", first)
	}
}

func TestGoAPITriggerMergesAndCancels(t *testing.T) {
	e := jenkinstest.New(t)
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Params: []jenkinstest.ParamSpec{{Name: "A", Default: "d"}}})
	a, _ := e.Trigger("p", map[string]string{"A": "d", "X": "ignored"}, time.Minute)
	b, _ := e.Trigger("p", nil, time.Minute)
	if a != b {
		t.Fatalf("equal requests got items %d and %d", a, b)
	}
	c := newClient(t, e.URL, "", "")
	if m := c.json("/job/p/api/json?tree=inQueue,queueItem[id]"); m["inQueue"] != true || num(m["queueItem"].(map[string]any)["id"]) != a {
		t.Fatalf("job queue state = %v", m)
	}
	if !e.CancelQueueItem(a) || e.CancelQueueItem(a) {
		t.Fatal("CancelQueueItem should succeed once")
	}
	if m := c.json(fmt.Sprintf("/queue/item/%d/api/json", a)); m["cancelled"] != true {
		t.Fatalf("item after cancel = %v", m)
	}
}

func TestScenarioExample(t *testing.T) {
	data, err := os.ReadFile("emulator/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := jenkinstest.ParseScenario(data)
	if err != nil {
		t.Fatal(err)
	}
	e := jenkinstest.New(t, sc.Options()...)
	if err := sc.Apply(e); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, e.URL, "gearbridge", sc.Users[0].Tokens[0])
	m := c.json("/label/win-1/api/json?tree=nodes[nodeName,mode]")
	if n := m["nodes"].([]any)[0].(map[string]any); n["mode"] != "EXCLUSIVE" {
		t.Errorf("win-1 = %v, want EXCLUSIVE", n)
	}
	r, item := c.trigger("/job/team/job/deploy/", url.Values{"ZUUL_UUID": {"u1"}, "NODE": {"ubuntu-2"}, "delay": {"0sec"}})
	if r.status != http.StatusCreated {
		t.Fatalf("trigger = %d %s", r.status, r.body)
	}
	exe := c.pollItem(item)["executable"].(map[string]any)
	if b := c.json(relPath(t, str(exe["url"])) + "api/json?tree=builtOn"); b["builtOn"] != "ubuntu-2" {
		t.Errorf("pinned build ran on %v", b["builtOn"])
	}
	if _, err := jenkinstest.ParseScenario([]byte("nodes:\n  - name: x\n    executers: 2\n")); err == nil {
		t.Error("a misspelled key was accepted")
	}
}

func TestFakeClock(t *testing.T) {
	c := jenkinstest.NewFakeClock(time.Time{})
	start := c.Now()
	var got []string
	c.AfterFunc(2*time.Second, func() { got = append(got, "2s") })
	c.AfterFunc(time.Second, func() {
		got = append(got, "1s")
		c.AfterFunc(500*time.Millisecond, func() { got = append(got, fmt.Sprint("1.5s@", c.Now().Sub(start))) })
	})
	stopped := c.AfterFunc(time.Second, func() { got = append(got, "stopped") })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop should report true once")
	}
	c.Advance(1999 * time.Millisecond)
	if strings.Join(got, ",") != "1s,1.5s@1.5s" {
		t.Fatalf("fired %v", got)
	}
	c.Advance(time.Millisecond)
	if strings.Join(got, ",") != "1s,1.5s@1.5s,2s" || c.Now().Sub(start) != 2*time.Second {
		t.Fatalf("fired %v at %v", got, c.Now().Sub(start))
	}
}

// TestConcurrentLoad runs many zero-length builds from several clients at
// once, under the race detector, through the hot paths the bridge uses.
func TestConcurrentLoad(t *testing.T) {
	e := jenkinstest.New(t)
	for i := 0; i < 4; i++ {
		mustNode(t, e, jenkinstest.NodeSpec{Name: fmt.Sprintf("n%d", i), Executors: 5})
	}
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Concurrent: true, Params: []jenkinstest.ParamSpec{{Name: "U"}}})
	tok := e.AddUser("gb", "")
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t, e.URL, "gb", tok)
			for i := 0; i < 15; i++ {
				_, item := c.trigger("/job/p/", url.Values{"U": {fmt.Sprintf("%d-%d", w, i)}, "delay": {"0sec"}})
				exe := c.pollItem(item)["executable"].(map[string]any)
				c.json(relPath(t, str(exe["url"])) + "api/json?tree=building,result")
				c.json("/computer/api/json?tree=computer[displayName,offline,executors[idle]]")
			}
		}()
	}
	wg.Wait()
	if n := len(e.Builds("p")); n != 90 {
		t.Fatalf("%d builds, want 90", n)
	}
	if w := e.WaitedItems(); len(w) != 0 {
		t.Fatalf("%d items waited for an executor with 20 free", len(w))
	}
}

func TestAnonymousReadAndForcedCrumbs(t *testing.T) {
	e := jenkinstest.New(t, jenkinstest.WithAnonymousRead(true))
	e.AddUser("alice", "pw")
	mustJob(t, e, jenkinstest.JobSpec{Name: "plain"})
	anon := newClient(t, e.URL, "", "")
	if r := anon.get("/api/json"); r.status != http.StatusOK {
		t.Errorf("anonymous read = %d, want 200", r.status)
	}
	if r := anon.post("/job/plain/build", nil); r.status != http.StatusForbidden {
		t.Errorf("anonymous POST = %d, want 403", r.status)
	}
	if m := anon.json("/whoAmI/api/json"); m["anonymous"] != true || m["name"] != "anonymous" {
		t.Errorf("whoAmI = %v", m)
	}

	// Crumbs forced on without security: anonymous POSTs need one too.
	open := jenkinstest.New(t, jenkinstest.WithCrumbs(true))
	mustJob(t, open, jenkinstest.JobSpec{Name: "plain"})
	c := newClient(t, open.URL, "", "")
	if r := c.post("/job/plain/build", nil); r.status != http.StatusForbidden {
		t.Errorf("POST without crumb = %d, want 403", r.status)
	}
	c.fetchCrumb()
	if r := c.post("/job/plain/build", nil); r.status != http.StatusCreated {
		t.Errorf("POST with crumb = %d, want 201", r.status)
	}
	if m := c.json("/api/json?tree=useCrumbs,useSecurity"); m["useCrumbs"] != true || m["useSecurity"] != false {
		t.Errorf("root = %v", m)
	}
}
