package jenkinstest_test

// One test per behaviour of reference §5.5 ("Real-Jenkins behaviours a
// naive emulator gets wrong"). Setup uses the Go API; every assertion goes
// over HTTP, so the same checks would pass against a real Jenkins.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
)

func str(v any) string { s, _ := v.(string); return s }
func num(v any) int    { f, _ := v.(float64); return int(f) }

// 1. Triggering returns a queue item, not a build; the number exists only
// after the start; the default quiet period of 5 s applies unless delay.
func TestBehaviour01_TriggerReturnsQueueItem(t *testing.T) {
	clock := jenkinstest.NewFakeClock(time.Time{})
	e := jenkinstest.New(t, jenkinstest.WithClock(clock))
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Params: []jenkinstest.ParamSpec{{Name: "A"}}, Concurrent: true})
	c := newClient(t, e.URL, "", "")

	r, item := c.trigger("/job/p/", url.Values{"A": {"1"}})
	if r.status != http.StatusCreated || !strings.HasPrefix(item, "/queue/item/") {
		t.Fatalf("trigger: %d Location %q", r.status, r.header.Get("Location"))
	}
	m := c.json(item + "api/json")
	if m["_class"] != "hudson.model.Queue$WaitingItem" || !strings.HasPrefix(str(m["why"]), "In the quiet period. Expires in ") {
		t.Fatalf("fresh item = %v %q, want a WaitingItem in the quiet period", m["_class"], m["why"])
	}
	if got := c.get("/job/p/1/api/json").status; got != http.StatusNotFound {
		t.Fatalf("build #1 before start: %d, want 404", got)
	}
	if n := num(c.json("/job/p/api/json?tree=nextBuildNumber")["nextBuildNumber"]); n != 1 {
		t.Fatalf("nextBuildNumber = %d before start, want 1", n)
	}
	clock.Advance(4900 * time.Millisecond)
	if m := c.json(item + "api/json"); m["_class"] != "hudson.model.Queue$WaitingItem" {
		t.Fatalf("item after 4.9 s = %v, want still waiting", m["_class"])
	}
	clock.Advance(100 * time.Millisecond)
	left := c.pollItem(item)
	if exe := left["executable"].(map[string]any); num(exe["number"]) != 1 {
		t.Fatalf("executable = %v, want build 1", exe)
	}

	// delay=0sec skips the quiet period.
	_, item2 := c.trigger("/job/p/", url.Values{"A": {"2"}, "delay": {"0sec"}})
	if exe := c.pollItem(item2)["executable"].(map[string]any); num(exe["number"]) != 2 {
		t.Fatalf("executable = %v, want build 2", exe)
	}
}

// 2. Identical requests merge while queued: same item, 303 from 2.308 on
// (201 before); non-parameterized jobs always merge.
func TestBehaviour02_Merging(t *testing.T) {
	for _, tc := range []struct {
		version string
		dup     int
	}{{jenkinstest.VersionCurrent, http.StatusSeeOther}, {jenkinstest.VersionLegacy, http.StatusCreated}} {
		t.Run(tc.version, func(t *testing.T) {
			e := jenkinstest.New(t, jenkinstest.WithVersion(tc.version))
			mustJob(t, e, jenkinstest.JobSpec{Name: "p", Params: []jenkinstest.ParamSpec{{Name: "A"}}})
			mustJob(t, e, jenkinstest.JobSpec{Name: "plain"})
			c := newClient(t, e.URL, "", "") // no nodes: everything stays queued

			r1, i1 := c.trigger("/job/p/", url.Values{"A": {"x"}, "delay": {"0sec"}})
			r2, i2 := c.trigger("/job/p/", url.Values{"A": {"x"}, "IGNORED": {"y"}, "delay": {"0sec"}})
			_, i3 := c.trigger("/job/p/", url.Values{"A": {"other"}, "delay": {"0sec"}})
			if r1.status != http.StatusCreated || r2.status != tc.dup {
				t.Fatalf("statuses %d, %d; want 201, %d", r1.status, r2.status, tc.dup)
			}
			if i1 != i2 || i1 == i3 {
				t.Fatalf("items %s %s %s: want the first two equal, the third different", i1, i2, i3)
			}
			p1 := c.post("/job/plain/build", url.Values{"delay": {"0sec"}})
			p2 := c.post("/job/plain/build", nil)
			if relPath(t, p1.header.Get("Location")) != relPath(t, p2.header.Get("Location")) {
				t.Fatalf("plain job: %q and %q, want one item", p1.header.Get("Location"), p2.header.Get("Location"))
			}
			if n := len(c.json("/queue/api/json")["items"].([]any)); n != 3 {
				t.Fatalf("queue has %d items, want 3", n)
			}
		})
	}
}

