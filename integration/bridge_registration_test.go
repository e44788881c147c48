package integration

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
)

// The plugin's registration rules (reference/jenkins-bridge.md §1.2): an
// executor registers build:<project> for every project its node can run,
// plus build:<project>:<atom> for each atom of the project's label that the
// node carries; EXCLUSIVE nodes take only labeled projects; offline nodes
// and disabled projects register nothing.
func TestBridge_RegistrationTable(t *testing.T) {
	jenkins := newJenkins(t)
	jenkins.ConfigureBuiltIn(1, jenkinstest.Normal)
	must(t, jenkins.AddNode(jenkinstest.NodeSpec{Name: "ubuntu1", Labels: []string{"ubuntu", "gcc", "linux"}}))
	must(t, jenkins.AddNode(jenkinstest.NodeSpec{Name: "excl", Labels: []string{"linux"}, Mode: jenkinstest.Exclusive}))
	must(t, jenkins.AddNode(jenkinstest.NodeSpec{Name: "off", Labels: []string{"linux"}}))
	must(t, jenkins.SetNodeOffline("off", true, "maintenance"))
	must(t, jenkins.AddNode(jenkinstest.NodeSpec{Name: "gone", Labels: []string{"linux"}, Disconnected: true}))
	for _, j := range []jenkinstest.JobSpec{
		{Name: "lemon", Label: "linux"},
		{Name: "bogus", Label: "bogus"},
		{Name: "plain"},
		{Name: "off-job", Label: "linux", Disabled: true},
		{Name: "both", Label: "linux && gcc"},
		{Name: "either", Label: "ubuntu1 || excl"},
		{Name: "notlinux", Label: "!linux"},
		{Name: "folder/inner", Label: "linux"},
		{Name: "with space"},
	} {
		must(t, jenkins.AddJob(j))
	}
	// allow_unpinned: the plugin's rules as they were, label functions
	// for projects the bridge cannot pin included.
	rig := startBridgeRig(t, nil, rigMaster{name: "jenkins01", emu: jenkins, extra: "    allow_unpinned: true\n"})
	rig.waitRegistered("build:either:excl", 1)
	waitPolls(t, jenkins, 1)

	want := map[string][]string{
		"ubuntu1_exec-0": {"build:both", "build:both:gcc", "build:both:linux", "build:either", "build:either:ubuntu1",
			"build:inner", "build:inner:linux", "build:lemon", "build:lemon:linux", "build:plain"},
		"excl_exec-0":       {"build:either", "build:either:excl", "build:inner", "build:inner:linux", "build:lemon", "build:lemon:linux"},
		"off_exec-0":        {},
		"gone_exec-0":       {},
		"jenkins01_exec-0":  {"build:notlinux", "build:plain"},
		"jenkins01_manager": {"set_description:jenkins01", "stop:jenkins01"},
	}
	got := rig.registrations()
	for id, fns := range want {
		if !reflect.DeepEqual(got[id], fns) {
			t.Errorf("%s registers %q, want %q", id, got[id], fns)
		}
	}
	for _, fns := range got {
		for _, fn := range fns {
			if strings.ContainsAny(fn, " \t") {
				t.Errorf("a function name with whitespace was registered: %q", fn)
			}
		}
	}

	// Changes follow within a poll: a disabled project goes, an offline
	// node drops everything, more executors mean more workers.
	must(t, jenkins.SetJobDisabled("lemon", true))
	must(t, jenkins.SetNodeOffline("excl", true, "bye"))
	must(t, jenkins.SetNodeExecutors("ubuntu1", 2))
	must(t, jenkins.SetNodeLabels("ubuntu1", "ubuntu", "linux"))
	rig.waitRegistered("build:plain", 3) // ubuntu1 ×2 and the built-in node
	waitPolls(t, jenkins, 1)
	got = rig.registrations()
	wantUbuntu := []string{"build:either", "build:either:ubuntu1", "build:inner", "build:inner:linux", "build:plain"}
	for _, id := range []string{"ubuntu1_exec-0", "ubuntu1_exec-1"} {
		if !reflect.DeepEqual(got[id], wantUbuntu) {
			t.Errorf("after changes %s registers %q, want %q", id, got[id], wantUbuntu)
		}
	}
	if len(got["excl_exec-0"]) != 0 {
		t.Errorf("offline node still registers %q", got["excl_exec-0"])
	}
}
