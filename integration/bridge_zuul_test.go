package integration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

// fakeZuul behaves like Zuul 2.x's Gearman launcher (reference
// jenkins-bridge.md §2): one connection for all builds, `status` split on
// whitespace to see what is registered, uuid4 hex uniques, results read
// from the last JSON payload, `cancel job` for queued builds and
// stop:<manager> for started ones.
type fakeZuul struct {
	t      *testing.T
	addr   string
	c      *Conn
	builds map[string]*zuulBuild // by handle
}

type zuulBuild struct {
	job, uuid, handle string
	number            any
	manager           string
	data              map[string]any // last JSON payload
	result            string         // "" while running
	retry             bool           // ended without a result: Zuul re-runs it
	canceled          bool
}

func newFakeZuul(t *testing.T, addr string) *fakeZuul {
	return &fakeZuul{t: t, addr: addr, c: Dial(t, addr), builds: map[string]*zuulBuild{}}
}

func uuid4hex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// isRegistered is Zuul's isJobRegistered: the name is the first field of
// some `status` line.
func (z *fakeZuul) isRegistered(fn string) bool {
	_, ok := statusFunctions(z.t, z.addr)[fn]
	return ok
}

// launch submits build:<job> with Zuul's parameters.
func (z *fakeZuul) launch(job string, precedence protocol.Type, extra map[string]string) *zuulBuild {
	z.t.Helper()
	b := &zuulBuild{job: job, uuid: uuid4hex()}
	if !z.isRegistered("build:" + job) {
		b.result = "NOT_REGISTERED"
		return b
	}
	params := map[string]string{
		"ZUUL_UUID": b.uuid, "ZUUL_PROJECT": "org/project", "ZUUL_PIPELINE": "gate",
		"ZUUL_URL": "http://zuul.example.org/p", "ZUUL_VOTING": "1", "BASE_LOG_PATH": "12/34/5", "LOG_PATH": "12/34/5/gate/" + job,
	}
	for k, v := range extra {
		params[k] = v
	}
	payload, _ := json.Marshal(params)
	fn := "build:" + job
	if node := params["ZUUL_NODE"]; node != "" {
		fn += ":" + node
	}
	z.c.Send(precedence, fn, b.uuid, string(payload))
	for b.handle == "" {
		p := z.c.Read()
		if p.Type == protocol.JobCreated {
			b.handle = p.Args()[0]
		} else {
			z.dispatch(p)
		}
	}
	z.builds[b.handle] = b
	return b
}

// dispatch is Zuul's onWorkStatus / onBuildCompleted.
func (z *fakeZuul) dispatch(p Pkt) {
	args := p.Args()
	b := z.builds[args[0]]
	if b == nil {
		z.t.Fatalf("packet for an unknown job: %v", p)
	}
	switch p.Type {
	case protocol.WorkData, protocol.WorkComplete:
		if len(args) > 1 && args[1] != "" {
			b.data = map[string]any{}
			if err := json.Unmarshal([]byte(args[1]), &b.data); err != nil {
				z.t.Fatalf("payload of %v: %v", p, err)
			}
		}
	}
	switch p.Type {
	case protocol.WorkData, protocol.WorkStatus:
		if b.number == nil && b.data != nil {
			b.number, b.manager = b.data["number"], b.data["manager"].(string)
		}
	case protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
		if r, ok := b.data["result"].(string); ok && p.Type == protocol.WorkComplete {
			b.result = r
		} else {
			b.retry, b.result = true, "RETRY"
		}
	}
}

// until reads packets until cond holds.
func (z *fakeZuul) until(what string, cond func() bool) {
	z.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		p, err := z.c.ReadWithin(time.Until(deadline))
		if err != nil {
			z.t.Fatalf("waiting for %s: %v", what, err)
		}
		z.dispatch(p)
	}
}

func (z *fakeZuul) started(b *zuulBuild) bool { return b.number != nil }
func (z *fakeZuul) done(b *zuulBuild) bool    { return b.result != "" }

// cancel is Zuul's cancel: `cancel job` while the build has no number,
// stop:<manager> once it has one.
func (z *fakeZuul) cancel(b *zuulBuild) {
	z.t.Helper()
	if b.number == nil {
		reply := AdminOnce(z.t, z.addr, "cancel job "+b.handle+"\n")
		if strings.HasPrefix(reply, "OK") {
			b.canceled = true
			return
		}
		z.t.Fatalf("cancel job %s: %q", b.handle, reply)
	}
	meta := &zuulClient{Dial(z.t, z.addr)}
	if p := meta.meta("stop:"+b.manager, map[string]any{"name": b.job, "number": b.number}); p.Type != protocol.WorkComplete {
		z.t.Fatalf("stop: %v", p)
	}
}

