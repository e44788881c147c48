package integration

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

// blockedBehindABuild sets up a master whose one project is not concurrent
// and has a running build, so that the next build waits in Jenkins'
// queue although the node has an idle executor (the gate lets the bridge
// take the job).
func blockedBehindABuild(t *testing.T, opts ...jenkinstest.Option) *jenkinstest.Emulator {
	t.Helper()
	e := jenkinstest.New(t, append([]jenkinstest.Option{jenkinstest.WithQuietPeriod(5 * time.Second)}, opts...)...)
	e.ConfigureBuiltIn(0, jenkinstest.Normal)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 2}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}}))
	must(t, e.HoldBuilds(""))
	_, err := e.Trigger("job", map[string]string{"ZUUL_UUID": "native"}, 0)
	must(t, err)
	eventually(t, 5*time.Second, "the native build", func() bool { return len(e.RunningBuilds()) == 1 })
	return e
}

func queueReads(e *jenkinstest.Emulator) int { return e.CountRequests("^GET /queue/item/") }

// WORK_DATA, which brings Zuul the number it needs to stop the build,
// follows the build's start within a second, even with a 5s poll_interval
// and after the build waited in Jenkins' queue long enough for the polls
// of its queue item to space out.
func TestBridge_WorkDataWithinASecondOfTheStart(t *testing.T) {
	e := blockedBehindABuild(t)
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e, extra: "    poll_interval: 5s\n"})
	rig.waitRegistered("build:job", 2)
	j := rig.submit(protocol.SubmitJob, "build:job", "u1", map[string]string{"ZUUL_UUID": "u1"})
	// Sixteen reads of the queue item: the polls have spaced out (by two
	// seconds and more before the start window was capped).
	eventually(t, 30*time.Second, "16 reads of the queue item", func() bool { return queueReads(e) >= 16 })
	n := queueReads(e)
	eventually(t, 30*time.Second, "the next read", func() bool { return queueReads(e) > n })
	must(t, e.FinishBuild("job", 1, "SUCCESS")) // the bridge's build starts now
	data := j.started(10 * time.Second)
	arrived := time.Now()
	b := e.Builds("job")
	if len(b) != 2 || data["number"] != 2.0 {
		t.Fatalf("WORK_DATA %v, builds %+v", data, b)
	}
	if lag := arrived.Sub(b[1].Start); lag >= time.Second {
		t.Fatalf("WORK_DATA came %v after the build started, want < 1s", lag)
	} else {
		t.Logf("start → WORK_DATA: %v", lag)
	}
	e.Release("")
	if res := j.wait(10 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("%v %v %s", res.packets, res.data, res.reason)
	}
}

// When the master becomes unreachable, a job whose build has not started
// ends with WORK_EXCEPTION within two poll intervals, so that Zuul runs it
// on another master; its queue item is cancelled once the master answers,
// so it does not build here too. A job whose build has started waits
// (up to max_outage) and gets its result.
func TestBridge_UnreachableMasterFailsJobsNotYetStarted(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 2}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}})) // not concurrent
	must(t, e.HoldBuilds(""))
	const poll = 2 * time.Second
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e, extra: "    poll_interval: 2s\n"})
	rig.waitRegistered("build:job", 2)
	started := rig.submit(protocol.SubmitJob, "build:job", "a", map[string]string{"ZUUL_UUID": "a"})
	started.started(10 * time.Second)
	queued := rig.submit(protocol.SubmitJob, "build:job", "b", map[string]string{"ZUUL_UUID": "b"})
	eventually(t, 10*time.Second, "b waiting in the queue", func() bool {
		items := e.QueueItems()
		return len(items) == 1 && items[0].Params["ZUUL_UUID"] == "b" && queueReads(e) > 0
	})

	remove, err := e.InjectFault(".", jenkinstest.Fault{Reset: true})
	must(t, err)
	down := time.Now()
	res := queued.wait(2*poll + time.Second)
	if took := time.Since(down); took > 2*poll {
		t.Errorf("WORK_EXCEPTION %v after the master went away, want within 2 poll intervals (%v)", took, 2*poll)
	} else {
		t.Logf("WORK_EXCEPTION %v after the master went away", took)
	}
	expectFailedToRun(t, res, "unreachable")

	time.Sleep(poll) // the outage goes on, past two poll intervals
	remove()
	eventually(t, 10*time.Second, "b's queue item cancelled", func() bool {
		for _, it := range e.QueueHistory() {
			if it.Params["ZUUL_UUID"] == "b" {
				return it.Cancelled
			}
		}
		return false
	})
	e.Release("")
	if res := started.wait(10 * time.Second); res.final != protocol.WorkComplete || res.data["result"] != "SUCCESS" {
		t.Fatalf("the started build after the outage: %v %v %s", res.packets, res.data, res.reason)
	}
	if b := e.Builds("job"); len(b) != 1 {
		t.Fatalf("builds %+v, want only a's", b)
	}
}

