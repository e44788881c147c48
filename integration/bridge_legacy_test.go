package integration

import (
	"reflect"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

// Before 2.94 the JSON API has no labelExpression or assignedLabels: the
// bridge reads labels from config.xml, and the same functions result.
func TestBridge_PreLabelJSONMaster(t *testing.T) {
	e := jenkinstest.New(t, jenkinstest.WithVersion(jenkinstest.VersionLegacy), jenkinstest.WithQuietPeriod(5*time.Second))
	e.ConfigureBuiltIn(0, jenkinstest.Normal)
	must(t, e.AddNode(jenkinstest.NodeSpec{Name: "ubuntu1", Labels: []string{"linux"}, Executors: 1}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "lemon", Label: "linux"}))
	must(t, e.AddJob(jenkinstest.JobSpec{Name: "plain"}))
	rig := startBridgeRig(t, nil, rigMaster{name: "old", emu: e, extra: "    allow_unpinned: true\n"})
	rig.waitRegistered("build:lemon:linux", 1)
	want := []string{"build:lemon", "build:lemon:linux", "build:plain"}
	if got := rig.registrations()["ubuntu1_exec-0"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("registers %q, want %q", got, want)
	}
	res := rig.submit(protocol.SubmitJob, "build:lemon:linux", "", nil).wait(10 * time.Second)
	if res.data["result"] != "SUCCESS" || res.data["node_name"] != "ubuntu1" {
		t.Fatalf("%v %s", res.data, res.reason)
	}
}
