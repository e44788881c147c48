package jenkinstest_test

import (
	"context"
	"testing"

	"github.com/bndr/gojenkins"
	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
)

// gojenkins is a third-party Jenkins client written against real Jenkins:
// the emulator must answer what it reads.
func TestGojenkinsReadsTheEmulator(t *testing.T) {
	e := jenkinstest.New(t)
	if err := e.AddNode(jenkinstest.NodeSpec{Name: "agent-1", Labels: []string{"linux"}, Executors: 2}); err != nil {
		t.Fatal(err)
	}
	if err := e.AddJob(jenkinstest.JobSpec{Name: "folder/inner", Label: "linux",
		Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID", Default: "none"}}}); err != nil {
		t.Fatal(err)
	}
	token := e.AddUser("gb", "pw")
	ctx := context.Background()
	j, err := gojenkins.CreateJenkins(nil, e.URL, "gb", token).Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if j.Version != jenkinstest.VersionCurrent {
		t.Errorf("version %q from X-Jenkins, want %q", j.Version, jenkinstest.VersionCurrent)
	}
	job, err := j.GetJob(ctx, "inner", "folder")
	if err != nil {
		t.Fatal(err)
	}
	if job.GetName() != "inner" || job.Raw.FullName != "folder/inner" || !job.Raw.Buildable {
		t.Errorf("job %+v", job.Raw)
	}
	params, err := job.GetParameters(ctx)
	if err != nil || len(params) != 1 || params[0].Name != "ZUUL_UUID" || params[0].DefaultParameterValue.Value != "none" {
		t.Errorf("parameters %+v %v", params, err)
	}
	node, err := j.GetNode(ctx, "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	if online, err := node.IsOnline(ctx); err != nil || !online {
		t.Errorf("agent-1 online %v %v", online, err)
	}
	id, err := e.Trigger("folder/inner", map[string]string{"ZUUL_UUID": "u"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	task, err := j.GetQueueItem(ctx, int64(id))
	if err != nil {
		t.Fatal(err)
	}
	if task.Raw.ID != int64(id) || task.Raw.Task.Name != "inner" {
		t.Errorf("queue item %+v", task.Raw)
	}
}