// A bridge down for longer than Jenkins keeps a left queue item (5
// minutes; 1s here) re-attaches to a job whose build started meanwhile:
// it finds the build by its queueId among the project's builds and
// follows it, instead of failing the job (and Zuul building it twice).
func TestBridge_ReattachFindsTheBuildOfAnExpiredQueueItem(t *testing.T) {
	e := blockedBehindABuild(t, jenkinstest.WithLeftItemTTL(time.Second))
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 2)
	j := rig.submit(protocol.SubmitJob, "build:job", "u1", map[string]string{"ZUUL_UUID": "u1"})
	var id int
	eventually(t, 10*time.Second, "the bridge following its queue item", func() bool {
		if items := e.QueueItems(); len(items) == 1 {
			id = items[0].ID
		}
		return id != 0 && queueReads(e) > 0
	})
	rig.stopBridge()

	// While the bridge is down, the build starts and Jenkins forgets the item.
	must(t, e.FinishBuild("job", 1, "SUCCESS"))
	pass := "secret2"
	e.AddUser("observer", pass)
	eventually(t, 10*time.Second, "the left item to expire", func() bool {
		req, _ := http.NewRequest("GET", e.URL+"/queue/item/"+strconv.Itoa(id)+"/api/json", nil)
		req.SetBasicAuth("observer", pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	})

	rig.startBridge(rigMaster{name: "m", emu: e})
	if data := j.started(15 * time.Second); data["number"] != 2.0 {
		t.Fatalf("re-attached to %v, want build 2", data)
	}
	e.Release("")
	if res := j.wait(10 * time.Second); res.final != protocol.WorkComplete || res.data["result"] != "SUCCESS" || res.data["number"] != 2.0 {
		t.Fatalf("after re-attach: %v %v %s", res.packets, res.data, res.reason)
	}
	if b := e.Builds("job"); len(b) != 2 {
		t.Fatalf("builds %+v, want the native one and one for the job", b)
	}
	if h := e.QueueHistory(); len(h) != 2 {
		t.Fatalf("queue items %+v, want two", h)
	}
}

// A left item can show executable: null, cancelled: false for a moment
// after the build started: the bridge keeps waiting, and the job succeeds.
func TestBridge_LeftItemWithoutExecutableKeepsWaiting(t *testing.T) {
	e := jenkinstest.New(t, jenkinstest.WithQuietPeriod(5*time.Second), jenkinstest.WithLeftItemGap(700*time.Millisecond))
	e.ConfigureBuiltIn(0, jenkinstest.Normal)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job"}))
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 1)
	res := rig.submit(protocol.SubmitJob, "build:job", "", nil).wait(10 * time.Second)
	if res.final != protocol.WorkComplete || res.data["result"] != "SUCCESS" || res.data["number"] != 1.0 {
		t.Fatalf("%v %v %s", res.packets, res.data, res.reason)
	}
	if n := queueReads(e); n < 2 {
		t.Fatalf("%d reads of the queue item: the gap was not seen", n)
	}
}
