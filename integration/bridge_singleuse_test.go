package integration

import (
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

// Single-use nodes (OFFLINE_NODE_WHEN_COMPLETE): after such a build no
// other build, Gearman's or Jenkins' own, ever starts on its node.

var singleUse = map[string]string{"OFFLINE_NODE_WHEN_COMPLETE": "1"}

// singleUseJenkins has one-executor nodes, the Gearman job "job" (its
// builds held) and the job "native" that Jenkins users start on node
// nativeOn.
func singleUseJenkins(t *testing.T, nativeOn string, nodes ...string) *jenkinstest.Emulator {
	t.Helper()
	e := newJenkins(t)
	for _, n := range nodes {
		must(t, e.AddNode(jenkinstest.NodeSpec{Name: n, Executors: 1}))
	}
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Concurrent: true,
		Params: []jenkinstest.ParamSpec{{Name: "OFFLINE_NODE_WHEN_COMPLETE"}}}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "native", Label: nativeOn}))
	must(t, e.HoldBuilds("job"))
	return e
}

func nodeStatus(t *testing.T, e *jenkinstest.Emulator, name string) jenkinstest.NodeStatus {
	t.Helper()
	for _, n := range e.Nodes() {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no node %q", name)
	return jenkinstest.NodeStatus{}
}

// within polls cond until it holds or d has passed, and says which.
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// nativeWaits queues a native build for the node and waits until Jenkins
// has looked at it and left it waiting.
func nativeWaits(t *testing.T, e *jenkinstest.Emulator) int {
	t.Helper()
	id, err := e.Trigger("native", nil, 0)
	must(t, err)
	eventually(t, 5*time.Second, "the native build waiting in Jenkins' queue", func() bool {
		items := e.QueueItems()
		return len(items) == 1 && items[0].ID == id && items[0].State == "buildable"
	})
	return id
}

// noBuildAfter fails if a build other than the single-use ones numbered
// up to last of "job" ever started on node.
func noBuildAfter(t *testing.T, e *jenkinstest.Emulator, node string, last int) {
	t.Helper()
	for _, b := range e.Builds("native") {
		if b.Node == node {
			t.Errorf("a build waiting in Jenkins' queue (native #%d) started on the single-use node %s after its Gearman build", b.Number, node)
		}
	}
	for _, b := range e.Builds("job") {
		if b.Node == node && b.Number > last {
			t.Errorf("Gearman build job #%d started on the single-use node %s after its single-use build", b.Number, node)
		}
	}
}

// takenOffline waits for node to be temporarily offline in Jenkins.
func takenOffline(t *testing.T, e *jenkinstest.Emulator, node string) {
	t.Helper()
	eventually(t, 10*time.Second, node+" temporarily offline", func() bool { return nodeStatus(t, e, node).TemporarilyOffline })
}

// A build of Jenkins' own that waits for the node in Jenkins' queue never
// gets it: the bridge takes the node offline as soon as it sees the
// single-use build start, not when it ends. An operator who brings the
// node back online makes it usable again.
func TestBridge_SingleUse_NativeBuildWaitingForTheNodeNeverStartsThere(t *testing.T) {
	e := singleUseJenkins(t, "n1", "n1")
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 1)

	j := rig.submit(protocol.SubmitJob, "build:job", "", singleUse)
	if d := j.started(10 * time.Second); d["node_name"] != "n1" {
		t.Fatalf("started on %v", d["node_name"])
	}
	nativeWaits(t, e)
	// Over REST there is a window between the start and the offline
	// request; a build that ends inside it races. Give the bridge the time
	// a real build would, then end the build.
	offlineDuringBuild := within(5*time.Second, func() bool { return nodeStatus(t, e, "n1").TemporarilyOffline })
	_, err := e.Release("job")
	must(t, err)
	if res := j.wait(10 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("single-use job: %v %s", res.packets, res.reason)
	}
	waitPolls(t, e, 3)
	noBuildAfter(t, e, "n1", 1)
	if !offlineDuringBuild {
		t.Errorf("n1 was not taken offline while its single-use build ran")
	}
	takenOffline(t, e, "n1")
	if t.Failed() {
		return
	}

	// An operator brings the node back: it takes work again.
	must(t, e.SetNodeOffline("n1", false, ""))
	e.StopHolding()
	if res := rig.submit(protocol.SubmitJob, "build:job", "", nil).wait(10 * time.Second); res.data["node_name"] != "n1" {
		t.Fatalf("after the operator brought n1 back online: %v %v %s", res.packets, res.data, res.reason)
	}
}

