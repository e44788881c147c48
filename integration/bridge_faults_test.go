package integration

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
	"github.com/gearbridge/gearbridge/server"
	"github.com/gearbridge/gearbridge/store"
)

// A job that cannot run ends with one WORK_EXCEPTION carrying the reason
// and no result, so that Zuul runs it again.
func expectFailedToRun(t *testing.T, res buildResult, reason string) {
	t.Helper()
	if res.final != protocol.WorkException || len(res.packets) != 1 && res.packets[len(res.packets)-2] == protocol.WorkComplete {
		t.Fatalf("packets %v, want one WORK_EXCEPTION at the end", res.packets)
	}
	if res.data != nil && res.data["result"] != nil {
		t.Fatalf("a failed job carried a result: %v", res.data)
	}
	if !strings.Contains(res.reason, reason) {
		t.Fatalf("reason %q does not mention %q", res.reason, reason)
	}
}

func oneNodeJenkins(t *testing.T) *jenkinstest.Emulator {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job"}))
	return e
}

// runningBuild starts a one-node master with held builds, a bridge (with
// extra lines in the master's configuration) and one job whose build has
// started.
func runningBuild(t *testing.T, extra string) (*jenkinstest.Emulator, *rigJob) {
	t.Helper()
	e := oneNodeJenkins(t)
	must(t, e.HoldBuilds(""))
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e, extra: extra})
	rig.waitRegistered("build:job", 1)
	j := rig.submit(protocol.SubmitJob, "build:job", "", nil)
	j.started(10 * time.Second)
	return e, j
}

func TestBridge_TriggerErrorFailsTheJob(t *testing.T) {
	e := oneNodeJenkins(t)
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 1)
	remove, err := e.InjectFault("POST .*/build$", jenkinstest.Fault{Status: 500, Body: "boom"})
	must(t, err)
	expectFailedToRun(t, rig.submit(protocol.SubmitJob, "build:job", "", nil).wait(20*time.Second), "500")
	remove()
	// The worker goes on taking jobs.
	if res := rig.submit(protocol.SubmitJob, "build:job", "", nil).wait(10 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("after the fault: %v %s", res.packets, res.reason)
	}
}

func TestBridge_UnreachableJenkinsMeansNoGrabs(t *testing.T) {
	e := oneNodeJenkins(t)
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 1)
	remove, err := e.InjectFault(".", jenkinstest.Fault{Reset: true})
	must(t, err)
	// Wait for the bridge to notice: its polls keep failing.
	before := len(e.Requests())
	eventually(t, 10*time.Second, "failed polls", func() bool { return len(e.Requests()) >= before+2 })
	j := rig.submit(protocol.SubmitJob, "build:job", "", nil)
	eventually(t, 10*time.Second, "more failed polls", func() bool { return len(e.Requests()) >= before+4 })
	if st := statusFunctions(t, rig.addr)["build:job"]; st[1] != "0" {
		t.Fatalf("a job was taken while Jenkins was down: %q", st)
	}
	remove()
	if res := j.wait(15 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("after Jenkins came back: %v %s", res.packets, res.reason)
	}
}

func TestBridge_CancelledQueueItemFailsTheJob(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 2}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job"})) // not concurrent
	must(t, e.HoldBuilds(""))
	// A build started by Jenkins itself blocks the next one of the job.
	_, err := e.Trigger("job", nil, 0)
	must(t, err)
	eventually(t, 5*time.Second, "native build", func() bool { return len(e.RunningBuilds()) == 1 })
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 2)
	j := rig.submit(protocol.SubmitJob, "build:job", "", nil)
	var id int
	eventually(t, 10*time.Second, "queued item", func() bool {
		items := e.QueueItems()
		if len(items) == 1 {
			id = items[0].ID
		}
		return id != 0
	})
	if !e.CancelQueueItem(id) {
		t.Fatal("could not cancel")
	}
	expectFailedToRun(t, j.wait(10*time.Second), "cancelled")
}

func TestBridge_DeletedProjectFailsTheRunningJob(t *testing.T) {
	e, j := runningBuild(t, "")
	must(t, e.RemoveJob("job"))
	expectFailedToRun(t, j.wait(10*time.Second), "gone")
}

