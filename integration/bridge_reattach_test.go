package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

// gearbridge is killed with SIGKILL while a build runs; after the restart
// the job is handed out again and its worker follows the same Jenkins
// build to its end: Jenkins sees one build, the client gets its result.
func TestBridge_Kill9MidBuildReattachesToTheSameBuild(t *testing.T) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 2}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}}))
	must(t, e.HoldBuilds(""))
	token := e.AddUser("gearbridge", "secret")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	must(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	cfg := filepath.Join(dir, "gearbridge.yaml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(
		"masters:\n  - name: jenkins01\n    url: %s\n    user: gearbridge\n    token_file: %s\n    poll_interval: 200ms\n", e.URL, tokenFile)), 0o600))

	s := StartGearbridge(t, "--durability", "sync", "--config", cfg)
	c := &zuulClient{Dial(t, s.Addr)}
	params := map[string]string{"ZUUL_UUID": "0f1e2d3c"}
	eventually(t, 10*time.Second, "build:job registered", func() bool {
		st := statusFunctions(t, s.Addr)["build:job"]
		return len(st) == 3 && st[2] != "0"
	})
	h := c.submit(protocol.SubmitJob, "build:job", "0f1e2d3c", params)
	if data := c.started(h, 10*time.Second); data["number"] != float64(1) {
		t.Fatalf("first start: %v", data)
	}

	s.Kill()
	s.start(false)

	// Zuul submits the build again with the same unique: it is attached to
	// the restored job, whose worker re-attaches to build #1.
	c2 := &zuulClient{Dial(t, s.Addr)}
	if h2 := c2.submit(protocol.SubmitJob, "build:job", "0f1e2d3c", params); h2 != h {
		t.Fatalf("after restart the job has handle %s, was %s", h2, h)
	}
	if data := c2.started(h, 15*time.Second); data["number"] != float64(1) {
		t.Fatalf("re-attached to %v, want build 1", data)
	}
	if n, _ := e.Release(""); n != 1 {
		t.Fatalf("released %d builds", n)
	}
	res := c2.wait(h, 10*time.Second)
	if res.final != protocol.WorkComplete || res.data["result"] != "SUCCESS" || res.data["number"] != float64(1) {
		t.Fatalf("after re-attach: %v %v", res.packets, res.data)
	}
	if n := len(e.Builds("job")); n != 1 {
		t.Fatalf("Jenkins ran %d builds for one job", n)
	}
	if n := len(e.QueueHistory()); n != 1 {
		t.Fatalf("%d queue items for one job", n)
	}
}
