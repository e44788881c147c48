package bridge

import (
	"encoding/json"
	"strings"
)

// Pipeline (WorkflowJob) projects. Upstream's plugin (0.3 and later,
// GearmanProject) registers them like any project whose label is
// WorkflowJob.getAssignedLabel(), the Jenkins self label: so only the
// built-in node's executor workers register them, as build:<name> and
// build:<name>:<self label> ("built-in", or "master" before the rename).
// Jenkins runs a Pipeline build as a flyweight task on a one-off executor
// of the built-in node: it takes no executor of any node (its node { }
// blocks queue separately, where Jenkins' own labels put them), so the
// gate does not count it against the built-in node's executors, and no
// node parameter applies.

func isPipeline(class string) bool { return strings.Contains(class, "WorkflowJob") }

// pipelineFunctions is what an executor worker of node n registers for the
// Pipeline project p: nothing unless n is the built-in node.
func pipelineFunctions(p *project, n *nodeInfo) []string {
	if n.name != "" {
		return nil
	}
	fns := []string{"build:" + p.name}
	if n.selfLabel != "" && !strings.ContainsAny(n.selfLabel, " \t") {
		fns = append(fns, "build:"+p.name+":"+n.selfLabel)
	}
	return fns
}

// flyweight makes the gate stop counting c as an executor of its node.
func (g *gate) flyweight(c *claim) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.flyweight = true
	g.notify()
}

// pipelineJob reports whether the job is for a Pipeline project of the
// worker's master.
func (r *buildRun) pipelineJob() bool {
	p := r.m.projectByName(functionProject(r.job.function))
	return p != nil && p.pipeline
}

// functionProject is the project name in build:<project>[:<label>].
func functionProject(fn string) string {
	name := strings.TrimPrefix(fn, "build:")
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	return name
}

// pipelineData is WORK_DATA/WORK_COMPLETE for a Pipeline build: as
// upstream, without node_name and node_labels (a WorkflowRun is built on
// no node; Jenkins reports no builtOn for it).
type pipelineData struct {
	Name    string `json:"name"`
	Number  int    `json:"number"`
	Manager string `json:"manager"`
	Worker  string `json:"worker"`
	URL     string `json:"url"`
	Result  string `json:"result,omitempty"`
}

// marshalData encodes the build's JSON for Zuul.
func (r *buildRun) marshalData(data buildData) ([]byte, error) {
	if r.proj != nil && r.proj.pipeline {
		return json.Marshal(pipelineData{Name: data.Name, Number: data.Number, Manager: data.Manager,
			Worker: data.Worker, URL: data.URL, Result: data.Result})
	}
	return json.Marshal(data)
}
