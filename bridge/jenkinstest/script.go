package jenkinstest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/gearbridge/gearbridge/bridge/label"
)

// TriggerScript is the one Groovy script the emulator's script console
// (POST /scriptText) runs: the gearbridge bridge's `trigger: script`. It
// is a copy of the bridge's, kept here on purpose: if the bridge sends
// anything else, the emulator does not run it and a test fails. %s is the
// request, {"project", "node", "parameters"} as base64 JSON, so that no
// value is ever spliced into Groovy source.
const TriggerScript = `import groovy.json.JsonSlurper
import hudson.model.*
import hudson.model.labels.LabelAssignmentAction
import hudson.model.queue.SubTask
import jenkins.model.Jenkins

// A plain class with a String field: Jenkins saves queued items (and
// their actions) in queue.xml.
class GearbridgeNodePin implements LabelAssignmentAction {
  String labelName
  Label getAssignedLabel(SubTask task) { return Jenkins.getInstance().getLabelAtom(labelName) }
  String getIconFileName() { return null }
  String getDisplayName() { return 'gearbridge: pinned to ' + labelName }
  String getUrlName() { return null }
}

def req = new JsonSlurper().parseText(new String('%s'.decodeBase64(), 'UTF-8'))
def jenkins = Jenkins.getInstance()
def job = jenkins.getItemByFullName(req.project, Job)
if (job == null || !(job instanceof Queue.Task)) {
  println('gearbridge-error: no buildable project ' + req.project)
  return
}
if (!job.isBuildable()) {
  println('gearbridge-error: project ' + req.project + ' is disabled')
  return
}
def node = req.node == '' ? jenkins : jenkins.getNode(req.node)
if (node == null) {
  println('gearbridge-error: no node ' + req.node)
  return
}
def values = []
def defs = job.getProperty(ParametersDefinitionProperty)
if (defs != null) {
  defs.getParameterDefinitions().each { d ->
    if (!req.parameters.containsKey(d.getName())) {
      def v = d.getDefaultParameterValue()
      if (v != null) {
        values.add(v)
      }
    }
  }
}
req.parameters.each { k, v -> values.add(new StringParameterValue(k, v)) }
def pin = new GearbridgeNodePin(labelName: node.getSelfLabel().getName())
def actions = [pin, new ParametersAction(values, req.parameters.keySet()), new CauseAction(new Cause.UserIdCause())]
def result = jenkins.getQueue().schedule2(job, 0, actions)
if (result.getItem() == null) {
  println('gearbridge-error: Jenkins refused to queue ' + req.project)
  return
}
println('gearbridge-queue-item: ' + result.getItem().getId() + (result.isCreated() ? ' created' : ' existing'))
`

var base64Text = regexp.MustCompile(`^[A-Za-z0-9+/]*={0,2}$`)

// scriptRequest is what the trigger script reads from its base64 JSON.
type scriptRequest struct {
	Project    string            `json:"project"`
	Node       string            `json:"node"`
	Parameters map[string]string `json:"parameters"`
}

// parseTriggerScript returns the request inside script, or an error when
// script is not the trigger script.
func parseTriggerScript(script string) (*scriptRequest, error) {
	script = strings.ReplaceAll(script, "\r\n", "\n")
	prefix, suffix, _ := strings.Cut(TriggerScript, "%s")
	if !strings.HasPrefix(script, prefix) || !strings.HasSuffix(script, suffix) || len(script) < len(prefix)+len(suffix) {
		return nil, fmt.Errorf("not gearbridge's trigger script")
	}
	blob := script[len(prefix) : len(script)-len(suffix)]
	if !base64Text.MatchString(blob) {
		return nil, fmt.Errorf("the request is not base64")
	}
	raw, err := base64.StdEncoding.DecodeString(blob)
	if err != nil {
		return nil, fmt.Errorf("the request is not base64: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var req scriptRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("the request is not the expected JSON: %w", err)
	}
	if req.Parameters == nil {
		return nil, fmt.Errorf("the request has no parameters object")
	}
	return &req, nil
}

// scriptText is the script console. It does not run Groovy: it recognises
// the trigger script and does what the script would do; anything else
// fails as a script that throws does in Jenkins (200 and the stack trace).
func (e *Emulator) scriptText(r *http.Request, pr *principal) *response {
	if r.Method != http.MethodPost {
		return requirePost()
	}
	req, err := parseTriggerScript(r.FormValue("script"))
	if err != nil {
		return text(http.StatusOK, "groovy.lang.GroovyRuntimeException: jenkinstest runs only gearbridge's trigger script: "+err.Error()+"\n\tat Script1.run(Script1.groovy:1)")
	}
	j, ok := e.jobs[req.Project]
	if !ok || j.folder {
		return text(http.StatusOK, "gearbridge-error: no buildable project "+req.Project)
	}
	if j.spec.Disabled {
		return text(http.StatusOK, "gearbridge-error: project "+req.Project+" is disabled")
	}
	n, ok := e.nodes[req.Node]
	if !ok {
		return text(http.StatusOK, "gearbridge-error: no node "+req.Node)
	}
	// Defaults for the defined parameters the request lacks, then every
	// key of the request as a StringParameterValue, as the script builds them.
	var pvs []paramValue
	for _, d := range j.spec.Params {
		if _, given := req.Parameters[d.Name]; given {
			continue
		}
		def, _ := resolveParams(&job{spec: JobSpec{Params: []ParamSpec{d}}}, func(string) (string, bool) { return "", false })
		pvs = append(pvs, def...)
	}
	for _, k := range sortedKeys(req.Parameters) {
		pvs = append(pvs, paramValue{name: k, typ: StringParam, value: req.Parameters[k]})
	}
	// A LabelAssignmentAction is no QueueAction: Jenkins merges the request
	// into an equal item whatever its pin, as it does here.
	it, merged := e.scheduleLocked(j, pvs, 0, pr.name)
	if !merged {
		it.pin = label.Atom(e.selfLabel(n))
	}
	e.maintainSoon()
	state := "created"
	if merged {
		state = "existing"
	}
	return text(http.StatusOK, fmt.Sprintf("gearbridge-queue-item: %d %s", it.id, state))
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
