package jenkinstest_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
)

// builtOnOf waits for a queue item to start and returns its build's node.
func builtOnOf(t *testing.T, c *client, item string) string {
	t.Helper()
	exe := c.pollItem(item)["executable"].(map[string]any)
	return str(c.json(relPath(t, str(exe["url"])) + "api/json?tree=builtOn")["builtOn"])
}

// An unpinned build goes where Jenkins' consistent hash of the job puts
// it, not to the first idle node: again and again to the same node while
// it is idle, to the next one on the ring when it is busy.
func TestConsistentHashPlacement(t *testing.T) {
	e := jenkinstest.New(t)
	for i := 1; i <= 4; i++ {
		mustNode(t, e, jenkinstest.NodeSpec{Name: fmt.Sprintf("n%d", i), Labels: []string{"linux"}})
	}
	mustNode(t, e, jenkinstest.NodeSpec{Name: "w1", Labels: []string{"windows"}})
	// A job whose hash does not prefer the first node by name.
	var name string
	var order []string
	for i := 0; ; i++ {
		name = fmt.Sprintf("job%d", i)
		mustJob(t, e, jenkinstest.JobSpec{Name: name, Label: "linux", Concurrent: true, Params: []jenkinstest.ParamSpec{{Name: "U"}}})
		var err error
		if order, err = e.PlacementOrder(name); err != nil {
			t.Fatal(err)
		}
		if order[0] != "n1" {
			break
		}
	}
	if len(order) != 4 || strings.Contains(strings.Join(order, ","), "w1") {
		t.Fatalf("placement order %q: want the four linux nodes", order)
	}
	c := newClient(t, e.URL, "", "")
	for u := range 2 {
		_, item := c.trigger("/job/"+name+"/", url.Values{"U": {fmt.Sprint(u)}, "delay": {"0sec"}})
		if got := builtOnOf(t, c, item); got != order[0] {
			t.Fatalf("build %d ran on %q, want %q (placement %q)", u, got, order[0], order)
		}
	}
	e.HoldBuilds("")
	for i, want := range order {
		_, item := c.trigger("/job/"+name+"/", url.Values{"U": {"held" + fmt.Sprint(i)}, "delay": {"0sec"}})
		if got := builtOnOf(t, c, item); got != want {
			t.Fatalf("held build %d ran on %q, want %q (placement %q)", i, got, want, order)
		}
	}
}

func triggerScript(t *testing.T, req any) string {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(jenkinstest.TriggerScript, "%s", base64.StdEncoding.EncodeToString(b), 1)
}

// The script console runs only the bridge's trigger script: it queues the
// build pinned to the node with every parameter (undefined ones too,
// defaults for the missing ones) and prints the queue item; any other
// script fails as a broken script does in Jenkins.
func TestScriptConsoleTrigger(t *testing.T) {
	e := jenkinstest.New(t)
	token := e.AddUser("gb", "pw")
	for _, n := range []string{"a", "b", "c"} {
		mustNode(t, e, jenkinstest.NodeSpec{Name: n, Labels: []string{"pool"}})
	}
	mustJob(t, e, jenkinstest.JobSpec{Name: "f/p", Label: "pool", Concurrent: true,
		Params: []jenkinstest.ParamSpec{{Name: "DEF", Default: "d"}, {Name: "U"}}})
	e.HoldBuilds("")
	c := newClient(t, e.URL, "gb", token)
	run := func(script string) reply {
		t.Helper()
		return c.post("/scriptText", url.Values{"script": {script}})
	}
	order, _ := e.PlacementOrder("f/p")
	target := order[len(order)-1] // where the hash would never go first
	r := run(triggerScript(t, map[string]any{"project": "f/p", "node": target,
		"parameters": map[string]string{"U": "1", "UNDEFINED": "x'\"${y}\n"}}))
	var id int
	if _, err := fmt.Sscanf(r.body, "gearbridge-queue-item: %d created\n", &id); r.status != http.StatusOK || err != nil {
		t.Fatalf("trigger script: %d %q", r.status, r.body)
	}
	if got := builtOnOf(t, c, fmt.Sprintf("/queue/item/%d/", id)); got != target {
		t.Fatalf("pinned build ran on %q, want %q", got, target)
	}
	b := e.Builds("f/p")[0]
	if b.Params["DEF"] != "d" || b.Params["U"] != "1" || b.Params["UNDEFINED"] != "x'\"${y}\n" || b.User != "gb" {
		t.Fatalf("build %+v", b)
	}

	// An equal request while the first is queued merges into it, whatever
	// its pin: a LabelAssignmentAction is no QueueAction.
	e.SetNodeOffline("c", true, "")
	e.SetNodeOffline("a", true, "")
	e.SetNodeOffline("b", true, "")
	req := map[string]any{"project": "f/p", "node": "a", "parameters": map[string]string{"U": "2"}}
	r1, r2 := run(triggerScript(t, req)), run(triggerScript(t, map[string]any{"project": "f/p", "node": "b", "parameters": map[string]string{"U": "2"}}))
	if !strings.HasSuffix(r1.body, " created\n") || strings.TrimSuffix(r2.body, " existing\n") != strings.TrimSuffix(r1.body, " created\n") {
		t.Fatalf("equal requests: %q then %q", r1.body, r2.body)
	}

	for what, bad := range map[string]string{
		"another script":  `println(Jenkins.instance.queue.items)`,
		"spliced value":   strings.Replace(jenkinstest.TriggerScript, "%s", "eyJwcm9qZWN0IjoiZi9wIn0=' + System.exit(1) + '", 1),
		"unknown field":   triggerScript(t, map[string]any{"project": "f/p", "node": "a", "parameters": map[string]string{}, "evil": 1}),
		"edited template": strings.Replace(triggerScript(t, req), "schedule2(job, 0", "schedule2(job, 5", 1),
	} {
		before := len(e.QueueHistory())
		if r := run(bad); r.status != http.StatusOK || !strings.Contains(r.body, "GroovyRuntimeException") {
			t.Errorf("%s: %d %q, want a failed script", what, r.status, r.body)
		}
		if len(e.QueueHistory()) != before {
			t.Errorf("%s queued a build", what)
		}
	}
	for what, req := range map[string]any{
		"unknown project": map[string]any{"project": "nope", "node": "a", "parameters": map[string]string{}},
		"unknown node":    map[string]any{"project": "f/p", "node": "zz", "parameters": map[string]string{}},
	} {
		if r := run(triggerScript(t, req)); !strings.HasPrefix(r.body, "gearbridge-error: ") {
			t.Errorf("%s: %q", what, r.body)
		}
	}
	if r := c.get("/scriptText"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /scriptText: %d", r.status)
	}
}

