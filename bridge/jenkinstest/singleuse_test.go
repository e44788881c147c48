package jenkinstest_test

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
)

// A native build (a Jenkins user's, not the bridge's) that waits for a
// busy node starts there as soon as an executor is free, unless the node
// is temporarily offline: then it waits until the node is back online.
// The single-use tests of the bridge depend on both halves.
func TestSingleUse_NativeBuildWaitsForTheNodeAndHonoursTemporarilyOffline(t *testing.T) {
	for _, takeOffline := range []bool{false, true} {
		e := jenkinstest.New(t)
		mustNode(t, e, jenkinstest.NodeSpec{Name: "n1", Executors: 1})
		mustJob(t, e, jenkinstest.JobSpec{Name: "gearman", Concurrent: true, Params: []jenkinstest.ParamSpec{{Name: "A"}}})
		mustJob(t, e, jenkinstest.JobSpec{Name: "native", Label: "n1"})
		if err := e.HoldBuilds("gearman"); err != nil {
			t.Fatal(err)
		}
		c := newClient(t, e.URL, "", "")
		_, first := c.trigger("/job/gearman/", url.Values{"A": {"1"}, "delay": {"0sec"}})
		c.pollItem(first)
		id, err := e.Trigger("native", nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		item := "/queue/item/" + strconv.Itoa(id) + "/"
		eventually(t, "the native build waiting for n1", func() bool {
			return str(c.json(item + "api/json")["why"]) == "Waiting for next available executor on ‘n1’"
		})
		if takeOffline {
			if r := c.post("/computer/n1/changeOfflineCause", url.Values{"offlineMessage": {"single use"}}); r.status != 302 {
				t.Fatalf("changeOfflineCause: %d", r.status)
			}
		}
		if _, err := e.Release("gearman"); err != nil {
			t.Fatal(err)
		}
		if !takeOffline {
			if exe := c.pollItem(item)["executable"].(map[string]any); exe == nil {
				t.Fatal("no executable")
			}
			continue
		}
		eventually(t, "the native build waiting for the offline node", func() bool {
			return str(c.json(item + "api/json")["why"]) == "‘n1’ is offline"
		})
		if b := e.Builds("native"); len(b) != 0 {
			t.Fatalf("a build started on a temporarily offline node: %+v", b)
		}
		if err := e.SetNodeOffline("n1", false, ""); err != nil {
			t.Fatal(err)
		}
		c.pollItem(item)
	}
}
