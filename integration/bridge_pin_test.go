package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

// counter reads a counter of the bridge's metrics (0 when absent).
func (r *bridgeRig) counter(name string, labels map[string]string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// addJobPlacedOn adds a job named base-<i> for the first i for which
// Jenkins' consistent hash sends an unpinned build to node first: a build
// that the bridge fails to pin then lands there, not on the worker's node.
func addJobPlacedOn(t *testing.T, e *jenkinstest.Emulator, spec jenkinstest.JobSpec, node string) string {
	t.Helper()
	base := spec.Name
	for i := range 100 {
		spec.Name = fmt.Sprintf("%s-%d", base, i)
		must(t, e.AddJob(spec))
		order, err := e.PlacementOrder(spec.Name)
		must(t, err)
		if len(order) > 1 && order[0] == node {
			return spec.Name
		}
		must(t, e.RemoveJob(spec.Name))
	}
	t.Fatalf("no name for %s that Jenkins places on %s first", base, node)
	return ""
}

// twoImageNodes is OpenStack's setup: one node per image, jobs labelled
// "precise || trusty", so Zuul picks the image with build:<job>:<label>.
func twoImageNodes(t *testing.T, e *jenkinstest.Emulator) {
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "a", Labels: []string{"precise"}, Executors: 1}))
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "b", Labels: []string{"trusty"}, Executors: 1}))
}

// A project with a NodeLabel Parameter plugin parameter is pinned without
// any configuration: build:<job>:trusty, taken by node b's worker, runs on
// b although Jenkins' hash of the job prefers a.
func TestBridge_NodeLabelParameterFoundAndUsed(t *testing.T) {
	e := newJenkins(t)
	twoImageNodes(t, e)
	job := addJobPlacedOn(t, e, jenkinstest.JobSpec{Name: "pinned", Label: "precise || trusty", Concurrent: true,
		Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}, {Name: "TARGET", Type: jenkinstest.NodeParam}}}, "a")
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:"+job+":trusty", 1)
	for i := range 2 {
		u := fmt.Sprintf("u%d", i)
		res := rig.submit(protocol.SubmitJob, "build:"+job+":trusty", u, map[string]string{"ZUUL_UUID": u}).wait(10 * time.Second)
		if res.final != protocol.WorkComplete || res.data["node_name"] != "b" || res.data["worker"] != "b_exec-0" {
			t.Fatalf("build:%s:trusty: %v %v %s, want it built on b", job, res.packets, res.data, res.reason)
		}
	}
	for _, b := range e.Builds(job) {
		if b.Node != "b" || b.Params["TARGET"] != "b" {
			t.Errorf("build %d ran on %q with TARGET=%q", b.Number, b.Node, b.Params["TARGET"])
		}
	}
	noBuildWaitedInJenkins(t, e)
}

// trigger: script pins through the script console (a LabelAssignmentAction)
// and passes every key of the job, defined or not; the build is followed,
// stopped and reported as any other.
func TestBridge_ScriptTriggerPinsAndPassesEveryKey(t *testing.T) {
	for _, password := range []bool{false, true} {
		t.Run(fmt.Sprint("password=", password), func(t *testing.T) { testScriptTrigger(t, password) })
	}
}

// testScriptTrigger runs with an API token, or with a password: then the
// script console, like every POST, needs a crumb.
func testScriptTrigger(t *testing.T, password bool) {
	e := newJenkins(t)
	twoImageNodes(t, e)
	job := addJobPlacedOn(t, e, jenkinstest.JobSpec{Name: "scripted", Label: "precise || trusty", Concurrent: true,
		Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}, {Name: "WITH_DEFAULT", Default: "d"}}}, "a")
	must(t, e.HoldBuilds(""))
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e, extra: "    trigger: script\n", password: password})
	rig.waitRegistered("build:"+job+":trusty", 1)
	rig.waitRegistered("stop:m", 1)

	odd := `it's "quoted" ${x} \n` + "\nand a newline');System.exit(1);//"
	params := map[string]string{"ZUUL_UUID": "u1", "ZUUL_REF": "refs/zuul/master/Z1", "ODD": odd}
	j := rig.submit(protocol.SubmitJob, "build:"+job+":trusty", "u1", params)
	data := j.started(10 * time.Second)
	if data["node_name"] != "b" {
		t.Fatalf("script trigger: built on %v, want b", data["node_name"])
	}
	if crumbs := e.CountRequests("^GET /crumbIssuer/api/json"); password != (crumbs > 0) {
		t.Errorf("%d crumb requests with password=%v", crumbs, password)
	}
	b := e.Builds(job)[0]
	for k, v := range params {
		if b.Params[k] != v {
			t.Errorf("parameter %s = %q, want %q", k, b.Params[k], v)
		}
	}
	if b.Params["WITH_DEFAULT"] != "d" || b.User != "gearbridge" {
		t.Errorf("build %+v: want the default of WITH_DEFAULT and user gearbridge", b)
	}
	mgr := rig.client()
	if p := mgr.meta("stop:m", map[string]any{"name": job, "number": data["number"]}); p.Type != protocol.WorkComplete {
		t.Fatalf("stop: %v", p)
	}
	if res := j.wait(10 * time.Second); res.final != protocol.WorkComplete || res.data["result"] != "ABORTED" {
		t.Fatalf("stopped build: %v %v", res.packets, res.data)
	}
	if n := rig.counter("gearbridge_bridge_parameters_dropped_total", nil); n != 0 {
		t.Errorf("%v parameters counted as dropped in script mode", n)
	}
	e.StopHolding()
	noBuildWaitedInJenkins(t, e)
}