// Permissions: everything is allowed until the test restricts a user;
// then each POST needs its permission and gets Jenkins' 403 without it.
func TestPermissions(t *testing.T) {
	e := jenkinstest.New(t)
	token := e.AddUser("gb", "pw")
	mustNode(t, e, jenkinstest.NodeSpec{Name: "n1"})
	mustJob(t, e, jenkinstest.JobSpec{Name: "p", Concurrent: true, Params: []jenkinstest.ParamSpec{{Name: "U"}}})
	e.HoldBuilds("")
	c := newClient(t, e.URL, "gb", token)
	_, item := c.trigger("/job/p/", url.Values{"U": {"1"}, "delay": {"0sec"}})
	c.pollItem(item)

	script := triggerScript(t, map[string]any{"project": "p", "node": "n1", "parameters": map[string]string{"U": "2"}})
	posts := map[jenkinstest.Permission]func() reply{
		jenkinstest.PermJobBuild: func() reply {
			return c.post("/job/p/buildWithParameters", url.Values{"U": {"3"}, "delay": {"0sec"}})
		},
		jenkinstest.PermJobCancel:          func() reply { return c.post("/job/p/1/stop", nil) },
		jenkinstest.PermRunUpdate:          func() reply { return c.post("/job/p/1/submitDescription", url.Values{"description": {"d"}}) },
		jenkinstest.PermComputerDisconnect: func() reply { return c.post("/computer/n1/changeOfflineCause", url.Values{"offlineMessage": {"m"}}) },
		jenkinstest.PermRunScripts:         func() reply { return c.post("/scriptText", url.Values{"script": {script}}) },
	}
	for perm, post := range posts {
		e.DenyPermission("gb", perm)
		r := post()
		if want := "gb is missing the " + string(perm) + " permission"; r.status != http.StatusForbidden || !strings.Contains(r.body, want) {
			t.Errorf("without %s: %d %q, want 403 %q", perm, r.status, r.body, want)
		}
		e.AllowAll("gb")
	}
	// Granted only Job/Build: builds, but may not use the script console.
	e.GrantPermissions("gb", jenkinstest.PermJobBuild)
	if r := posts[jenkinstest.PermJobBuild](); r.status != http.StatusCreated {
		t.Errorf("with Job/Build: %d %q", r.status, r.body)
	}
	if r := posts[jenkinstest.PermRunScripts](); r.status != http.StatusForbidden {
		t.Errorf("script console with only Job/Build: %d %q", r.status, r.body)
	}
	e.GrantPermissions("gb", jenkinstest.PermRunScripts)
	if r := posts[jenkinstest.PermRunScripts](); r.status != http.StatusOK || !strings.HasPrefix(r.body, "gearbridge-queue-item: ") {
		t.Errorf("script console after the grant: %d %q", r.status, r.body)
	}
	// Reading needs nothing more.
	c.json("/job/p/1/api/json")
}
