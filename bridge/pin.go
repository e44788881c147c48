package bridge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gearbridge/gearbridge/bridge/label"
)

// How a master's builds are queued (MasterConfig.Trigger).
const (
	triggerREST   = "rest"   // buildWithParameters
	triggerScript = "script" // POST /scriptText with triggerScriptTemplate
)

// The NodeLabel Parameter plugin's definitions: a value of either pins
// the build (a node name, or a label expression).
const (
	nodeLabelParamPackage = "org.jvnet.jenkins.plugins.nodelabelparameter."
	nodeParamClass        = nodeLabelParamPackage + "NodeParameterDefinition"
	labelParamClass       = nodeLabelParamPackage + "LabelParameterDefinition"
)

// uniqueParam is the parameter in which Zuul sends the job's unique ID;
// it keeps Jenkins from merging two jobs' identical requests.
const uniqueParam = "ZUUL_UUID"

// pinState is a master's bookkeeping for pinning and merged requests.
type pinState struct {
	mu     sync.Mutex
	warned map[string]bool // "kind\x00project[\x00name]" already logged
	// following maps the queue items our jobs follow to the job's handle:
	// one Jenkins build is never reported to two Gearman jobs.
	following map[int64]string
}

// warnOnce logs msg at WARNING the first time key is seen.
func (m *master) warnOnce(key, msg string, args ...any) {
	m.pin.mu.Lock()
	if m.pin.warned == nil {
		m.pin.warned = map[string]bool{}
	}
	seen := m.pin.warned[key]
	m.pin.warned[key] = true
	m.pin.mu.Unlock()
	if !seen {
		m.log.Warn(msg, args...)
	}
}

// pinParam returns the parameter that pins p's builds to a node, if p
// has one: node_parameter when p defines it, else the first NodeLabel
// Parameter plugin definition; isLabel is true for a label expression.
func (m *master) pinParam(p *project) (name string, isLabel bool) {
	if np := m.cfg.NodeParameter; np != "" && p.hasParam(np) {
		return np, p.paramClasses[np] == labelParamClass
	}
	for _, n := range p.params { // in definition order
		switch p.paramClasses[n] {
		case nodeParamClass:
			return n, false
		case labelParamClass:
			return n, true
		}
	}
	return "", false
}

// pinValue is the value of the pin parameter for node.
func (m *master) pinValue(node string, isLabel bool) string {
	v := m.pinName(node)
	if isLabel {
		return labelAtomExpr(v)
	}
	return v
}

// labelAtomExpr writes a node's self label as a label expression: quoted
// when it holds characters the label grammar reads as operators, as
// Jenkins' LabelAtom.escape does.
func labelAtomExpr(atom string) string { return label.Atom(atom).String() }

// preparePinning marks the projects whose builds the bridge cannot pin
// (so that functions registers no build:<name>:<label> for them) and logs,
// once per project, why and how to fix it. It runs with m.mu held.
func (m *master) preparePinning(snap *snapshot) {
	for _, p := range snap.projects {
		np, _ := m.pinParam(p)
		// A Pipeline run is flyweight on the built-in node, which is all
		// its functions promise (pipelineFunctions): nothing to pin.
		pinned := np != "" || m.cfg.Trigger == triggerScript || p.pipeline
		p.unpinned = !pinned && !m.cfg.AllowUnpinned
		if p.disabled {
			continue
		}
		if p.unpinned {
			var withheld []string
			for _, a := range p.atoms {
				withheld = append(withheld, "build:"+p.name+":"+a)
			}
			m.warnOnce("unpinned\x00"+p.fullName,
				"cannot pin this project's builds to the worker's node: registering build:<project> only, where Jenkins may run the build on any node its label allows; to fix, give the project a NodeLabel Parameter plugin parameter (or name one with node_parameter), or set trigger: script for this master (needs Overall/RunScripts); allow_unpinned: true registers the label functions anyway",
				"project", p.fullName, "function", "build:"+p.name, "withheld", withheld)
		}
		if m.cfg.Trigger == triggerREST && !p.hasParam(uniqueParam) {
			m.warnOnce("unique\x00"+p.fullName,
				"project has no "+uniqueParam+" parameter: Jenkins merges identical requests into one build, and the bridge then fails the later job (WORK_EXCEPTION, Zuul runs it again); define a "+uniqueParam+" string parameter to keep Zuul's jobs apart",
				"project", p.fullName)
		}
	}
}

// dropUndefined notes the job's parameters that a rest trigger cannot
// pass because the project does not define them: Jenkins would drop them
// anyway. Each name is logged once per project; all are counted.
func (r *buildRun) dropUndefined(form map[string][]string) {
	var dropped []string
	for name := range r.params {
		if _, ok := form[name]; !ok {
			dropped = append(dropped, name)
		}
	}
	if len(dropped) == 0 {
		return
	}
	slices.Sort(dropped)
	m := r.m
	m.metrics.paramsDropped.WithLabelValues(m.cfg.Name, r.proj.fullName).Add(float64(len(dropped)))
	for _, name := range dropped {
		m.warnOnce("dropped\x00"+r.proj.fullName+"\x00"+name,
			"job parameter dropped: the project does not define it, and Jenkins passes only defined parameters to a build triggered over REST (define it, or set trigger: script, or see hudson.model.ParametersAction.keepUndefinedParameters / safeParameters)",
			"project", r.proj.fullName, "parameter", name)
	}
}