// 3. A non-concurrent job blocks its second build even with idle executors.
func TestBehaviour03_NonConcurrentBlocks(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1", Executors: 2})
	mustJob(t, e, jenkinstest.JobSpec{Name: "serial", Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	mustJob(t, e, jenkinstest.JobSpec{Name: "para", Concurrent: true, Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	if err := e.HoldBuilds(""); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, e.URL, "", "")

	_, first := c.trigger("/job/serial/", url.Values{"A": {"1"}, "delay": {"0sec"}})
	c.pollItem(first)
	_, second := c.trigger("/job/serial/", url.Values{"A": {"2"}, "delay": {"0sec"}})
	var m map[string]any
	eventually(t, "second item blocked", func() bool {
		m = c.json(second + "api/json")
		return m["_class"] == "hudson.model.Queue$BlockedItem"
	})
	if m["blocked"] != true || !strings.HasPrefix(str(m["why"]), "Build #1 is already in progress") {
		t.Fatalf("blocked item: blocked=%v why=%q", m["blocked"], m["why"])
	}
	idle := 0
	for _, x := range c.json("/computer/n1/api/json?tree=executors[idle]")["executors"].([]any) {
		if x.(map[string]any)["idle"] == true {
			idle++
		}
	}
	if idle != 1 {
		t.Fatalf("%d idle executors, want 1 (blocked despite a free executor)", idle)
	}
	if _, err := e.Release("serial"); err != nil {
		t.Fatal(err)
	}
	if exe := c.pollItem(second)["executable"].(map[string]any); num(exe["number"]) != 2 {
		t.Fatalf("second started as %v, want #2", exe)
	}

	// A concurrent job runs two builds side by side.
	e.Release("")
	_, a := c.trigger("/job/para/", url.Values{"A": {"1"}, "delay": {"0sec"}})
	_, b := c.trigger("/job/para/", url.Values{"A": {"2"}, "delay": {"0sec"}})
	c.pollItem(a)
	c.pollItem(b)
	if got := c.json("/job/para/api/json?tree=color")["color"]; got != "notbuilt_anime" {
		t.Fatalf("color = %v, want notbuilt_anime", got)
	}
}

// 4. cancelled/executable only on LeftItem; 404 after 5 minutes; the item
// url is relative and executable.url absolute.
func TestBehaviour04_LeftItems(t *testing.T) {
	clock := jenkinstest.NewFakeClock(time.Time{})
	e := jenkinstest.New(t, jenkinstest.WithClock(clock))
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Concurrent: true, Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	c := newClient(t, e.URL, "", "")

	_, waiting := c.trigger("/job/p/", url.Values{"A": {"w"}})
	m := c.json(waiting + "api/json")
	for _, k := range []string{"cancelled", "executable"} {
		if _, ok := m[k]; ok {
			t.Errorf("waiting item has %q", k)
		}
	}
	id := strings.TrimSuffix(strings.TrimPrefix(waiting, "/queue/item/"), "/")
	if m["url"] != "queue/item/"+id+"/" {
		t.Errorf("item url = %v, want relative queue/item/%s/", m["url"], id)
	}
	if r := c.post("/queue/cancelItem?id="+id, nil); r.status != http.StatusNoContent {
		t.Fatalf("cancelItem = %d", r.status)
	}
	m = c.json(waiting + "api/json")
	if exe, ok := m["executable"]; m["cancelled"] != true || !ok || exe != nil {
		t.Fatalf("cancelled item: cancelled=%v executable=%v (present %v)", m["cancelled"], exe, ok)
	}

	_, started := c.trigger("/job/p/", url.Values{"A": {"s"}, "delay": {"0sec"}})
	m = c.pollItem(started)
	exe := m["executable"].(map[string]any)
	if m["cancelled"] != false || !strings.HasPrefix(str(exe["url"]), e.URL+"/job/p/") {
		t.Fatalf("started item: cancelled=%v executable.url=%v", m["cancelled"], exe["url"])
	}
	clock.Advance(4*time.Minute + 59*time.Second)
	if got := c.get(started + "api/json").status; got != http.StatusOK {
		t.Fatalf("left item after 4:59 = %d", got)
	}
	clock.Advance(time.Second)
	for _, item := range []string{waiting, started} {
		if got := c.get(item + "api/json").status; got != http.StatusNotFound {
			t.Errorf("left item %s after 5 min = %d, want 404", item, got)
		}
	}
}

// 5. Location is absolute with a trailing slash; POST actions redirect
// with 302; cancelItem gives 204/404 from 2.211 and 302 before.
func TestBehaviour05_StatusCodesAndLocations(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	e.HoldBuilds("")
	c := newClient(t, e.URL, "", "")

	r, item := c.trigger("/job/p/", url.Values{"A": {"1"}, "delay": {"0sec"}})
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, e.URL+"/queue/item/") || !strings.HasSuffix(loc, "/") {
		t.Fatalf("Location %q: want absolute with trailing /", loc)
	}
	buildURL := str(c.pollItem(item)["executable"].(map[string]any)["url"])
	bp := relPath(t, buildURL)
	for _, tc := range []struct{ path, want string }{
		{bp + "submitDescription?description=hi", buildURL},
		{bp + "stop", buildURL},
		{"/computer/n1/toggleOffline?offlineMessage=x", e.URL + "/computer/n1/"},
		{"/computer/n1/changeOfflineCause?offlineMessage=y", e.URL + "/computer/n1/"},
		{"/quietDown", e.URL + "/"},
		{"/cancelQuietDown", e.URL + "/"},
	} {
		r := c.post(tc.path, nil)
		if r.status != http.StatusFound || r.header.Get("Location") != tc.want {
			t.Errorf("POST %s = %d Location %q, want 302 %q", tc.path, r.status, r.header.Get("Location"), tc.want)
		}
	}
	b := c.get(bp + "api/json?tree=description,building,result")
	if b.header.Get("X-Jenkins") != jenkinstest.VersionCurrent || !strings.Contains(b.body, `"description":"hi"`) {
		t.Errorf("build after submitDescription: X-Jenkins %q, body %s", b.header.Get("X-Jenkins"), b.body)
	}
	if got := c.get(bp + "stop").status; got != http.StatusMethodNotAllowed {
		t.Errorf("GET stop = %d, want 405", got)
	}
	_, queued := c.trigger("/job/p/", url.Values{"A": {"2"}})
	id := strings.TrimSuffix(strings.TrimPrefix(queued, "/queue/item/"), "/")
	if r := c.post("/queue/cancelItem?id="+id, nil); r.status != http.StatusNoContent {
		t.Errorf("cancelItem = %d, want 204", r.status)
	}
	if r := c.post("/queue/cancelItem?id=9999", nil); r.status != http.StatusNotFound {
		t.Errorf("cancelItem of unknown id = %d, want 404", r.status)
	}

	legacy := jenkinstest.New(t, jenkinstest.WithVersion(jenkinstest.VersionLegacy))
	lc := newClient(t, legacy.URL, "", "")
	if r := lc.post("/queue/cancelItem?id=9999", nil); r.status != http.StatusFound || !strings.HasPrefix(r.header.Get("Location"), legacy.URL+"/") {
		t.Errorf("legacy cancelItem = %d %q, want 302 to an absolute URL", r.status, r.header.Get("Location"))
	}
}

// 6. Undefined parameters are dropped, missing ones defaulted;
// buildWithParameters on an unparameterized job is 400 (500 before 2.524);
// a disabled job gives 409.
func TestBehaviour06_Parameters(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Concurrent: true, Params: []jenkinstest.ParamSpec{
		{Name: "S", Default: "dflt"},
		{Name: "T", Type: jenkinstest.TextParam},
		{Name: "B", Type: jenkinstest.BooleanParam, Default: "true"},
		{Name: "C", Type: jenkinstest.ChoiceParam, Choices: []string{"red", "green"}},
	}})
	mustJob(t, e, jenkinstest.JobSpec{Name: "plain"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "off", Disabled: true, Params: []jenkinstest.ParamSpec{{Name: "S"}}})
	c := newClient(t, e.URL, "", "")

	_, item := c.trigger("/job/p/", url.Values{"T": {"line1\nline2"}, "ZUUL_UUID": {"abc"}, "delay": {"0sec"}})
	b := c.json(relPath(t, str(c.pollItem(item)["executable"].(map[string]any)["url"])) + "api/json?tree=actions[parameters[name,value]]")
	got := map[string]any{}
	for _, a := range b["actions"].([]any) {
		ps, _ := a.(map[string]any)["parameters"].([]any) // other actions show only _class
		for _, pv := range ps {
			got[str(pv.(map[string]any)["name"])] = pv.(map[string]any)["value"]
		}
	}
	want := map[string]any{"S": "dflt", "T": "line1\nline2", "B": true, "C": "red"}
	if len(got) != len(want) {
		t.Fatalf("parameters %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("parameter %s = %#v, want %#v", k, got[k], v)
		}
	}
	if r, _ := c.trigger("/job/p/", url.Values{"C": {"blue"}, "delay": {"0sec"}}); r.status != http.StatusBadRequest {
		t.Errorf("illegal choice = %d, want 400", r.status)
	}
	if r, _ := c.trigger("/job/plain/", nil); r.status != http.StatusBadRequest {
		t.Errorf("buildWithParameters on unparameterized job = %d, want 400", r.status)
	}
	if r, _ := c.trigger("/job/off/", nil); r.status != http.StatusConflict {
		t.Errorf("disabled job = %d, want 409", r.status)
	}
	if r := c.post("/job/p/build", url.Values{"json": {`{"parameter":[{"name":"NOPE","value":"1"}]}`}}); r.status < 400 {
		t.Errorf("build with an undefined json parameter = %d, want an error", r.status)
	}

	legacy := jenkinstest.New(t, jenkinstest.WithVersion(jenkinstest.VersionLegacy))
	mustJob(t, legacy, jenkinstest.JobSpec{Name: "plain"})
	if r, _ := newClient(t, legacy.URL, "", "").trigger("/job/plain/", nil); r.status != http.StatusInternalServerError {
		t.Errorf("legacy buildWithParameters on unparameterized job = %d, want 500", r.status)
	}
}

