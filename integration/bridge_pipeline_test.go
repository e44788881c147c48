package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

// A Pipeline project is registered as upstream's plugin (0.3 and later)
// registers it: build:<name> and build:<name>:built-in, by the built-in
// node's executor workers only; its build is triggered, reported, described
// and stopped like a freestyle build, with no node in its WORK_DATA.
func TestBridge_PipelineProjectIsBuiltLikeAFreestyleOne(t *testing.T) {
	e := newJenkins(t)
	// EXCLUSIVE: no unlabelled freestyle build runs on the controller;
	// the Pipeline project's label is the built-in node's own.
	e.ConfigureBuiltIn(1, jenkinstest.Exclusive)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "folder/pipe", Pipeline: true, Concurrent: true,
		Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}}))
	must(t, e.HoldBuilds(""))
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:pipe", 1)
	rig.waitRegistered("build:pipe:built-in", 1)
	rig.waitRegistered("stop:m", 1)
	regs := rig.registrations()
	if got := regs["m_exec-0"]; !slices.Equal(got, []string{"build:pipe", "build:pipe:built-in"}) {
		t.Fatalf("built-in worker registers %v", got)
	}
	if got := regs["n_exec-0"]; len(got) != 0 {
		t.Fatalf("agent worker registers %v", got)
	}

	j := rig.submit(protocol.SubmitJob, "build:pipe:built-in", "u1", map[string]string{"ZUUL_UUID": "u1"})
	data := j.started(10 * time.Second)
	for k, v := range map[string]any{"name": "pipe", "number": 1.0, "manager": "m", "worker": "m_exec-0", "url": e.URL + "/job/folder/job/pipe/1/"} {
		if data[k] != v {
			t.Errorf("WORK_DATA %s = %v, want %v", k, data[k], v)
		}
	}
	for _, k := range []string{"node_name", "node_labels"} {
		if _, ok := data[k]; ok {
			t.Errorf("WORK_DATA has %s (%v): a Pipeline run is built on no node", k, data[k])
		}
	}
	if b := e.Builds("folder/pipe"); len(b) != 1 || b[0].Params["ZUUL_UUID"] != "u1" {
		t.Fatalf("builds %+v", b)
	}

	mgr := rig.client()
	if p := mgr.meta("set_description:m", map[string]any{"name": "pipe", "number": 1, "html_description": "<i>zuul</i>"}); p.Type != protocol.WorkComplete {
		t.Fatalf("set_description: %v", p)
	}
	if d := e.Builds("folder/pipe")[0].Description; d != "<i>zuul</i>" {
		t.Fatalf("description %q", d)
	}
	if p := mgr.meta("stop:m", map[string]any{"name": "pipe", "number": 1}); p.Type != protocol.WorkComplete || p.Args()[1] != "" {
		t.Fatalf("stop: %v", p)
	}
	res := j.wait(10 * time.Second)
	if res.final != protocol.WorkComplete || res.data["result"] != "ABORTED" || res.data["number"] != 1.0 {
		t.Fatalf("stopped Pipeline build: %v %v %s", res.packets, res.data, res.reason)
	}

	// And an ordinary run to its end, through build:pipe.
	e.StopHolding()
	res = rig.submit(protocol.SubmitJob, "build:pipe", "u2", map[string]string{"ZUUL_UUID": "u2"}).wait(10 * time.Second)
	if res.final != protocol.WorkComplete || res.data["result"] != "SUCCESS" || res.data["number"] != 2.0 {
		t.Fatalf("Pipeline build: %v %v %s", res.packets, res.data, res.reason)
	}
}