// claimItem makes this job the only one to follow queue item id. A
// request Jenkins merged into an item (303, or an item another of our
// jobs follows) fails the job at once: its build belongs to another
// request, and Zuul runs the job again.
func (r *buildRun) claimItem(id int64, merged bool) error {
	m := r.m
	m.pin.mu.Lock()
	if m.pin.following == nil {
		m.pin.following = map[int64]string{}
	}
	other, taken := m.pin.following[id]
	if !taken && !merged {
		m.pin.following[id] = r.job.handle
		r.claimedItem, r.claimedOn = id, m
	}
	m.pin.mu.Unlock()
	switch {
	case taken:
		return failf("Jenkins merged this job's request for %s into queue item %d, which job %s already follows; one build is never reported to two jobs (give the project a %s parameter to keep requests apart)", r.proj.fullName, id, other, uniqueParam)
	case merged:
		return failf("Jenkins merged this job's request for %s into an identical queued request (queue item %d); one build is never reported to two jobs (give the project a %s parameter to keep requests apart)", r.proj.fullName, id, uniqueParam)
	}
	return nil
}

// releaseItem ends the job's claim on its queue item.
func (r *buildRun) releaseItem() {
	m := r.claimedOn
	if m == nil {
		return
	}
	m.pin.mu.Lock()
	if m.pin.following[r.claimedItem] == r.job.handle {
		delete(m.pin.following, r.claimedItem)
	}
	m.pin.mu.Unlock()
}

// triggerScriptTemplate queues a build pinned to one node through the
// script console, as the plugin did from inside Jenkins: a core
// LabelAssignmentAction for the node's self label and a ParametersAction
// with every key of the job (declared safe, so that Jenkins keeps the
// undefined ones). %s is the request as base64 JSON, so no value is ever
// spliced into Groovy source. It prints the queue item's id, and whether
// Jenkins merged the request into an existing item. The emulator
// (jenkinstest.TriggerScript) accepts exactly this text.
const triggerScriptTemplate = `import groovy.json.JsonSlurper
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

// triggerScriptRequest is the JSON the script decodes.
type triggerScriptRequest struct {
	Project    string            `json:"project"`
	Node       string            `json:"node"` // "" for the built-in node
	Parameters map[string]string `json:"parameters"`
}

func renderTriggerScript(req triggerScriptRequest) (string, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("encode the trigger request: %w", err)
	}
	return strings.Replace(triggerScriptTemplate, "%s", base64.StdEncoding.EncodeToString(b), 1), nil
}

var scriptQueueItem = regexp.MustCompile(`(?m)^gearbridge-queue-item: (\d+) (created|existing)\s*$`)

// parseScriptOutput reads the trigger script's output: the queue item and
// whether Jenkins merged the request into an existing one.
func parseScriptOutput(out string) (id int64, merged bool, err error) {
	if m := scriptQueueItem.FindStringSubmatch(out); m != nil {
		id, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("bad queue item %q in the script output", m[1])
		}
		return id, m[2] == "existing", nil
	}
	for _, line := range strings.Split(out, "\n") {
		if msg, ok := strings.CutPrefix(strings.TrimSpace(line), "gearbridge-error: "); ok {
			return 0, false, fmt.Errorf("%s", msg)
		}
	}
	out = strings.TrimSpace(out)
	if len(out) > 300 {
		out = out[:300] + "..."
	}
	return 0, false, fmt.Errorf("the script console did not run the trigger script: %q", out)
}

// triggerByScript queues the build through the script console: pinned to
// the worker's node, with every parameter of the job.
func (r *buildRun) triggerByScript(ctx context.Context) error {
	params := maps.Clone(r.params)
	if np, isLabel := r.m.pinParam(r.proj); np != "" {
		// The pin action decides; the parameter says the same, for the build.
		params[np] = r.m.pinValue(r.w.node, isLabel)
	}
	script, err := renderTriggerScript(triggerScriptRequest{Project: r.proj.fullName, Node: r.w.node, Parameters: params})
	if err != nil {
		return failf("%v", err)
	}
	form := map[string][]string{"script": {script}}
	var body []byte
	done, err := r.postTrigger(ctx, params, func() (err error) {
		_, body, err = r.m.jc.do(ctx, http.MethodPost, "scriptText", nil, form)
		return err
	})
	switch {
	case done:
		return err
	case statusOf(err) == http.StatusForbidden:
		return failf("trigger: script on Jenkins master %s: the script console refused user %q (HTTP 403); the user needs Overall/RunScripts, or set trigger: rest: %v", r.m.cfg.Name, r.m.cfg.User, err)
	case err != nil:
		return failf("could not trigger %s on %s through the script console: %v", r.proj.fullName, r.m.cfg.Name, err)
	}
	id, merged, err := parseScriptOutput(string(body))
	if err != nil {
		return failf("trigger script for %s on %s: %v", r.proj.fullName, r.m.cfg.Name, err)
	}
	if err := r.claimItem(id, merged); err != nil {
		return err
	}
	r.follows(buildRef{Master: r.m.cfg.Name, Project: r.proj.fullName, QueueID: id})
	return nil
}