// 7. result is null while building, estimatedDuration -1 the first time,
// duration 0 until done; stop is asynchronous.
func TestBehaviour07_BuildLifecycle(t *testing.T) {
	clock := jenkinstest.NewFakeClock(time.Time{})
	e := jenkinstest.New(t, jenkinstest.WithClock(clock), jenkinstest.WithStopDelay(time.Second))
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Duration: 10 * time.Second, Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	c := newClient(t, e.URL, "", "")
	const tree = "api/json?tree=building,result,duration,estimatedDuration,timestamp"

	start := func(a string) string {
		_, item := c.trigger("/job/p/", url.Values{"A": {a}, "delay": {"0sec"}})
		return relPath(t, str(c.pollItem(item)["executable"].(map[string]any)["url"]))
	}
	b1 := start("1")
	m := c.json(b1 + tree)
	if m["building"] != true || m["result"] != nil || num(m["duration"]) != 0 || num(m["estimatedDuration"]) != -1 {
		t.Fatalf("running first build: %v", m)
	}
	if ts := int64(m["timestamp"].(float64)); ts != clock.Now().UnixMilli() {
		t.Errorf("timestamp = %d, want the start time %d", ts, clock.Now().UnixMilli())
	}
	clock.Advance(10 * time.Second)
	m = c.json(b1 + tree)
	if m["building"] != false || m["result"] != "SUCCESS" || num(m["duration"]) != 10000 {
		t.Fatalf("finished build: %v", m)
	}

	b2 := start("2")
	if m := c.json(b2 + tree); num(m["estimatedDuration"]) != 10000 {
		t.Fatalf("second build estimatedDuration = %v, want 10000", m["estimatedDuration"])
	}
	if r := c.post(b2+"stop", nil); r.status != http.StatusFound {
		t.Fatalf("stop = %d", r.status)
	}
	if m := c.json(b2 + tree); m["building"] != true || m["result"] != nil {
		t.Fatalf("just after stop: %v, want still building", m)
	}
	clock.Advance(time.Second)
	if m := c.json(b2 + tree); m["building"] != false || m["result"] != "ABORTED" || num(m["duration"]) != 1000 {
		t.Fatalf("after the stop delay: %v, want ABORTED after 1 s", m)
	}
}