func TestBridge_ZuulScenarios(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "trusty-1", Labels: []string{"bare-trusty"}, Executors: 2}))
	zuulParams := []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}, {Name: "ZUUL_PROJECT"}, {Name: "ZUUL_PIPELINE"},
		{Name: "ZUUL_URL"}, {Name: "ZUUL_VOTING"}, {Name: "LOG_PATH"}, {Name: "ZUUL_NODE"},
		{Name: "NODE", Type: jenkinstest.NodeParam}} // pins build:<job>:<label> to the worker's node
	for _, name := range []string{"project-merge", "project-test1", "project-test2"} {
		must(t, e.AddJob(jenkinstest.JobSpec{Name: name, Label: "bare-precise || bare-trusty", Concurrent: true, Params: zuulParams}))
	}
	rig := startBridgeRig(t, nil, rigMaster{name: "jenkins01", emu: e})
	rig.waitRegistered("build:project-test2:bare-trusty", 2)
	z := newFakeZuul(t, rig.addr)

	t.Run("jobs launched and node label", func(t *testing.T) {
		b := z.launch("project-merge", protocol.SubmitJobHigh, map[string]string{"ZUUL_NODE": "bare-trusty"})
		z.until("merge done", func() bool { return z.done(b) })
		if b.result != "SUCCESS" || b.data["node_name"] != "trusty-1" {
			t.Fatalf("%s %v", b.result, b.data)
		}
		if got := e.Builds("project-merge")[0].Params["ZUUL_VOTING"]; got != "1" {
			t.Fatalf("ZUUL_VOTING %q", got)
		}
	})

	t.Run("nonexistent job is not registered", func(t *testing.T) {
		if b := z.launch("no-such-job", protocol.SubmitJob, nil); b.result != "NOT_REGISTERED" {
			t.Fatalf("%+v", b)
		}
	})

	t.Run("failed change stops the builds behind it", func(t *testing.T) {
		must(t, e.HoldBuilds("project-test."))
		b1 := z.launch("project-test1", protocol.SubmitJob, nil)
		b2 := z.launch("project-test2", protocol.SubmitJob, nil)
		z.until("both started", func() bool { return z.started(b1) && z.started(b2) })
		must(t, e.FinishBuild("project-test1", 1, "FAILURE"))
		z.until("test1 done", func() bool { return z.done(b1) })
		z.cancel(b2)
		z.until("test2 done", func() bool { return z.done(b2) })
		if b1.result != "FAILURE" || b2.result != "ABORTED" {
			t.Fatalf("results %s %s", b1.result, b2.result)
		}
		e.StopHolding()
	})

	t.Run("queued build is cancelled in Gearman", func(t *testing.T) {
		must(t, e.HoldBuilds("project-test."))
		running := []*zuulBuild{z.launch("project-test1", protocol.SubmitJob, nil), z.launch("project-test2", protocol.SubmitJob, nil)}
		z.until("executors busy", func() bool { return z.started(running[0]) && z.started(running[1]) })
		queued := z.launch("project-test1", protocol.SubmitJobLow, nil)
		before := len(e.QueueHistory())
		z.cancel(queued)
		if !queued.canceled {
			t.Fatal("not cancelled")
		}
		e.StopHolding()
		e.Release("")
		z.until("running builds done", func() bool { return z.done(running[0]) && z.done(running[1]) })
		waitPolls(t, e, 2)
		if n := len(e.QueueHistory()); n != before {
			t.Fatalf("the cancelled build reached Jenkins (%d new queue items)", n-before)
		}
	})

	t.Run("rerun on error", func(t *testing.T) {
		remove, err := e.InjectFault("POST .*/project-test1/buildWithParameters$", jenkinstest.Fault{Status: 500})
		must(t, err)
		b := z.launch("project-test1", protocol.SubmitJob, nil)
		z.until("failed", func() bool { return z.done(b) })
		remove()
		if !b.retry {
			t.Fatalf("a build that could not run must make Zuul retry, got %s", b.result)
		}
		again := z.launch("project-test1", protocol.SubmitJob, nil)
		z.until("rerun", func() bool { return z.done(again) })
		if again.result != "SUCCESS" {
			t.Fatalf("rerun: %s", again.result)
		}
	})

	t.Run("build description", func(t *testing.T) {
		b := z.launch("project-test2", protocol.SubmitJob, nil)
		z.until("done", func() bool { return z.done(b) })
		meta := &zuulClient{Dial(t, rig.addr)}
		html := "<p>Triggered by change 1,1 in gate: project-test2 SUCCESS</p>"
		if p := meta.meta("set_description:"+b.manager, map[string]any{"name": b.job, "number": b.number, "html_description": html}); p.Type != protocol.WorkComplete {
			t.Fatalf("set_description: %v", p)
		}
		builds := e.Builds("project-test2")
		if got := builds[len(builds)-1].Description; got != html {
			t.Fatalf("description %q", got)
		}
	})
	noBuildWaitedInJenkins(t, e)
}