// Jenkins answers 403 to the offline request (the user lacks
// Agent/Disconnect): the bridge retries, and until the node shows offline
// no Gearman job runs there; the next one waits for another node.
func TestBridge_SingleUse_RefusedOfflineKeepsTheNodeClosed(t *testing.T) {
	e := singleUseJenkins(t, "a", "a")
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 1)
	remove, err := e.InjectFault("^POST /computer/a/changeOfflineCause$", jenkinstest.Fault{Status: 403,
		Body: "gearbridge is missing the Agent/Disconnect permission"})
	must(t, err)

	first := rig.submit(protocol.SubmitJob, "build:job", "", singleUse)
	first.started(10 * time.Second)
	_, err = e.Release("job")
	must(t, err)
	if res := first.wait(10 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("first: %v %s", res.packets, res.reason)
	}
	e.StopHolding()
	second := rig.submit(protocol.SubmitJob, "build:job", "", nil)
	waitPolls(t, e, 3)
	noBuildAfter(t, e, "a", 1)
	if t.Failed() {
		t.FailNow()
	}
	eventually(t, 10*time.Second, "the refused offline request retried", func() bool {
		return e.CountRequests("^POST /computer/a/changeOfflineCause$") >= 3
	})
	if nodeStatus(t, e, "a").TemporarilyOffline {
		t.Fatal("the node went offline although every request was refused")
	}

	// Jenkins accepts the request now: the node goes offline, and the
	// waiting job runs on a fresh node.
	remove()
	takenOffline(t, e, "a")
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "b", Executors: 1}))
	if res := second.wait(10 * time.Second); res.data["node_name"] != "b" {
		t.Fatalf("second: %v %v %s", res.packets, res.data, res.reason)
	}
	noBuildAfter(t, e, "a", 1)
}

// Every way a single-use job can end takes its node offline: a failed or
// aborted build, a build that is lost (404), and one that cannot be
// followed (a 403 on the build). In the last two the bridge never sees
// where the build started, so it takes the worker's node offline.
func TestBridge_SingleUse_EveryEndTakesTheNodeOffline(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fault on the build's JSON, from before the build starts
		buildFault int
		end        func(t *testing.T, e *jenkinstest.Emulator, j *rigJob)
	}{
		{name: "failure", end: func(t *testing.T, e *jenkinstest.Emulator, j *rigJob) {
			must(t, e.FinishBuild("job", 1, jenkinstest.ResultFailure))
			if res := j.wait(10 * time.Second); res.data["result"] != "FAILURE" {
				t.Fatalf("%v %v %s", res.packets, res.data, res.reason)
			}
		}},
		{name: "aborted", end: func(t *testing.T, e *jenkinstest.Emulator, j *rigJob) {
			must(t, e.FinishBuild("job", 1, jenkinstest.ResultAborted))
			if res := j.wait(10 * time.Second); res.data["result"] != "ABORTED" {
				t.Fatalf("%v %v %s", res.packets, res.data, res.reason)
			}
		}},
		{name: "lost", buildFault: 404, end: func(t *testing.T, e *jenkinstest.Emulator, j *rigJob) {
			expectFailedToRun(t, j.wait(10*time.Second), "gone")
		}},
		{name: "exception", buildFault: 403, end: func(t *testing.T, e *jenkinstest.Emulator, j *rigJob) {
			expectFailedToRun(t, j.wait(10*time.Second), "403")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := singleUseJenkins(t, "n1", "n1")
			rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
			rig.waitRegistered("build:job", 1)
			if tc.buildFault != 0 {
				_, err := e.InjectFault("^GET /job/job/1/", jenkinstest.Fault{Status: tc.buildFault})
				must(t, err)
			}
			j := rig.submit(protocol.SubmitJob, "build:job", "", singleUse)
			eventually(t, 10*time.Second, "the single-use build running", func() bool { return len(e.RunningBuilds()) == 1 })
			nativeWaits(t, e)
			if tc.buildFault == 0 {
				j.started(10 * time.Second)
				// As in the first test: the window between start and offline.
				// A wait, not a check: takenOffline below checks it.
				within(5*time.Second, func() bool { return nodeStatus(t, e, "n1").TemporarilyOffline })
			}
			tc.end(t, e, j)
			// A lost build still runs in Jenkins: let it end too, once the
			// node is offline (a wait; takenOffline below checks it).
			within(5*time.Second, func() bool { return nodeStatus(t, e, "n1").TemporarilyOffline })
			_, err := e.Release("job")
			must(t, err)
			e.StopHolding()
			next := rig.submit(protocol.SubmitJob, "build:job", "", nil)
			waitPolls(t, e, 3)
			noBuildAfter(t, e, "n1", 1)
			takenOffline(t, e, "n1")
			must(t, e.AddNode(jenkinstest.NodeSpec{Name: "fresh", Executors: 1}))
			if res := next.wait(10 * time.Second); res.data["node_name"] != "fresh" {
				t.Fatalf("next job: %v %v %s", res.packets, res.data, res.reason)
			}
		})
	}
}