// 8. builtOn and nodeName are "" for the built-in node; its displayName
// and URL token depend on the version; the self label is in assignedLabels.
func TestBehaviour08_BuiltInNode(t *testing.T) {
	for _, tc := range []struct{ version, name, token, self string }{
		{jenkinstest.VersionCurrent, "Built-In Node", "(built-in)", "built-in"},
		{"2.300", "master", "(master)", "master"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			e := jenkinstest.New(t, jenkinstest.WithVersion(tc.version))
			e.ConfigureBuiltIn(1, jenkinstest.Normal, "controller")
			mustJob(t, e, jenkinstest.JobSpec{Name: "p", Params: []jenkinstest.ParamSpec{{Name: "A"}}})
			c := newClient(t, e.URL, "", "")

			comp := c.json("/computer/" + url.PathEscape(tc.token) + "/api/json?tree=displayName,assignedLabels[name]")
			if comp["displayName"] != tc.name {
				t.Errorf("displayName = %v, want %q", comp["displayName"], tc.name)
			}
			var labels []string
			for _, l := range comp["assignedLabels"].([]any) {
				labels = append(labels, str(l.(map[string]any)["name"]))
			}
			if strings.Join(labels, " ") != "controller "+tc.self {
				t.Errorf("assignedLabels = %q, want controller and the self label %q", labels, tc.self)
			}
			if got := c.get("/computer/master/api/json").status; got != http.StatusNotFound {
				t.Errorf("/computer/master/ = %d, want 404", got)
			}
			if got := c.get("/computer/(master)/api/json").status; got != http.StatusOK {
				t.Errorf("/computer/(master)/ = %d, want 200 (always accepted)", got)
			}
			if m := c.json("/api/json?tree=nodeName"); m["nodeName"] != "" {
				t.Errorf("root nodeName = %v", m["nodeName"])
			}
			_, item := c.trigger("/job/p/", url.Values{"delay": {"0sec"}})
			exe := c.pollItem(item)["executable"].(map[string]any)
			if b := c.json(relPath(t, str(exe["url"])) + "api/json?tree=builtOn"); b["builtOn"] != "" {
				t.Errorf("builtOn = %v, want \"\"", b["builtOn"])
			}
			l := c.json("/label/" + tc.self + "/api/json?tree=nodes[nodeName]")
			if n := l["nodes"].([]any); len(n) != 1 || n[0].(map[string]any)["nodeName"] != "" {
				t.Errorf("label %s nodes = %v", tc.self, n)
			}
		})
	}
}

