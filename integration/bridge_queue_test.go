package integration

import (
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

// noBuildWaitedInJenkins fails if any build the bridge triggered had to
// wait in a Jenkins queue for an executor: the bridge must take a job only
// on a master that can start it now.
func noBuildWaitedInJenkins(t *testing.T, masters ...*jenkinstest.Emulator) {
	t.Helper()
	for _, e := range masters {
		for _, it := range e.WaitedItems() {
			t.Errorf("%s: queue item %d (%s) waited in Jenkins: %q for %v", e.URL, it.ID, it.Job, it.WaitReasons, it.ExecutorWait)
		}
	}
}

func TestBridge_TwoMastersShareOneQueue(t *testing.T) {
	a, b := newJenkins(t), newJenkins(t)
	for _, e := range []*jenkinstest.Emulator{a, b} {
		must(t, e.AddNode(jenkinstest.NodeSpec{Name: "node", Executors: 1}))
		must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Concurrent: true,
			Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}}))
		must(t, e.HoldBuilds(""))
	}
	rig := startBridgeRig(t, nil, rigMaster{name: "a", emu: a}, rigMaster{name: "b", emu: b})
	rig.waitRegistered("build:job", 2)

	j1 := rig.submit(protocol.SubmitJob, "build:job", "u1", map[string]string{"ZUUL_UUID": "u1"})
	first := j1.started(10 * time.Second)
	j2 := rig.submit(protocol.SubmitJob, "build:job", "u2", map[string]string{"ZUUL_UUID": "u2"})
	second := j2.started(10 * time.Second)
	if first["manager"] == second["manager"] {
		t.Fatalf("both builds ran on %v although the other master was idle", first["manager"])
	}

	// Both masters are full: the third build waits in the Gearman queue.
	j3 := rig.submit(protocol.SubmitJob, "build:job", "u3", map[string]string{"ZUUL_UUID": "u3"})
	waitPolls(t, a, 2)
	waitPolls(t, b, 2)
	if st := statusFunctions(t, rig.addr)["build:job"]; st[0] != "3" || st[1] != "2" {
		t.Fatalf("status of build:job = %q, want 3 jobs, 2 running", st)
	}
	// Whichever master frees an executor first takes it.
	if n, _ := b.Release(""); n != 1 {
		t.Fatalf("released %d builds on b", n)
	}
	onB := j1
	if second["manager"] == "b" {
		onB = j2
	}
	if res := onB.wait(10 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("released build: %v", res.data)
	}
	third := j3.started(10 * time.Second)
	if third["manager"] != "b" {
		t.Fatalf("third build ran on %v, want b (the master with the free executor)", third["manager"])
	}
	a.Release("")
	b.Release("")
	a.StopHolding()
	b.StopHolding()
	noBuildWaitedInJenkins(t, a, b)
	if n := len(a.Builds("job")) + len(b.Builds("job")); n != 3 {
		t.Fatalf("%d Jenkins builds for 3 jobs", n)
	}
}

func TestBridge_BusyExecutorsKeepJobsInGearman(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 2}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Concurrent: true}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "native", Concurrent: true}))
	must(t, e.HoldBuilds(""))
	// Jenkins itself keeps one executor busy.
	if _, err := e.Trigger("native", nil, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "native build running", func() bool { return len(e.RunningBuilds()) == 1 })
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 2)

	j1 := rig.submit(protocol.SubmitJob, "build:job", "", nil)
	j1.started(10 * time.Second)
	j2 := rig.submit(protocol.SubmitJob, "build:job", "", nil)
	waitPolls(t, e, 3)
	if st := statusFunctions(t, rig.addr)["build:job"]; st[1] != "1" {
		t.Fatalf("status %q: the second job must wait in Gearman, not in Jenkins", st)
	}
	e.FinishBuild("native", 1, "SUCCESS")
	j2.started(10 * time.Second)
	e.StopHolding()
	e.Release("")
	noBuildWaitedInJenkins(t, e)
}

func TestBridge_QuietingDownStopsGrabbing(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job"}))
	e.SetQuietingDown(true)
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 1) // busy workers stay registered
	c := rig.client()
	h := c.submit(protocol.SubmitJob, "build:job", "", nil)
	waitPolls(t, e, 3)
	if n := e.CountRequests("^POST "); n != 0 {
		t.Fatalf("%d POSTs to a master that is quieting down", n)
	}
	e.SetQuietingDown(false)
	if res := c.wait(h, 10*time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("after quiet-down: %v %s", res.packets, res.reason)
	}
}

func TestBridge_PrecedenceHighFirst(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}}))
	e.SetQuietingDown(true) // hold everything in Gearman while we queue
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 1)
	c := rig.client()
	hl := c.submit(protocol.SubmitJobLow, "build:job", "low", map[string]string{"ZUUL_UUID": "low"})
	hn := c.submit(protocol.SubmitJob, "build:job", "normal", map[string]string{"ZUUL_UUID": "normal"})
	hh := c.submit(protocol.SubmitJobHigh, "build:job", "high", map[string]string{"ZUUL_UUID": "high"})
	e.SetQuietingDown(false)
	for _, h := range []string{hh, hn, hl} {
		if res := c.wait(h, 10*time.Second); res.final != protocol.WorkComplete {
			t.Fatalf("%s: %v", h, res.packets)
		}
	}
	builds := e.Builds("job")
	for i, want := range []string{"high", "normal", "low"} {
		if builds[i].Params["ZUUL_UUID"] != want {
			t.Fatalf("build %d ran %s, want %s", i+1, builds[i].Params["ZUUL_UUID"], want)
		}
	}
}
