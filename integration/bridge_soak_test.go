package integration

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/internal/testkit"
	"github.com/gearbridge/gearbridge/protocol"
)

// A soak of the bridge under random Jenkins faults: two masters answer 500s
// and 503s, hang past the request timeout and reset connections in random
// spells while Zuul-style clients submit builds. Whatever the faults, every
// job ends (with its result, or a WORK_EXCEPTION saying why it could not
// run), more than half succeed, none is left queued or running once the
// faults stop, and no job starts two builds. It runs with GB_SOAK=1 (make soak), since its faults
// are random; GB_SOAK_SEED replays one run's choice of faults (not their
// timing).
func TestBridge_SoakUnderRandomFaults(t *testing.T) {
	seed := testkit.SoakSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed))

	var masters []rigMaster
	for _, name := range []string{"m1", "m2"} {
		e := jenkinstest.New(t, jenkinstest.WithQuietPeriod(0))
		e.ConfigureBuiltIn(0, jenkinstest.Normal)
		for i := 1; i <= 2; i++ {
			must(t, e.AddNode(jenkinstest.NodeSpec{Name: fmt.Sprintf("%s-n%d", name, i), Executors: 2}))
		}
		must(t, e.AddJob(jenkinstest.JobSpec{Name: "soak", Duration: 300 * time.Millisecond,
			Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID", Type: jenkinstest.StringParam}}}))
		masters = append(masters, rigMaster{name: name, emu: e, extra: "    max_outage: 2s\n"})
	}
	rig := startBridgeRig(t, nil, masters...)
	rig.waitRegistered("build:soak", 8)

	// Faults come and go for the length of the soak.
	const soak = 8 * time.Second
	patterns := []string{".", "^POST ", "^GET /queue/item/", "^GET /job/soak/[0-9]+/api/json", "^GET /computer/api/json"}
	faults := []jenkinstest.Fault{{Status: 500}, {Status: 503}, {Delay: time.Hour}, {Reset: true}, {LoseReply: true}}
	stop := make(chan struct{})
	var chaos sync.WaitGroup
	chaos.Add(1)
	go func() {
		defer chaos.Done()
		for {
			m := masters[rng.IntN(len(masters))].emu
			remove, err := m.InjectFault(patterns[rng.IntN(len(patterns))], faults[rng.IntN(len(faults))])
			if err != nil {
				t.Error(err)
				return
			}
			spell := time.Duration(100+rng.IntN(1500)) * time.Millisecond
			select {
			case <-time.After(spell): // the length of the fault spell
				remove()
			case <-stop:
				remove()
				return
			}
			select {
			case <-time.After(time.Duration(rng.IntN(500)) * time.Millisecond): // a quiet spell
			case <-stop:
				return
			}
		}
	}()

	const jobs = 40
	var submitted []*rigJob
	for i := range jobs {
		uuid := fmt.Sprintf("soak-%d", i)
		submitted = append(submitted, rig.submit(protocol.SubmitJob, "build:soak", uuid, map[string]string{"ZUUL_UUID": uuid}))
		time.Sleep(soak / jobs) // submits spread over the soak
	}
	close(stop)
	chaos.Wait()
	for _, m := range masters {
		m.emu.ClearFaults()
	}

	// A job ends with its build's result, or with a WORK_EXCEPTION that
	// says why it could not run, and carries no result then.
	byEnd := map[string]int{}
	urls := map[string]int{}
	for i, j := range submitted {
		res := j.wait(soak + 60*time.Second)
		switch {
		case res.final == protocol.WorkComplete && res.data["result"] == "SUCCESS":
			byEnd["SUCCESS"]++
		case res.final == protocol.WorkException && res.reason != "" && (res.data == nil || res.data["result"] == nil):
			byEnd["WORK_EXCEPTION"]++
			t.Logf("job %d: %s", i, res.reason)
		default:
			t.Errorf("job %d ended with %v, result %v, reason %q", i, res.packets, res.data["result"], res.reason)
		}
		if url, _ := res.data["url"].(string); url != "" {
			if other, ok := urls[url]; ok {
				t.Errorf("jobs %d and %d both report build %s", other, i, url)
			}
			urls[url] = i
		}
	}
	if byEnd["SUCCESS"] <= jobs/2 {
		t.Errorf("only %d of %d jobs succeeded", byEnd["SUCCESS"], jobs)
	}
	t.Logf("ends: %v", byEnd)
	if st := statusOf(Dial(t, rig.addr).Admin("status\n"), "build:soak"); st.total != 0 || st.running != 0 {
		t.Errorf("left in the server: %+v", st)
	}
	// No job started two builds: each build's ZUUL_UUID is unique.
	seen := map[string]string{}
	for _, m := range masters {
		for _, b := range m.emu.Builds("soak") {
			u := b.Params["ZUUL_UUID"]
			if prev, ok := seen[u]; ok {
				t.Errorf("two builds for %s: %s and %s#%d", u, prev, m.name, b.Number)
			}
			seen[u] = fmt.Sprintf("%s#%d", m.name, b.Number)
		}
	}
}