func TestBridge_JenkinsRestartFailsTheRunningJob(t *testing.T) {
	e, j := runningBuild(t, "")
	// A restart: Jenkins is away for a while, and its running builds end
	// ABORTED. That is not the build's result; Zuul must run it again.
	remove, err := e.InjectFault(".", jenkinstest.Fault{Status: 503, Body: "Jenkins is restarting"})
	must(t, err)
	before := len(e.Requests())
	eventually(t, 10*time.Second, "refused requests", func() bool { return len(e.Requests()) >= before+3 })
	e.Restart()
	remove()
	expectFailedToRun(t, j.wait(15*time.Second), "aborted")
}

func TestBridge_BadCredentialsDoNotStopOtherMasters(t *testing.T) {
	good, bad := oneNodeJenkins(t), oneNodeJenkins(t)
	rig := startBridgeRig(t, nil, rigMaster{name: "good", emu: good}, rigMaster{name: "bad", emu: bad, badToken: true})
	rig.waitRegistered("build:job", 1)
	if n := bad.CountRequests("^POST "); n != 0 {
		t.Fatalf("%d POSTs with bad credentials", n)
	}
	if res := rig.submit(protocol.SubmitJob, "build:job", "", nil).wait(10 * time.Second); res.data["manager"] != "good" {
		t.Fatalf("%v", res.data)
	}
}

func TestBridge_ReconnectsToARestartedJobServer(t *testing.T) {
	e := oneNodeJenkins(t)
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 1)
	rig.srv.Close()

	// A new server on the same address: the workers come back and
	// register again.
	srv, err := server.New(server.Config{Store: store.NewMemory(), HandlePrefix: "H:rig2"})
	must(t, err)
	var ln net.Listener
	eventually(t, 10*time.Second, "the port to be free", func() bool {
		ln, err = net.Listen("tcp", rig.addr)
		return err == nil
	})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	rig.srv = srv
	rig.waitRegistered("build:job", 1)
	rig.waitRegistered("stop:m", 1)
	if res := rig.submit(protocol.SubmitJob, "build:job", "", nil).wait(10 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("%v %s", res.packets, res.reason)
	}
}

func TestBridge_SlowJenkinsTimesOutAndRecovers(t *testing.T) {
	e, j := runningBuild(t, "")
	// Build reads hang longer than request_timeout (2s): each is cut off
	// and retried, and the job goes on once Jenkins answers again.
	remove, err := e.InjectFault("^GET /job/job/1/api/json", jenkinstest.Fault{Delay: time.Hour})
	must(t, err)
	eventually(t, 10*time.Second, "a timed-out build read", func() bool {
		for _, r := range e.Requests() {
			if r.Fault && r.Path == "/job/job/1/api/json" && r.Status == 0 {
				return true
			}
		}
		return false
	})
	remove()
	e.Release("")
	if res := j.wait(15 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("after the slow spell: %v %s", res.packets, res.reason)
	}
}

func TestBridge_GivesUpAfterMaxOutage(t *testing.T) {
	e, j := runningBuild(t, "    max_outage: 1s\n")
	_, err := e.InjectFault(".", jenkinstest.Fault{Status: 503})
	must(t, err)
	expectFailedToRun(t, j.wait(15*time.Second), "unreachable for 1s")
}

// An outage while following a started build ends when Jenkins answers: a
// second, short outage gets its own max_outage, however long the two last
// together. (Before its build starts, a job gives up after one poll
// interval instead: TestBridge_UnreachableMasterFailsJobsNotYetStarted.)
func TestBridge_MaxOutageStartsAgainAfterAnAnswer(t *testing.T) {
	e, j := runningBuild(t, "    max_outage: 3s\n")
	const read = "^GET /job/job/1/api/json"
	answered := func() int {
		n := 0
		for _, r := range e.Requests() {
			if r.Path == "/job/job/1/api/json" && !r.Fault && r.Status == 200 {
				n++
			}
		}
		return n
	}
	// Each outage lasts 1.8s, well under max_outage; both together last longer.
	for i := 0; i < 2; i++ {
		remove, err := e.InjectFault(read, jenkinstest.Fault{Status: 503})
		must(t, err)
		n := e.CountRequests(read)
		eventually(t, 10*time.Second, "a failed build read", func() bool { return e.CountRequests(read) > n })
		time.Sleep(1800 * time.Millisecond) // the outage
		remove()
		ok := answered()
		eventually(t, 10*time.Second, "an answer", func() bool { return answered() > ok })
	}
	e.Release("")
	if res := j.wait(15 * time.Second); res.data["result"] != "SUCCESS" {
		t.Fatalf("after two short outages: %v %s", res.packets, res.reason)
	}
}