// The master is unreachable while the single-use build runs, long enough
// for the job to fail: when it answers again, the node is taken offline
// before any job is grabbed there.
func TestBridge_SingleUse_UnreachableMasterTakesTheNodeOfflineWhenBack(t *testing.T) {
	e := singleUseJenkins(t, "n1", "n1")
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e, extra: "    max_outage: 1s\n"})
	rig.waitRegistered("build:job", 1)
	// The bridge cannot read the build, so it never sees where it started...
	removeBuild, err := e.InjectFault("^GET /job/job/1/", jenkinstest.Fault{Reset: true})
	must(t, err)
	j := rig.submit(protocol.SubmitJob, "build:job", "", singleUse)
	eventually(t, 10*time.Second, "the single-use build running", func() bool { return len(e.RunningBuilds()) == 1 })
	// ...and then the whole master goes away.
	removeAll, err := e.InjectFault(".", jenkinstest.Fault{Reset: true})
	must(t, err)
	expectFailedToRun(t, j.wait(20*time.Second), "unreachable")
	next := rig.submit(protocol.SubmitJob, "build:job", "", nil)
	_, err = e.Release("job")
	must(t, err)
	e.StopHolding()

	e.ResetRequests()
	removeAll()
	removeBuild()
	waitPolls(t, e, 3)
	noBuildAfter(t, e, "n1", 1)
	takenOffline(t, e, "n1")
	// The offline request came before any trigger once the master answered.
	var offlineAt, triggerAt int
	for i, r := range e.Requests() {
		switch {
		case r.Method == "POST" && r.Path == "/computer/n1/changeOfflineCause" && r.Status < 400 && offlineAt == 0:
			offlineAt = i + 1
		case r.Method == "POST" && r.Path == "/job/job/buildWithParameters" && triggerAt == 0:
			triggerAt = i + 1
		}
	}
	if offlineAt == 0 || triggerAt != 0 && triggerAt < offlineAt {
		t.Fatalf("offline request #%d, trigger #%d", offlineAt, triggerAt)
	}
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "fresh", Executors: 1}))
	if res := next.wait(10 * time.Second); res.data["node_name"] != "fresh" {
		t.Fatalf("next job: %v %v %s", res.packets, res.data, res.reason)
	}
}

// The bridge restarts while a single-use build runs and Jenkins still
// refuses to take the node offline: the restarted bridge finds the build
// among the running ones and keeps the node's free executor closed.
func TestBridge_SingleUse_RestartKeepsTheNodeClosed(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n1", Executors: 2}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Concurrent: true,
		Params: []jenkinstest.ParamSpec{{Name: "OFFLINE_NODE_WHEN_COMPLETE"}}}))
	must(t, e.HoldBuilds("job"))
	m := rigMaster{name: "m", emu: e}
	rig := startBridgeRig(t, nil, m)
	rig.waitRegistered("build:job", 2)
	remove, err := e.InjectFault("^POST /computer/n1/changeOfflineCause$", jenkinstest.Fault{Status: 403})
	must(t, err)
	first := rig.submit(protocol.SubmitJob, "build:job", "", singleUse)
	first.started(10 * time.Second)
	eventually(t, 10*time.Second, "a refused offline request", func() bool {
		return e.CountRequests("^POST /computer/n1/changeOfflineCause$") >= 1
	})

	rig.stopBridge()
	// The next job comes first in the queue, before the single-use job
	// that the restarted bridge will re-attach.
	next := rig.submit(protocol.SubmitJobHigh, "build:job", "", nil)
	e.StopHolding()
	rig.startBridge(m)
	waitPolls(t, e, 3)
	noBuildAfter(t, e, "n1", 1)
	if t.Failed() {
		t.FailNow()
	}
	remove()
	takenOffline(t, e, "n1")
	_, err = e.Release("job")
	must(t, err)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "fresh", Executors: 1}))
	if res := next.wait(10 * time.Second); res.data["node_name"] != "fresh" {
		t.Fatalf("next job: %v %v %s", res.packets, res.data, res.reason)
	}
	if res := first.wait(10 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("single-use job: %v %v %s", res.packets, res.data, res.reason)
	}
	noBuildAfter(t, e, "n1", 1)
}

