package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

func TestBridge_EveryResultIsAFinalWorkComplete(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Labels: []string{"linux"}, Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job"}))
	must(t, e.SetOutcomes("job",
		jenkinstest.Outcome{Result: "SUCCESS"}, jenkinstest.Outcome{Result: "FAILURE"}, jenkinstest.Outcome{Result: "UNSTABLE"}))
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 1)
	for i, want := range []string{"SUCCESS", "FAILURE", "UNSTABLE"} {
		res := rig.submit(protocol.SubmitJob, "build:job", "", nil).wait(10 * time.Second)
		if res.final != protocol.WorkComplete || res.data["result"] != want || res.data["number"] != float64(i+1) {
			t.Fatalf("build %d: %v %v", i+1, res.packets, res.data)
		}
		// WORK_DATA, then WORK_STATUS, then statuses, then WORK_COMPLETE.
		if res.packets[0] != protocol.WorkData || res.packets[1] != protocol.WorkStatus {
			t.Fatalf("packet order %v", res.packets)
		}
		for k, v := range map[string]any{"name": "job", "manager": "m", "worker": "n_exec-0", "node_name": "n"} {
			if res.data[k] != v {
				t.Errorf("%s = %v, want %v", k, res.data[k], v)
			}
		}
		if url, _ := res.data["url"].(string); !strings.HasPrefix(url, e.URL) || !strings.HasSuffix(url, "/job/job/"+string(rune('1'+i))+"/") {
			t.Errorf("url %q", url)
		}
		if labels, _ := res.data["node_labels"].([]any); len(labels) != 2 {
			t.Errorf("node_labels %v, want linux and n", res.data["node_labels"])
		}
		if len(res.status) == 0 {
			t.Errorf("no WORK_STATUS")
		}
	}
}

func TestBridge_StopAndSetDescription(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job"}))
	must(t, e.HoldBuilds(""))
	rig := startBridgeRig(t, nil, rigMaster{name: "jenkins01", emu: e})
	rig.waitRegistered("build:job", 1)
	rig.waitRegistered("stop:jenkins01", 1)

	j := rig.submit(protocol.SubmitJob, "build:job", "", nil)
	data := j.started(10 * time.Second)
	mgr := rig.client()

	p := mgr.meta("set_description:jenkins01", map[string]any{"name": "job", "number": data["number"], "html_description": "<b>gate</b>"})
	if p.Type != protocol.WorkComplete || p.Args()[1] != "Description for Jenkins build 1 was updated to <b>gate</b>" {
		t.Fatalf("set_description: %v", p)
	}
	if d := e.Builds("job")[0].Description; d != "<b>gate</b>" {
		t.Fatalf("description %q", d)
	}

	// Zuul sends the number as it got it in WORK_DATA, a JSON integer.
	if p := mgr.meta("stop:jenkins01", map[string]any{"name": "job", "number": 1}); p.Type != protocol.WorkComplete || p.Args()[1] != "" {
		t.Fatalf("stop: %v", p)
	}
	if res := j.wait(10 * time.Second); res.final != protocol.WorkComplete || res.data["result"] != "ABORTED" {
		t.Fatalf("stopped build: %v %v", res.packets, res.data)
	}

	// A finished build cannot be stopped: WORK_FAIL, as the plugin.
	if p := mgr.meta("stop:jenkins01", map[string]any{"name": "job", "number": "1"}); p.Type != protocol.WorkFail {
		t.Fatalf("stop of a finished build: %v", p)
	}
	for _, bad := range []map[string]any{
		{"name": "job", "number": 99},
		{"name": "nosuchjob", "number": 1},
		{"name": "job"},
		{"number": 1},
	} {
		if p := mgr.meta("stop:jenkins01", bad); p.Type != protocol.WorkException {
			t.Errorf("stop %v: %v, want WORK_EXCEPTION", bad, p)
		}
	}
	if p := mgr.meta("set_description:jenkins01", map[string]any{"name": "job", "number": 42, "html_description": "x"}); p.Type != protocol.WorkException ||
		p.Args()[1] != "Cannot find build number 42" {
		t.Fatalf("set_description of a missing build: %v", p)
	}
	// The description also works on finished builds.
	if p := mgr.meta("set_description:jenkins01", map[string]any{"name": "job", "number": 1, "html_description": "done"}); p.Type != protocol.WorkComplete {
		t.Fatalf("set_description after the build: %v", p)
	}
}

func TestBridge_OfflineNodeWhenComplete(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "single-use", Executors: 2}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Concurrent: true,
		Params: []jenkinstest.ParamSpec{{Name: "OFFLINE_NODE_WHEN_COMPLETE"}}}))
	must(t, e.HoldBuilds(""))
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 2)

	first := rig.submit(protocol.SubmitJob, "build:job", "", map[string]string{"OFFLINE_NODE_WHEN_COMPLETE": "1"})
	first.started(10 * time.Second)
	// The node has a second idle executor, but the first build keeps it.
	second := rig.submit(protocol.SubmitJob, "build:job", "", nil)
	waitPolls(t, e, 3)
	if n := len(e.Builds("job")); n != 1 {
		t.Fatalf("%d builds started on a node held for single use", n)
	}
	e.Release("")
	if res := first.wait(10 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("first: %v", res.data)
	}
	eventually(t, 5*time.Second, "node offline", func() bool {
		for _, n := range e.Nodes() {
			if n.Name == "single-use" {
				return n.TemporarilyOffline
			}
		}
		return false
	})
	waitPolls(t, e, 2)
	if n := len(e.Builds("job")); n != 1 {
		t.Fatalf("a build started on the node after it was taken offline")
	}
	// A fresh node takes the waiting job.
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "fresh", Executors: 1}))
	e.StopHolding()
	if res := second.wait(10 * time.Second); res.data["node_name"] != "fresh" {
		t.Fatalf("second: %v", res.data)
	}
	noBuildWaitedInJenkins(t, e)
}

func TestBridge_NodeParameterPinsTheBuild(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "a", Labels: []string{"pool"}, Executors: 1}))
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "b", Labels: []string{"pool"}, Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Label: "pool", Concurrent: true,
		Params: []jenkinstest.ParamSpec{{Name: "NODE", Type: jenkinstest.NodeParam}}}))
	must(t, e.HoldBuilds(""))
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e, extra: "    node_parameter: NODE\n"})
	rig.waitRegistered("build:job:pool", 2)
	j1 := rig.submit(protocol.SubmitJob, "build:job:pool", "", nil)
	d1 := j1.started(10 * time.Second)
	j2 := rig.submit(protocol.SubmitJob, "build:job:pool", "", nil)
	d2 := j2.started(10 * time.Second)
	if d1["node_name"] == d2["node_name"] {
		t.Fatalf("both builds on %v", d1["node_name"])
	}
	for _, b := range e.Builds("job") {
		if b.Params["NODE"] != b.Node {
			t.Errorf("build %d: NODE=%q but ran on %q", b.Number, b.Params["NODE"], b.Node)
		}
	}
	e.StopHolding()
	e.Release("")
	noBuildWaitedInJenkins(t, e)
}