// Without Overall/RunScripts the script console answers 403: the job ends
// with one WORK_EXCEPTION that says so, and nothing is queued.
func TestBridge_ScriptTriggerForbidden(t *testing.T) {
	e := newJenkins(t)
	twoImageNodes(t, e)
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Label: "precise || trusty", Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}}))
	e.DenyPermission("gearbridge", jenkinstest.PermRunScripts)
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e, extra: "    trigger: script\n"})
	rig.waitRegistered("build:job:trusty", 1)
	res := rig.submit(protocol.SubmitJob, "build:job:trusty", "u1", map[string]string{"ZUUL_UUID": "u1"}).wait(10 * time.Second)
	if res.final != protocol.WorkException || res.data != nil {
		t.Fatalf("packets %v data %v, want one WORK_EXCEPTION", res.packets, res.data)
	}
	for _, want := range []string{"HTTP 403", "Overall/RunScripts", "gearbridge is missing the Overall/RunScripts permission"} {
		if !strings.Contains(res.reason, want) {
			t.Errorf("reason %q does not say %q", res.reason, want)
		}
	}
	if h := e.QueueHistory(); len(h) != 0 {
		t.Fatalf("queued %+v", h)
	}
}

// A project the bridge cannot pin (no NodeLabel parameter, trigger: rest)
// is registered as build:<job> only, with one warning that names the fix;
// allow_unpinned: true registers build:<job>:<label> as before, and Jenkins
// then places the build where it likes.
func TestBridge_UnpinnedProjectHasNoLabelFunctions(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprint("allow_unpinned=", allow), func(t *testing.T) {
			e := newJenkins(t)
			twoImageNodes(t, e)
			job := addJobPlacedOn(t, e, jenkinstest.JobSpec{Name: "loose", Label: "precise || trusty", Concurrent: true,
				Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}}, "a")
			extra := ""
			if allow {
				extra = "    allow_unpinned: true\n"
			}
			rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e, extra: extra})
			rig.waitRegistered("build:"+job, 2)
			waitPolls(t, e, 3)
			st := statusFunctions(t, rig.addr)
			_, precise := st["build:"+job+":precise"]
			_, trusty := st["build:"+job+":trusty"]
			if precise != allow || trusty != allow {
				t.Fatalf("status lists build:%s:precise %v, :trusty %v; want %v (status %v)", job, precise, trusty, allow, st)
			}
			warnings := rig.logs.count("cannot pin this project's builds", "project="+job)
			switch {
			case !allow && warnings != 1:
				t.Errorf("%d warnings about the unpinned project, want one:\n%s", warnings, rig.logs.String())
			case !allow && rig.logs.count("cannot pin", "trigger: script", "NodeLabel Parameter", "allow_unpinned") != 1:
				t.Errorf("the warning does not name the fixes:\n%s", rig.logs.String())
			case allow && warnings != 0:
				t.Errorf("warned about an unpinned project although allow_unpinned is set")
			}
			if !allow {
				return
			}
			// As before: Jenkins' hash, not the worker's node, decides.
			res := rig.submit(protocol.SubmitJob, "build:"+job+":trusty", "u1", map[string]string{"ZUUL_UUID": "u1"}).wait(10 * time.Second)
			if res.final != protocol.WorkComplete || res.data["node_name"] != "a" {
				t.Fatalf("allow_unpinned build: %v %v", res.packets, res.data)
			}
		})
	}
}

