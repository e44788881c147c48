package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

// reloadMaster is one master entry of a configuration given to Reload.
type reloadMaster struct {
	name  string
	emu   *jenkinsEmu
	extra string // YAML lines for the entry
}

type jenkinsEmu = jenkinstest.Emulator

// reloadConfig writes a configuration for masters, as the binary reads it.
func reloadConfig(t *testing.T, masters ...reloadMaster) *bridge.Config {
	t.Helper()
	var cfg strings.Builder
	cfg.WriteString("masters:\n")
	for _, m := range masters {
		env := "GEARBRIDGE_RELOAD_TOKEN_" + strings.ToUpper(m.name)
		if _, ok := os.LookupEnv(env); !ok { // the same token every time
			t.Setenv(env, m.emu.AddUser("gearbridge", "secret"))
		}
		fmt.Fprintf(&cfg, "  - name: %s\n    url: %s\n    user: gearbridge\n    token_env: %s\n    request_timeout: 2s\n%s",
			m.name, m.emu.URL, env, m.extra)
	}
	c, err := bridge.ParseConfig([]byte(cfg.String()), "test")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Masters are added, removed and changed under load: jobs keep arriving
// and builds are running on the masters that go. Every job ends once with
// its build's result, Jenkins runs one build per job, and a removed
// master takes nothing after its builds in flight have ended.
func TestBridge_ReloadUnderLoadLosesAndRepeatsNoJob(t *testing.T) {
	a, b := newJenkins(t), newJenkins(t)
	for _, e := range []*jenkinsEmu{a, b} {
		must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 3}))
		must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}, Duration: 300 * time.Millisecond}))
	}
	r := startBridgeRig(t, nil) // the job server; the bridge is ours
	ma := reloadMaster{"jenkinsA", a, "    poll_interval: 200ms\n"}
	mb := reloadMaster{"jenkinsB", b, "    poll_interval: 200ms\n"}

	br := bridge.New(reloadConfig(t, ma), bridge.Options{Embedded: r.addr, Refs: r.store,
		Logger: slog.New(slog.NewTextHandler(&r.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); br.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	r.waitRegistered("build:job", 3)

	var jobs []*rigJob
	seq := 0
	submit := func(n int) {
		for range n {
			seq++
			jobs = append(jobs, r.submit(protocol.SubmitJob, "build:job", fmt.Sprintf("u%03d", seq), map[string]string{"ZUUL_UUID": fmt.Sprintf("u%03d", seq)}))
		}
	}
	reload := func(want bridge.ReloadResult, masters ...reloadMaster) {
		t.Helper()
		res, err := br.Reload(reloadConfig(t, masters...))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(res) != fmt.Sprint(want) {
			t.Fatalf("reload: %+v, want %+v", res, want)
		}
	}
	running := func(e *jenkinsEmu, what string) {
		t.Helper()
		eventually(t, 10*time.Second, what, func() bool { return len(e.RunningBuilds()) > 0 })
	}

	submit(12)
	running(a, "builds on A")
	reload(bridge.ReloadResult{Added: []string{"jenkinsB"}, Unchanged: []string{"jenkinsA"}}, ma, mb)
	submit(12)
	running(b, "builds on B")
	running(a, "builds on A before it is removed")
	reload(bridge.ReloadResult{Removed: []string{"jenkinsA"}, Unchanged: []string{"jenkinsB"}}, mb)
	submit(12)
	// A's management worker and executor workers leave once its builds
	// have ended; B's registrations stay.
	eventually(t, 20*time.Second, "A's workers gone", func() bool {
		return r.workers("stop:jenkinsA") == 0 && len(a.RunningBuilds()) == 0
	})
	afterRemoval := len(a.Builds("job"))
	running(b, "builds on B before it changes")
	mb.extra = "    poll_interval: 300ms\n"
	reload(bridge.ReloadResult{Changed: []string{"jenkinsB"}}, mb)
	submit(12)

	for i, j := range jobs {
		res := j.wait(60 * time.Second)
		if res.final != protocol.WorkComplete || res.data["result"] != "SUCCESS" {
			t.Fatalf("job %d: %v %v %q", i+1, res.packets, res.data, res.reason)
		}
	}
	if n := len(a.Builds("job")); n != afterRemoval {
		t.Errorf("removed master A started %d builds after its workers left", n-afterRemoval)
	}
	var uuids []string
	for _, e := range []*jenkinsEmu{a, b} {
		for _, rec := range e.Builds("job") {
			uuids = append(uuids, rec.Params["ZUUL_UUID"])
		}
	}
	slices.Sort(uuids)
	if len(uuids) != len(jobs) || len(slices.Compact(slices.Clone(uuids))) != len(jobs) {
		t.Fatalf("%d jobs ran as %d builds: %v", len(jobs), len(uuids), uuids)
	}
	if n := len(a.Builds("job")); n == 0 || n == len(jobs) {
		t.Errorf("A ran %d of %d builds: the reloads did not overlap the load", n, len(jobs))
	}
	if r.workers("build:job") != 3 {
		t.Errorf("after the reloads build:job has %d workers, want B's 3", r.workers("build:job"))
	}
	if n := r.logs.count("level=ERROR"); n > 0 {
		t.Errorf("%d errors logged", n)
	}
}