// 9. offline = temporarily offline OR disconnected; temporarily offline
// nodes keep running builds; toggleOffline toggles; disconnected agents
// still list idle executors.
func TestBehaviour09_Offline(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1", Executors: 2})
	mustNode(t, e, jenkinstest.NodeSpec{Name: "gone", Executors: 3, Disconnected: true})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Concurrent: true, Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	e.HoldBuilds("")
	c := newClient(t, e.URL, "", "")
	const tree = "/api/json?tree=offline,temporarilyOffline,offlineCauseReason,executors[idle]"

	g := c.json("/computer/gone" + tree)
	if g["offline"] != true || g["temporarilyOffline"] != false || len(g["executors"].([]any)) != 3 {
		t.Fatalf("disconnected agent: %v", g)
	}
	for _, x := range g["executors"].([]any) {
		if x.(map[string]any)["idle"] != true {
			t.Fatalf("disconnected agent executors: %v, want all idle", g["executors"])
		}
	}
	_, item := c.trigger("/job/p/", url.Values{"A": {"1"}, "delay": {"0sec"}})
	bp := relPath(t, str(c.pollItem(item)["executable"].(map[string]any)["url"]))

	c.post("/computer/n1/toggleOffline?offlineMessage=maint", nil)
	m := c.json("/computer/n1" + tree)
	if m["offline"] != true || m["temporarilyOffline"] != true || m["offlineCauseReason"] != "maint" {
		t.Fatalf("after toggleOffline: %v", m)
	}
	if b := c.json(bp + "api/json?tree=building"); b["building"] != true {
		t.Fatal("the running build stopped when its node went temporarily offline")
	}
	_, item2 := c.trigger("/job/p/", url.Values{"A": {"2"}, "delay": {"0sec"}})
	eventually(t, "item on offline node to be buildable", func() bool {
		return c.json(item2 + "api/json")["_class"] == "hudson.model.Queue$BuildableItem"
	})
	c.post("/computer/n1/toggleOffline", nil)
	if m := c.json("/computer/n1" + tree); m["offline"] != false || m["temporarilyOffline"] != false {
		t.Fatalf("after a second toggleOffline: %v, want online again", m)
	}
	c.pollItem(item2)
	// changeOfflineCause always sets offline, it never toggles.
	c.post("/computer/n1/changeOfflineCause?offlineMessage=a", nil)
	c.post("/computer/n1/changeOfflineCause?offlineMessage=b", nil)
	if m := c.json("/computer/n1" + tree); m["temporarilyOffline"] != true || m["offlineCauseReason"] != "b" {
		t.Fatalf("after changeOfflineCause twice: %v", m)
	}
}