// trigger: rest passes only the parameters the project defines, as Jenkins
// requires; each dropped name is logged once per project and every drop is
// counted.
func TestBridge_UndefinedParametersDroppedAndCounted(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Concurrent: true,
		Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}, {Name: "NODE", Type: jenkinstest.NodeParam}}}))
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 1)
	for i := range 2 {
		u := fmt.Sprintf("u%d", i)
		res := rig.submit(protocol.SubmitJob, "build:job", u, map[string]string{"ZUUL_UUID": u, "ZUUL_REF": "r", "ZUUL_PIPELINE": "gate"}).wait(10 * time.Second)
		if res.final != protocol.WorkComplete {
			t.Fatalf("job %d: %v %s", i, res.packets, res.reason)
		}
	}
	for _, b := range e.Builds("job") {
		if _, ok := b.Params["ZUUL_REF"]; ok {
			t.Errorf("an undefined parameter reached build %d: %v", b.Number, b.Params)
		}
	}
	if n := rig.counter("gearbridge_bridge_parameters_dropped_total", map[string]string{"master": "m", "project": "job"}); n != 4 {
		t.Errorf("gearbridge_bridge_parameters_dropped_total = %v, want 4 (two names, two jobs)", n)
	}
	for _, name := range []string{"ZUUL_REF", "ZUUL_PIPELINE"} {
		if n := rig.logs.count("job parameter dropped", "parameter="+name); n != 1 {
			t.Errorf("%d warnings about %s, want one:\n%s", n, name, rig.logs.String())
		}
	}
}

// Jenkins merges a request equal to one still queued into it (303 from
// 2.308 on, the same item with 201 before): the later job ends with
// WORK_EXCEPTION at once, so that Zuul runs it again, and the build is
// reported to the first job only.
func TestBridge_MergedRequestFailsTheLaterJob(t *testing.T) {
	for _, version := range []string{jenkinstest.VersionCurrent, "2.300"} {
		t.Run(version, func(t *testing.T) {
			e := jenkinstest.New(t, jenkinstest.WithVersion(version))
			e.ConfigureBuiltIn(0, jenkinstest.Normal)
			must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 3}))
			// Not concurrent and without ZUUL_UUID: a second build waits
			// behind the first, and a third request equals the second.
			must(t, e.AddJob(jenkinstest.JobSpec{Name: "job"}))
			must(t, e.HoldBuilds(""))
			rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
			rig.waitRegistered("build:job", 3)
			first := rig.submit(protocol.SubmitJob, "build:job", "u1", nil)
			first.started(10 * time.Second)
			second := rig.submit(protocol.SubmitJob, "build:job", "u2", nil)
			eventually(t, 10*time.Second, "second request queued behind the first", func() bool { return len(e.QueueItems()) == 1 })
			third := rig.submit(protocol.SubmitJob, "build:job", "u3", nil).wait(10 * time.Second)
			if third.final != protocol.WorkException || third.data != nil || !strings.Contains(third.reason, "merged") {
				t.Fatalf("merged job: %v %v %q, want one WORK_EXCEPTION", third.packets, third.data, third.reason)
			}
			if h := e.QueueHistory(); len(h) != 2 {
				t.Fatalf("%d queue items, want 2", len(h))
			}
			e.StopHolding()
			e.Release("")
			if res := first.wait(10 * time.Second); res.data["number"] != float64(1) {
				t.Fatalf("first: %v", res.data)
			}
			if res := second.wait(10 * time.Second); res.final != protocol.WorkComplete || res.data["number"] != float64(2) {
				t.Fatalf("second: %v %v", res.packets, res.data)
			}
			if n := len(e.Builds("job")); n != 2 {
				t.Fatalf("%d builds, want 2", n)
			}
			if n := rig.logs.count("no ZUUL_UUID parameter", "project=job"); n != 1 {
				t.Errorf("%d warnings about the missing ZUUL_UUID, want one", n)
			}
		})
	}
}

// build:<job> is pinned too: with three one-executor nodes busy with three
// held jobs, each build runs on the node of the worker that took it. An
// unpinned trigger goes where Jenkins' hash sends it, so the builds land
// on the worker's node only if the workers happen to trigger in the hash's
// order (one round in six).
func TestBridge_PlainFunctionPinnedToo(t *testing.T) {
	e := newJenkins(t)
	for _, n := range []string{"a", "b", "c"} {
		must(t, e.AddNode(jenkinstest.NodeSpec{Name: n, Executors: 1}))
	}
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Concurrent: true,
		Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}, {Name: "NODE", Type: jenkinstest.NodeParam}}}))
	must(t, e.HoldBuilds(""))
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 3)
	for round := range 3 {
		var jobs []*rigJob
		for i := range 3 {
			u := fmt.Sprintf("r%d-%d", round, i)
			jobs = append(jobs, rig.submit(protocol.SubmitJob, "build:job", u, map[string]string{"ZUUL_UUID": u}))
		}
		for _, j := range jobs {
			data := j.started(10 * time.Second)
			if worker, _ := data["worker"].(string); worker != fmt.Sprint(data["node_name"], "_exec-0") {
				t.Errorf("round %d: worker %v's build ran on %v", round, data["worker"], data["node_name"])
			}
		}
		if n, _ := e.Release(""); n != 3 {
			t.Fatalf("released %d builds", n)
		}
		for _, j := range jobs {
			if res := j.wait(10 * time.Second); res.final != protocol.WorkComplete {
				t.Fatalf("round %d: %v %s", round, res.packets, res.reason)
			}
		}
	}
	noBuildWaitedInJenkins(t, e)
}