// Two executors of one node grab at once: an ordinary job whose build
// cannot start yet, then a single-use job. The single-use build must not
// start first (the other would then start on the node after it, or wait
// for the offline node for ever): it waits until the other has started.
func TestBridge_SingleUse_WaitsForTheNodesOtherBuildsToStart(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n1", Executors: 2}))
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "x", Executors: 1}))
	node := jenkinstest.ParamSpec{Name: "NODE", Type: jenkinstest.NodeParam}
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "other", Params: []jenkinstest.ParamSpec{node}})) // not concurrent
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Concurrent: true,
		Params: []jenkinstest.ParamSpec{node, {Name: "OFFLINE_NODE_WHEN_COMPLETE"}}}))
	must(t, e.HoldBuilds(""))
	// A build of Jenkins' own on x blocks the next build of "other".
	_, err := e.Trigger("other", map[string]string{"NODE": "x"}, 0)
	must(t, err)
	eventually(t, 5*time.Second, "the native build on x", func() bool { return len(e.RunningBuilds()) == 1 })

	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e, extra: "    node_parameter: NODE\n"})
	rig.waitRegistered("build:job", 3)
	ordinary := rig.submit(protocol.SubmitJob, "build:other", "", nil)
	eventually(t, 10*time.Second, "the ordinary build blocked in Jenkins' queue", func() bool {
		items := e.QueueItems()
		return len(items) == 1 && items[0].State == "blocked"
	})
	single := rig.submit(protocol.SubmitJob, "build:job", "", singleUse)
	eventually(t, 10*time.Second, "the single-use job grabbed", func() bool {
		return statusFunctions(t, rig.addr)["build:job"][1] == "1"
	})
	waitPolls(t, e, 3)
	if b := e.Builds("job"); len(b) != 0 {
		t.Fatalf("the single-use build started while another build for its node had not: %+v", b)
	}

	// The native build ends: the ordinary build starts on n1, then the
	// single-use one, and then nothing more.
	must(t, e.FinishBuild("other", 1, jenkinstest.ResultSuccess))
	if d := ordinary.started(10 * time.Second); d["node_name"] != "n1" {
		t.Fatalf("ordinary build on %v", d["node_name"])
	}
	if d := single.started(10 * time.Second); d["node_name"] != "n1" {
		t.Fatalf("single-use build on %v", d["node_name"])
	}
	takenOffline(t, e, "n1")
	o, s := e.Builds("other")[1], e.Builds("job")[0]
	if !o.Start.Before(s.Start) {
		t.Fatalf("ordinary build started %v, single-use %v", o.Start, s.Start)
	}
	e.StopHolding()
	e.Release("")
	ordinary.wait(10 * time.Second)
	single.wait(10 * time.Second)
}

// A trigger that Jenkins refused ran nothing: the node stays in service
// (otherwise one broken job would drain the pool as Zuul retries it). A
// trigger whose answer was lost may have queued a build that nobody
// follows: the node is taken offline (fail closed).
func TestBridge_SingleUse_FailedTriggers(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		e := singleUseJenkins(t, "n1", "n1")
		rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
		rig.waitRegistered("build:job", 1)
		remove, err := e.InjectFault("^POST /job/job/buildWithParameters$", jenkinstest.Fault{Status: 400, Body: "bad"})
		must(t, err)
		expectFailedToRun(t, rig.submit(protocol.SubmitJob, "build:job", "", singleUse).wait(10*time.Second), "400")
		remove()
		e.StopHolding()
		if res := rig.submit(protocol.SubmitJob, "build:job", "", nil).wait(10 * time.Second); res.data["node_name"] != "n1" {
			t.Fatalf("next job: %v %v %s", res.packets, res.data, res.reason)
		}
		if nodeStatus(t, e, "n1").TemporarilyOffline {
			t.Fatal("a node on which nothing ran was taken offline")
		}
	})
	t.Run("answer lost", func(t *testing.T) {
		e := singleUseJenkins(t, "n1", "n1")
		rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
		rig.waitRegistered("build:job", 1)
		_, err := e.InjectFault("^POST /job/job/buildWithParameters$", jenkinstest.Fault{LoseReply: true, Times: 1})
		must(t, err)
		expectFailedToRun(t, rig.submit(protocol.SubmitJob, "build:job", "", singleUse).wait(10*time.Second), "could not trigger")
		takenOffline(t, e, "n1")
	})
}
