package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

// startBridgeOnServers runs a bridge for master "m" of e whose workers
// connect to the given job servers (gearman: servers:), not to an
// embedded one.
func startBridgeOnServers(t *testing.T, e *jenkinstest.Emulator, servers ...string) {
	t.Helper()
	token := e.AddUser("gearbridge", "secret")
	t.Setenv("GEARBRIDGE_TEST_TOKEN_M", token)
	cfg := fmt.Sprintf("gearman:\n  servers: [%s]\nmasters:\n  - name: m\n    url: %s\n    user: gearbridge\n    token_env: GEARBRIDGE_TEST_TOKEN_M\n    poll_interval: 200ms\n    request_timeout: 2s\n",
		strings.Join(servers, ", "), e.URL)
	bc, err := bridge.ParseConfig([]byte(cfg), "test")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("BRIDGE_DEBUG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b := bridge.New(bc, bridge.Options{Logger: logger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("bridge did not stop within 10s")
		}
	})
}

// submitTo submits a build job to the job server at addr on its own
// connection, as Zuul does (exceptions on, ZUUL_UUID = unique).
func submitTo(t *testing.T, addr, fn, unique string) *rigJob {
	t.Helper()
	c := &zuulClient{Dial(t, addr)}
	c.Send(protocol.OptionReq, "exceptions")
	c.Expect(protocol.OptionRes, "exceptions")
	return &rigJob{c: c, handle: c.submit(protocol.SubmitJob, fn, unique, map[string]string{"ZUUL_UUID": unique})}
}

// waitWorkers waits until fn has n workers in the `status` of addr.
func waitWorkers(t *testing.T, addr, fn string, n int) {
	t.Helper()
	eventually(t, 15*time.Second, fmt.Sprintf("%s registered by %d workers on %s", fn, n, addr), func() bool {
		f := statusFunctions(t, addr)[fn]
		return len(f) == 3 && f[2] == fmt.Sprint(n)
	})
}

// waitBuilt waits until the job with ZUUL_UUID unique has a build and
// ends with SUCCESS. If no build starts, it shows the servers' queues.
func waitBuilt(t *testing.T, e *jenkinstest.Emulator, j *rigJob, unique string, servers ...*Server) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !hasBuild(e, "job", unique) {
		if time.Now().After(deadline) {
			for _, s := range servers {
				t.Logf("%s %s status (function total running workers):\n%s", s.Kind, s.Addr, AdminOnce(t, s.Addr, "status\n"))
			}
			t.Fatalf("job %s (%s) was not built within 20s", unique, j.handle)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if res := j.wait(20 * time.Second); res.final != protocol.WorkComplete || res.data["result"] != "SUCCESS" {
		t.Fatalf("job %s: %v %v %s", unique, res.packets, res.data, res.reason)
	}
}

func hasBuild(e *jenkinstest.Emulator, job, unique string) bool {
	for _, b := range e.Builds(job) {
		if b.Params["ZUUL_UUID"] == unique {
			return true
		}
	}
	return false
}

// builtOnce asserts that every unique ID in want was built exactly once
// and that nothing else was built.
func builtOnce(t *testing.T, e *jenkinstest.Emulator, job string, want []string) {
	t.Helper()
	count := map[string]int{}
	builds := e.Builds(job)
	for _, b := range builds {
		count[b.Params["ZUUL_UUID"]]++
	}
	for _, u := range want {
		if count[u] != 1 {
			t.Errorf("job %s was built %d times", u, count[u])
		}
	}
	if len(builds) != len(want) {
		t.Errorf("%d builds for %d jobs: %v", len(builds), len(want), count)
	}
}

// testTwoJobServers: a node with one executor and a bridge on two job
// servers. Jobs submitted to either server are each built exactly once,
// and when one server dies the other's jobs still build. A worker that
// sleeps on one server must not keep the node's only executor from the
// worker on the other.
func testTwoJobServers(t *testing.T, a, b *Server) {
	e := newJenkins(t)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Concurrent: true,
		Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID", Type: jenkinstest.StringParam}}}))
	startBridgeOnServers(t, e, a.Addr, b.Addr)
	waitWorkers(t, a.Addr, "build:job", 1)
	waitWorkers(t, b.Addr, "build:job", 1)
	// Let both workers go to sleep: whichever took the node's executor
	// first must not keep it while it waits for work.
	waitPolls(t, e, 2)

	var uniques []string
	var jobs []*rigJob
	for round := 0; round < 2; round++ {
		for i, s := range []*Server{b, a} {
			u := fmt.Sprintf("%s-%d-%d", s.Kind, i, round)
			uniques = append(uniques, u)
			jobs = append(jobs, submitTo(t, s.Addr, "build:job", u))
		}
	}
	for i, j := range jobs {
		waitBuilt(t, e, j, uniques[i], a, b)
	}
	waitPolls(t, e, 2) // a second build would show by now
	builtOnce(t, e, "job", uniques)
	noBuildWaitedInJenkins(t, e)

	// While a build holds the node's one executor, a job on the other
	// server waits in Gearman, not in Jenkins: never more GRABs out than
	// free executors, across both servers. Its worker, woken while the node
	// was busy, grabs it once the executor frees.
	must(t, e.HoldBuilds(""))
	held := submitTo(t, a.Addr, "build:job", "held")
	eventually(t, 20*time.Second, "the held build", func() bool { return hasBuild(e, "job", "held") })
	waiting := submitTo(t, b.Addr, "build:job", "waiting")
	waitPolls(t, e, 3)
	if hasBuild(e, "job", "waiting") {
		t.Fatal("a second build started on the node's one executor")
	}
	noBuildWaitedInJenkins(t, e)
	e.StopHolding()
	if n, err := e.Release(""); n != 1 || err != nil {
		t.Fatalf("released %d builds (%v), want the held one", n, err)
	}
	waitBuilt(t, e, held, "held", a, b)
	waitBuilt(t, e, waiting, "waiting", a, b)
	uniques = append(uniques, "held", "waiting")
	builtOnce(t, e, "job", uniques)
	noBuildWaitedInJenkins(t, e)

	// One server dies: the bridge keeps building the other's jobs.
	a.Kill()
	for i := range 2 {
		u := fmt.Sprintf("after-kill-%d", i)
		uniques = append(uniques, u)
		waitBuilt(t, e, submitTo(t, b.Addr, "build:job", u), u, b)
	}
	waitPolls(t, e, 2)
	builtOnce(t, e, "job", uniques)
}

func TestBridge_TwoGearbridgeServersShareOneExecutor(t *testing.T) {
	testTwoJobServers(t, StartGearbridge(t), StartGearbridge(t))
}

func TestBridge_GearbridgeAndGearmandShareOneExecutor(t *testing.T) {
	a := StartGearbridge(t)
	b := StartGearmand(t) // skips without gearmand, fails under CI=true
	testTwoJobServers(t, a, b)
}
