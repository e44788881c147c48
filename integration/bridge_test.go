package integration

import (
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

func newJenkins(t *testing.T) *jenkinstest.Emulator {
	e := jenkinstest.New(t, jenkinstest.WithQuietPeriod(5*time.Second))
	e.ConfigureBuiltIn(0, jenkinstest.Normal)
	return e
}

func TestBridge_BuildReportsDataStatusAndResult(t *testing.T) {
	jenkins := newJenkins(t)
	must(t, jenkins.AddNode(jenkinstest.NodeSpec{Name: "n1", Labels: []string{"linux"}, Executors: 2}))
	must(t, jenkins.AddJob(jenkinstest.JobSpec{Name: "hello", Label: "linux",
		Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID", Type: jenkinstest.StringParam}}}))
	rig := startBridgeRig(t, nil, rigMaster{name: "jenkins01", emu: jenkins, extra: "    allow_unpinned: true\n"})
	rig.waitRegistered("build:hello", 2)
	rig.waitRegistered("build:hello:linux", 2)
	rig.waitRegistered("stop:jenkins01", 1)

	c := rig.client()
	h := c.submit(protocol.SubmitJob, "build:hello", "u1", map[string]string{"ZUUL_UUID": "u1", "UNDEFINED": "x"})
	res := c.wait(h, 10*time.Second)
	if res.final != protocol.WorkComplete || res.packets[0] != protocol.WorkData || res.packets[1] != protocol.WorkStatus {
		t.Fatalf("packets %v (%s)", res.packets, res.reason)
	}
	if res.data["result"] != "SUCCESS" || res.data["name"] != "hello" || res.data["number"] != float64(1) ||
		res.data["manager"] != "jenkins01" || res.data["node_name"] != "n1" {
		t.Fatalf("final data %v", res.data)
	}
	builds := jenkins.Builds("hello")
	if len(builds) != 1 || builds[0].Params["ZUUL_UUID"] != "u1" {
		t.Fatalf("builds %+v", builds)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