// 10. Label semantics: EXCLUSIVE nodes take only matching jobs; unlabeled
// jobs can run on the built-in node.
func TestBehaviour10_LabelsAndModes(t *testing.T) {
	e := jenkinstest.New(t)
	e.ConfigureBuiltIn(1, jenkinstest.Normal)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "ex", Labels: []string{"special"}, Mode: jenkinstest.Exclusive})
	mustJob(t, e, jenkinstest.JobSpec{Name: "any", Concurrent: true, Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	mustJob(t, e, jenkinstest.JobSpec{Name: "sp", Label: "special || nothing"})
	e.HoldBuilds("")
	c := newClient(t, e.URL, "", "")
	builtOn := func(item string) any {
		exe := c.pollItem(item)["executable"].(map[string]any)
		return c.json(relPath(t, str(exe["url"])) + "api/json?tree=builtOn")["builtOn"]
	}

	_, i1 := c.trigger("/job/any/", url.Values{"A": {"1"}, "delay": {"0sec"}})
	if got := builtOn(i1); got != "" {
		t.Fatalf("unlabeled job ran on %q, want the built-in node", got)
	}
	_, i2 := c.trigger("/job/any/", url.Values{"A": {"2"}, "delay": {"0sec"}})
	eventually(t, "unlabeled job to wait", func() bool {
		return c.json(i2 + "api/json")["why"] == "Waiting for next available executor"
	})
	r := c.post("/job/sp/build?delay=0sec", nil)
	if got := builtOn(relPath(t, r.header.Get("Location"))); got != "ex" {
		t.Fatalf("labeled job ran on %q, want ex", got)
	}
	if m := c.json(i2 + "api/json"); m["_class"] != "hudson.model.Queue$BuildableItem" {
		t.Fatalf("unlabeled job %v: an EXCLUSIVE node took it", m["_class"])
	}
}

// 11. depth and visibility pruning; labelExpression and assignedLabels are
// absent before 2.94 (the label is then in config.xml).
func TestBehaviour11_Pruning(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1", Labels: []string{"linux"}, Executors: 2})
	mustJob(t, e, jenkinstest.JobSpec{Name: "f/p", Label: "linux"})
	c := newClient(t, e.URL, "", "")

	comps := c.json("/computer/api/json")["computer"].([]any)
	n1 := comps[1].(map[string]any)
	execs := n1["executors"].([]any)
	if len(execs) != 2 || len(execs[0].(map[string]any)) != 1 || execs[0].(map[string]any)["_class"] != "hudson.model.Executor" {
		t.Errorf("depth 0 executors = %v, want [{_class}, {_class}]", execs)
	}
	if execs := c.json("/computer/api/json?depth=1")["computer"].([]any)[1].(map[string]any)["executors"].([]any); execs[0].(map[string]any)["idle"] != true {
		t.Errorf("depth 1 executors = %v, want idle shown", execs)
	}
	nodes := c.json("/label/linux/api/json")["nodes"].([]any)
	if len(nodes) != 1 || len(nodes[0].(map[string]any)) != 2 || nodes[0].(map[string]any)["nodeName"] != "n1" {
		t.Errorf("label nodes at depth 0 = %v, want only _class and nodeName", nodes)
	}
	folder := c.json("/api/json")["jobs"].([]any)[0].(map[string]any)
	if len(folder) != 3 || folder["name"] != "f" || folder["url"] == nil {
		t.Errorf("folder in the root list = %v, want _class, name, url", folder)
	}
	job := c.json("/job/f/api/json")["jobs"].([]any)[0].(map[string]any)
	if len(job) != 4 || job["color"] != "notbuilt" {
		t.Errorf("job in a folder list = %v, want _class, name, url, color", job)
	}
	m := c.json("/job/f/job/p/api/json?tree=name,labelExpression,property[parameterDefinitions[name]]{0,1}")
	if len(m) != 4 || m["labelExpression"] != "linux" {
		t.Errorf("tree= result %v", m)
	}
	if r := c.get("/api/json?tree=jobs[name"); r.status != http.StatusBadRequest {
		t.Errorf("bad tree = %d, want 400", r.status)
	}

	legacy := jenkinstest.New(t, jenkinstest.WithVersion(jenkinstest.VersionLegacy))
	mustNode(t, legacy, jenkinstest.NodeSpec{Name: "n1", Labels: []string{"linux"}, Mode: jenkinstest.Exclusive})
	mustJob(t, legacy, jenkinstest.JobSpec{Name: "p", Label: "linux && !windows"})
	lc := newClient(t, legacy.URL, "", "")
	if m := lc.json("/job/p/api/json"); m["labelExpression"] != nil || hasKey(m, "labelExpression") {
		t.Errorf("legacy job JSON has labelExpression: %v", m["labelExpression"])
	}
	if m := lc.json("/computer/n1/api/json"); hasKey(m, "assignedLabels") {
		t.Errorf("legacy computer JSON has assignedLabels")
	}
	if x := lc.get("/job/p/config.xml").body; !strings.Contains(x, "<assignedNode>linux &amp;&amp; !windows</assignedNode>") || !strings.Contains(x, "<canRoam>false</canRoam>") {
		t.Errorf("legacy config.xml lacks the label:\n%s", x)
	}
	if x := lc.get("/computer/n1/config.xml").body; !strings.Contains(x, "<mode>EXCLUSIVE</mode>") {
		t.Errorf("node config.xml lacks the mode:\n%s", x)
	}
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }

// 12. Crumbs are tied to the session cookie and the user; API-token
// requests are exempt (2.96+); GETs never need a crumb; bad credentials 401.
func TestBehaviour12_Crumbs(t *testing.T) {
	e := jenkinstest.New(t)
	token := e.AddUser("alice", "secret")
	e.AddUser("bob", "bobpw")
	mustJob(t, e, jenkinstest.JobSpec{Name: "plain"})
	const noCrumb = "No valid crumb was included in the request"

	if r := newClient(t, e.URL, "alice", "wrong").get("/api/json"); r.status != http.StatusUnauthorized {
		t.Errorf("bad password = %d, want 401", r.status)
	}
	if r := newClient(t, e.URL, "", "").get("/api/json"); r.status != http.StatusForbidden {
		t.Errorf("anonymous = %d, want 403", r.status)
	}
	if r := newClient(t, e.URL, "alice", token).post("/job/plain/build", nil); r.status != http.StatusCreated {
		t.Errorf("API token POST without crumb = %d %q, want 201", r.status, r.body)
	}
	pw := newClient(t, e.URL, "alice", "secret")
	if r := pw.get("/api/json"); r.status != http.StatusOK {
		t.Errorf("GET without crumb = %d, want 200", r.status)
	}
	if r := pw.post("/job/plain/build", nil); r.status != http.StatusForbidden || !strings.Contains(r.body, noCrumb) {
		t.Errorf("password POST without crumb = %d %q, want 403 %q", r.status, r.body, noCrumb)
	}
	pw.fetchCrumb()
	// 303: the request merges with the one the API-token POST queued.
	if r := pw.post("/job/plain/build", nil); r.status != http.StatusSeeOther {
		t.Errorf("password POST with crumb and session = %d %q", r.status, r.body)
	}
	// The same crumb from a client without that session cookie fails.
	other := newClient(t, e.URL, "alice", "secret")
	other.crumb = pw.crumb
	if r := other.post("/job/plain/build", nil); r.status != http.StatusForbidden {
		t.Errorf("crumb without its session = %d, want 403", r.status)
	}
	// bob with alice's cookie jar and crumb fails: the crumb names the user.
	bob := newClient(t, e.URL, "bob", "bobpw")
	bob.hc.Jar, bob.crumb = pw.hc.Jar, pw.crumb
	if r := bob.post("/job/plain/build", nil); r.status != http.StatusForbidden {
		t.Errorf("another user's crumb = %d, want 403", r.status)
	}
	// Before 2.96 API-token requests need a crumb too.
	legacy := jenkinstest.New(t, jenkinstest.WithVersion(jenkinstest.VersionLegacy))
	ltok := legacy.AddUser("alice", "secret")
	mustJob(t, legacy, jenkinstest.JobSpec{Name: "plain"})
	lc := newClient(t, legacy.URL, "alice", ltok)
	if r := lc.post("/job/plain/build", nil); r.status != http.StatusForbidden {
		t.Errorf("legacy API token POST without crumb = %d, want 403", r.status)
	}
	lc.fetchCrumb()
	if r := lc.post("/job/plain/build", nil); r.status != http.StatusCreated {
		t.Errorf("legacy API token POST with crumb = %d", r.status)
	}
}

// 13. Names are percent-encoded in URLs, folders nest as /job/a/job/b/,
// and name (short) differs from fullName.
func TestBehaviour13_FoldersAndEncoding(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "team a/sub/my job"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "my job"})
	c := newClient(t, e.URL, "", "")

	m := c.json("/job/team%20a/job/sub/job/my%20job/api/json?tree=name,fullName,url")
	if m["name"] != "my job" || m["fullName"] != "team a/sub/my job" || m["url"] != e.URL+"/job/team%20a/job/sub/job/my%20job/" {
		t.Fatalf("foldered job = %v", m)
	}
	if m := c.json("/job/my%20job/api/json?tree=fullName"); m["fullName"] != "my job" {
		t.Fatalf("top-level job of the same short name = %v", m)
	}
	if r := c.get("/job/sub/api/json"); r.status != http.StatusNotFound {
		t.Errorf("/job/sub/ = %d, want 404 (it lives in a folder)", r.status)
	}
	r := c.post("/job/team%20a/job/sub/job/my%20job/build?delay=0sec", nil)
	exe := c.pollItem(relPath(t, r.header.Get("Location")))["executable"].(map[string]any)
	if str(exe["url"]) != e.URL+"/job/team%20a/job/sub/job/my%20job/1/" {
		t.Fatalf("build url = %v", exe["url"])
	}
	tree := c.json("/api/json?tree=jobs[name,jobs[name,jobs[name,fullName]]]")
	var names []string
	for _, j := range tree["jobs"].([]any) {
		names = append(names, str(j.(map[string]any)["name"]))
	}
	if strings.Join(names, ",") != "my job,team a" {
		t.Fatalf("root jobs = %v", names)
	}
}

