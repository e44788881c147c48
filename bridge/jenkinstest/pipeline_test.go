package jenkinstest_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
)

// A Pipeline job's runs are flyweight: they start with no executor free
// anywhere (the built-in node has none), show no builtOn, and appear
// among the built-in computer's oneOffExecutors, not its executors.
func TestPipelineRunsAreFlyweight(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "busy"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "pipe", Pipeline: true, Concurrent: true})
	if err := e.HoldBuilds(""); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, e.URL, "", "")
	if _, err := e.Trigger("busy", nil, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n1's only executor to be taken", func() bool { return len(e.RunningBuilds()) == 1 })
	if r := c.post("/job/pipe/build?delay=0sec", nil); r.status != 201 {
		t.Fatalf("trigger: %d %s", r.status, r.body)
	}
	eventually(t, "the pipeline run", func() bool { return len(e.Builds("pipe")) == 1 })

	job := c.json("/job/pipe/api/json")
	if job["_class"] != "org.jenkinsci.plugins.workflow.job.WorkflowJob" {
		t.Errorf("job class %v", job["_class"])
	}
	if _, ok := job["labelExpression"]; ok {
		t.Errorf("a WorkflowJob exported labelExpression")
	}
	run := c.json("/job/pipe/1/api/json")
	if run["_class"] != "org.jenkinsci.plugins.workflow.job.WorkflowRun" || run["building"] != true {
		t.Errorf("run %v building %v", run["_class"], run["building"])
	}
	if _, ok := run["builtOn"]; ok {
		t.Errorf("a WorkflowRun exported builtOn %v", run["builtOn"])
	}
	comps := c.json("/computer/api/json?tree=computer[displayName,executors[idle],oneOffExecutors[currentExecutable[url]]]")["computer"].([]any)
	var oneOff []string
	for _, comp := range comps {
		m := comp.(map[string]any)
		for _, x := range m["oneOffExecutors"].([]any) {
			oneOff = append(oneOff, m["displayName"].(string)+" "+str(x.(map[string]any)["currentExecutable"].(map[string]any)["url"]))
		}
		if m["displayName"] == "Built-In Node" && len(m["executors"].([]any)) != 0 {
			t.Errorf("built-in executors %v", m["executors"])
		}
	}
	if len(oneOff) != 1 || !strings.HasPrefix(oneOff[0], "Built-In Node "+e.URL+"/job/pipe/1/") {
		t.Errorf("one-off executors %v", oneOff)
	}
	// Stop works on it as on any build, asynchronously.
	c.post("/job/pipe/1/stop", nil)
	eventually(t, "the run to be aborted", func() bool {
		b := e.Builds("pipe")[0]
		return !b.Building && b.Result == jenkinstest.ResultAborted
	})
	if comps := c.json("/computer/(built-in)/api/json?tree=oneOffExecutors[idle]"); len(comps["oneOffExecutors"].([]any)) != 0 {
		t.Errorf("one-off executors after the run: %v", comps)
	}
}

// A started item's LeftItem can show executable: null, cancelled: false
// for a moment, until the executor has created the build.
func TestLeftItemWithoutExecutableYet(t *testing.T) {
	clock := jenkinstest.NewFakeClock(time.Time{})
	e := jenkinstest.New(t, jenkinstest.WithClock(clock), jenkinstest.WithLeftItemGap(time.Second))
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Params: []jenkinstest.ParamSpec{{Name: "A"}}})
	c := newClient(t, e.URL, "", "")
	_, path := c.trigger("/job/p/", url.Values{"A": {"x"}, "delay": {"0sec"}})
	m := c.pollItem(path)
	if exe, ok := m["executable"]; !ok || exe != nil || m["cancelled"] != false {
		t.Fatalf("left item in the gap: executable=%v (present %v) cancelled=%v", exe, ok, m["cancelled"])
	}
	clock.Advance(time.Second)
	if exe, _ := c.json(path + "api/json")["executable"].(map[string]any); exe == nil || exe["number"] != 1.0 {
		t.Fatalf("left item after the gap: %v", exe)
	}
}

// A crash restart ends interrupted builds ABORTED on current cores,
// FAILURE before 2.447; Pipeline runs resume.
func TestRestartResultFollowsTheVersion(t *testing.T) {
	for version, want := range map[string]string{jenkinstest.VersionCurrent: "ABORTED", "2.426.3": "FAILURE", jenkinstest.VersionLegacy: "FAILURE"} {
		e := jenkinstest.New(t, jenkinstest.WithVersion(version))
		mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
		mustJob(t, e, jenkinstest.JobSpec{Name: "p"})
		mustJob(t, e, jenkinstest.JobSpec{Name: "pipe", Pipeline: true})
		if err := e.HoldBuilds(""); err != nil {
			t.Fatal(err)
		}
		for _, j := range []string{"p", "pipe"} {
			if _, err := e.Trigger(j, nil, 0); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "two builds", func() bool { return len(e.RunningBuilds()) == 2 })
		e.Restart()
		if b := e.Builds("p")[0]; b.Building || b.Result != want {
			t.Errorf("%s: interrupted build %+v, want %s", version, b, want)
		}
		if b := e.Builds("pipe")[0]; !b.Building {
			t.Errorf("%s: the Pipeline run did not resume: %+v", version, b)
		}
	}
}