// When the trigger's answer is lost (Jenkins queued the build, then the
// connection reset), the bridge finds the build by the job's parameters
// and follows it: the job succeeds and Jenkins builds it once, where
// failing the job would have Zuul run it again, and the build twice.
func TestBridge_LostTriggerAnswerFollowsTheQueuedBuild(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "plain"}))
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 1)

	_, err := e.InjectFault("POST .*/buildWithParameters$", jenkinstest.Fault{LoseReply: true, Times: 1})
	must(t, err)
	res := rig.submit(protocol.SubmitJob, "build:job", "u1", map[string]string{"ZUUL_UUID": "u1"}).wait(20 * time.Second)
	if res.final != protocol.WorkComplete || res.data["result"] != "SUCCESS" {
		t.Fatalf("after a lost answer: %v %v %s", res.packets, res.data, res.reason)
	}
	if builds := e.Builds("job"); len(builds) != 1 || builds[0].Params["ZUUL_UUID"] != "u1" {
		t.Fatalf("Jenkins built %v, want one build of u1", builds)
	}

	// Where nothing tells this job's build from another one, the job fails
	// as before (and Zuul runs it again): without parameters, without its
	// unique ID among them, or with two builds that match.
	_, err = e.InjectFault("POST .*/build$", jenkinstest.Fault{LoseReply: true, Times: 1})
	must(t, err)
	expectFailedToRun(t, rig.submit(protocol.SubmitJob, "build:plain", "", nil).wait(20*time.Second), "could not trigger")
	_, err = e.InjectFault("POST .*/buildWithParameters$", jenkinstest.Fault{LoseReply: true, Times: 1})
	must(t, err)
	expectFailedToRun(t, rig.submit(protocol.SubmitJob, "build:job", "", map[string]string{"ZUUL_UUID": "u2"}).wait(20*time.Second), "could not trigger")
	_, err = e.InjectFault("POST .*/buildWithParameters$", jenkinstest.Fault{LoseReply: true, Times: 1})
	must(t, err)
	expectFailedToRun(t, rig.submit(protocol.SubmitJob, "build:job", "u1", map[string]string{"ZUUL_UUID": "u1"}).wait(20*time.Second), "could not trigger")
	// Each lost answer's build runs all the same.
	eventually(t, 10*time.Second, "3 builds of job", func() bool { return len(e.Builds("job")) == 3 })
}

// The same when the build is still waiting in Jenkins' queue at the time
// the bridge looks (blocked behind a build of the same project).
func TestBridge_LostTriggerAnswerFollowsTheWaitingQueueItem(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 2}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}})) // not concurrent
	must(t, e.HoldBuilds(""))
	_, err := e.Trigger("job", map[string]string{"ZUUL_UUID": "native"}, 0)
	must(t, err)
	eventually(t, 5*time.Second, "native build", func() bool { return len(e.RunningBuilds()) == 1 })
	rig := startBridgeRig(t, nil, rigMaster{name: "m", emu: e})
	rig.waitRegistered("build:job", 2)

	_, err = e.InjectFault("POST .*/buildWithParameters$", jenkinstest.Fault{LoseReply: true, Times: 1})
	must(t, err)
	j := rig.submit(protocol.SubmitJob, "build:job", "u2", map[string]string{"ZUUL_UUID": "u2"})
	eventually(t, 10*time.Second, "the lookup of the queue", func() bool { return e.CountRequests("^GET /job/job/api/json$") > 0 })
	if items := e.QueueItems(); len(items) != 1 {
		t.Fatalf("queue %v, want the bridge's item waiting", items)
	}
	e.StopHolding()
	_, err = e.Release("")
	must(t, err)
	if res := j.wait(20 * time.Second); res.final != protocol.WorkComplete || res.data["result"] != "SUCCESS" || res.data["number"] != 2.0 {
		t.Fatalf("after a lost answer: %v %v %s", res.packets, res.data, res.reason)
	}
	if builds := e.Builds("job"); len(builds) != 2 || builds[1].Params["ZUUL_UUID"] != "u2" {
		t.Fatalf("Jenkins built %v, want the native build and one of u2", builds)
	}
}
