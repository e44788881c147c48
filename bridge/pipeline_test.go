package bridge

import (
	"slices"
	"strings"
	"testing"
)

// A Pipeline build takes no executor in Jenkins: once the gate knows a
// claim is one, it stops counting it against the node.
func TestGateDoesNotCountPipelineBuilds(t *testing.T) {
	g := newGate()
	g.update(false, node(1))
	if !g.tryReserve() {
		t.Fatal("one idle executor")
	}
	c := g.startBuild()
	if g.tryReserve() {
		t.Fatal("the claim counts until it is known to be a Pipeline build")
	}
	g.flyweight(c)
	g.started(c, "http://j/job/pipe/1/")
	g.update(false, node(1)) // Jenkins still shows the executor idle
	if got := g.free(); got != 1 {
		t.Fatalf("free = %d with a Pipeline build running, want 1", got)
	}
	g.finished(c)
	g.update(false, node(1))
	if got := g.free(); got != 1 || len(g.builds) != 0 {
		t.Fatalf("free = %d with %d claims after the build", got, len(g.builds))
	}
}

// Upstream registers a WorkflowJob with its label, the Jenkins self
// label: build:P and build:P:<self label>, on the built-in node only,
// whatever its mode.
func TestPipelineFunctions(t *testing.T) {
	s := &snapshot{projects: map[string]*project{"pipe": {name: "pipe", fullName: "f/pipe", pipeline: true}}}
	builtIn := &nodeInfo{name: "", selfLabel: "built-in", mode: "EXCLUSIVE", online: true, labels: map[string]bool{"built-in": true}}
	agent := &nodeInfo{name: "a", selfLabel: "a", mode: "NORMAL", online: true, labels: map[string]bool{"a": true}}
	if got := s.functions(builtIn); !slices.Equal(got, []string{"build:pipe", "build:pipe:built-in"}) {
		t.Errorf("built-in node: %v", got)
	}
	if got := s.functions(agent); len(got) != 0 {
		t.Errorf("agent: %v", got)
	}
	builtIn.online = false
	if got := s.functions(builtIn); len(got) != 0 {
		t.Errorf("offline built-in node: %v", got)
	}
}

// Its WORK_DATA has no node_name or node_labels, as upstream's.
func TestPipelineDataHasNoNode(t *testing.T) {
	r := &buildRun{proj: &project{name: "pipe", pipeline: true}}
	b, err := r.marshalData(buildData{Name: "pipe", Number: 3, Manager: "m", Worker: "m_exec-0", URL: "u", NodeName: "", NodeLabels: []string{"built-in"}})
	if err != nil || strings.Contains(string(b), "node_") || !strings.Contains(string(b), `"number":3`) {
		t.Fatalf("%s %v", b, err)
	}
}