// 14. Queue maintenance is periodic and event-driven: a start lags the
// trigger, so clients must poll.
func TestBehaviour14_StartsLag(t *testing.T) {
	clock := jenkinstest.NewFakeClock(time.Time{})
	e := jenkinstest.New(t, jenkinstest.WithClock(clock), jenkinstest.WithQueueLag(time.Second))
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "plain"})
	c := newClient(t, e.URL, "", "")

	r := c.post("/job/plain/build?delay=0sec", nil)
	item := relPath(t, r.header.Get("Location"))
	if m := c.json(item + "api/json"); m["_class"] == "hudson.model.Queue$LeftItem" {
		t.Fatal("build started synchronously with the trigger")
	}
	if got := c.get("/job/plain/1/api/json").status; got != http.StatusNotFound {
		t.Fatalf("build exists before maintenance: %d", got)
	}
	clock.Advance(time.Second)
	c.pollItem(item)
}

// 15. A restart loses the left-item cache and aborts running builds;
// deleting a job makes its builds 404.
func TestBehaviour15_RestartAndDelete(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1", Executors: 2})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Concurrent: true, Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	mustJob(t, e, jenkinstest.JobSpec{Name: "q"})
	e.HoldBuilds("")
	c := newClient(t, e.URL, "", "")

	_, item := c.trigger("/job/p/", url.Values{"A": {"1"}, "delay": {"0sec"}})
	bp := relPath(t, str(c.pollItem(item)["executable"].(map[string]any)["url"]))
	_, queued := c.trigger("/job/p/", url.Values{"A": {"2"}}) // in its quiet period
	e.Restart()
	if got := c.get(item + "api/json").status; got != http.StatusNotFound {
		t.Errorf("left item after restart = %d, want 404", got)
	}
	if m := c.json(bp + "api/json?tree=building,result"); m["building"] != false || m["result"] != "ABORTED" {
		t.Errorf("running build after restart: %v, want ABORTED", m)
	}
	if got := c.get(queued + "api/json").status; got != http.StatusOK {
		t.Errorf("waiting item after restart = %d, want 200 (the queue is persisted)", got)
	}

	r := c.post("/job/q/build?delay=0sec", nil)
	qb := relPath(t, str(c.pollItem(relPath(t, r.header.Get("Location")))["executable"].(map[string]any)["url"]))
	if err := e.RemoveJob("q"); err != nil {
		t.Fatal(err)
	}
	if got := c.get(qb + "api/json").status; got != http.StatusNotFound {
		t.Errorf("build of a deleted job = %d, want 404", got)
	}
}
