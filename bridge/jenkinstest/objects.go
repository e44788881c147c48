package jenkinstest

import (
	"fmt"
	"strings"

	"github.com/gearbridge/gearbridge/bridge/label"
)

// This file builds the exported beans, with the @Exported visibilities
// that decide what depth=0 shows: nested items show name/url/color,
// nested builds number/url, nested nodes nodeName, executors nothing.

const (
	classFreeStyle   = "hudson.model.FreeStyleProject"
	classFolder      = "com.cloudbees.hudson.plugins.folder.Folder"
	classBuild       = "hudson.model.FreeStyleBuild"
	classMasterComp  = "hudson.model.Hudson$MasterComputer"
	classSlaveComp   = "hudson.slaves.SlaveComputer"
	classHudson      = "hudson.model.Hudson"
	classDumbSlave   = "hudson.slaves.DumbSlave"
	classLabelAtom   = "hudson.model.labels.LabelAtom"
	classExecutor    = "hudson.model.Executor"
	nodeLabelPackage = "org.jvnet.jenkins.plugins.nodelabelparameter."
)

func (e *Emulator) labelObjs(names []string) []*object {
	out := make([]*object, 0, len(names))
	for _, n := range names {
		out = append(out, obj(classLabelAtom, pv("name", 2, n)))
	}
	return out
}

func (e *Emulator) rootObj() *object {
	b := e.nodes[""]
	o := obj(classHudson)
	if e.prof.labelExprJSON {
		o.add(p("assignedLabels", e.labelObjs(e.assignedLabels(b))))
	}
	o.add(
		p("mode", string(b.mode)),
		p("nodeDescription", "the Jenkins controller's built-in node"),
		pv("nodeName", 999, ""),
		p("numExecutors", b.numExecutors),
		p("description", nil),
		p("jobs", lazy(func() any { return e.itemList(e.root) })),
		p("overallLoad", obj("hudson.model.OverallLoadStatistics")),
		p("primaryView", obj("hudson.model.AllView", pv("name", 2, "all"), pv("url", 2, e.rootURL))),
		p("quietDownReason", nil),
		p("quietingDown", e.quieting),
		p("slaveAgentPort", -1),
		p("unlabeledLoad", obj("jenkins.model.UnlabeledLoadStatistics")),
		p("url", e.rootURL),
		p("useCrumbs", e.crumbsOn()),
		p("useSecurity", e.securityOn()),
		p("views", objs(obj("hudson.model.AllView", pv("name", 2, "all"), pv("url", 2, e.rootURL)))),
	)
	return o
}

func (e *Emulator) itemList(f *job) []*object {
	kids := f.sortedChildren()
	out := make([]*object, 0, len(kids))
	for _, c := range kids {
		out = append(out, e.itemObj(c))
	}
	return out
}

func (e *Emulator) itemObj(j *job) *object {
	if j.folder {
		return e.folderObj(j)
	}
	return e.jobObj(j)
}

func (e *Emulator) folderObj(f *job) *object {
	return obj(classFolder,
		p("actions", []*object{}),
		p("description", nil),
		p("displayName", f.name),
		p("displayNameOrNull", nil),
		p("fullDisplayName", strings.ReplaceAll(f.fullName(), "/", " » ")),
		p("fullName", f.fullName()),
		pv("name", 999, f.name),
		pv("url", 999, e.rootURL+f.path()),
		p("healthReport", []*object{}),
		p("jobs", lazy(func() any { return e.itemList(f) })),
	)
}

func (j *job) color() string {
	if j.spec.Disabled {
		return "disabled"
	}
	c := "notbuilt"
	for i := len(j.builds) - 1; i >= 0; i-- {
		if b := j.builds[i]; !b.building {
			c = map[string]string{
				ResultSuccess: "blue", ResultUnstable: "yellow", ResultFailure: "red",
				ResultAborted: "aborted", ResultNotBuilt: "notbuilt",
			}[b.result]
			break
		}
	}
	if j.runningCount > 0 {
		c += "_anime"
	}
	return c
}

func (e *Emulator) jobObj(j *job) *object {
	buildRef := func(b *build) any {
		if b == nil {
			return nil
		}
		return obj(b.class(), pv("number", 2, b.number), pv("url", 2, e.rootURL+b.path()))
	}
	last := func(ok func(*build) bool) lazy {
		return func() any {
			for i := len(j.builds) - 1; i >= 0; i-- {
				if ok(j.builds[i]) {
					return buildRef(j.builds[i])
				}
			}
			return nil
		}
	}
	done := func(b *build) bool { return !b.building }
	o := obj(j.class(),
		p("actions", []*object{}),
		p("description", j.spec.Description),
		p("displayName", j.name),
		p("displayNameOrNull", nil),
		p("fullDisplayName", strings.ReplaceAll(j.fullName(), "/", " » ")),
		p("fullName", j.fullName()),
		pv("name", 999, j.name),
		pv("url", 999, e.rootURL+j.path()),
		p("buildable", !j.spec.Disabled),
		p("builds", lazy(func() any {
			var out []*object
			// Whole builds, as Jenkins exports them: the depth rule leaves
			// number and url, and a tree= may ask for more (queueId, actions).
			for i := len(j.builds) - 1; i >= 0 && len(out) < 100; i-- {
				out = append(out, e.buildObj(j.builds[i]))
			}
			return out
		})),
		pv("color", 2, j.color()),
		p("firstBuild", lazy(func() any {
			if len(j.builds) == 0 {
				return nil
			}
			return buildRef(j.builds[0])
		})),
		p("healthReport", []*object{}),
		p("inQueue", lazy(func() any { return e.queuedItem(j) != nil })),
		p("keepDependencies", false),
		p("lastBuild", last(func(*build) bool { return true })),
		p("lastCompletedBuild", last(done)),
		p("lastFailedBuild", last(func(b *build) bool { return done(b) && b.result == ResultFailure })),
		p("lastStableBuild", last(func(b *build) bool { return done(b) && b.result == ResultSuccess })),
		p("lastSuccessfulBuild", last(func(b *build) bool {
			return done(b) && (b.result == ResultSuccess || b.result == ResultUnstable)
		})),
		p("lastUnstableBuild", last(func(b *build) bool { return done(b) && b.result == ResultUnstable })),
		p("lastUnsuccessfulBuild", last(func(b *build) bool { return done(b) && b.result != ResultSuccess })),
		p("nextBuildNumber", j.next),
		pin("property", e.propertyObjs(j)),
		p("queueItem", lazy(func() any {
			if it := e.queuedItem(j); it != nil {
				return e.queueItemObj(it)
			}
			return nil
		})),
		p("concurrentBuild", j.spec.Concurrent),
	)
	if e.prof.disabledJSON {
		o.add(p("disabled", j.spec.Disabled))
	}
	if j.spec.Pipeline { // a WorkflowJob exports no label, SCM or upstream/downstream
		return o.add(p("resumeBlocked", false))
	}
	o.add(p("downstreamProjects", []*object{}))
	if e.prof.labelExprJSON {
		var le any
		if strings.TrimSpace(j.spec.Label) != "" {
			le = j.spec.Label
		}
		o.add(p("labelExpression", le))
	}
	o.add(p("scm", obj("hudson.scm.NullSCM")), p("upstreamProjects", []*object{}))
	return o
}

func (e *Emulator) queuedItem(j *job) *queueItem {
	for _, it := range e.queue {
		if it.job == j && it.state != stateLeft {
			return it
		}
	}
	return nil
}

func paramClass(t ParamType) (def, val string) {
	switch t {
	case TextParam:
		return "hudson.model.TextParameterDefinition", "hudson.model.TextParameterValue"
	case BooleanParam:
		return "hudson.model.BooleanParameterDefinition", "hudson.model.BooleanParameterValue"
	case ChoiceParam:
		return "hudson.model.ChoiceParameterDefinition", "hudson.model.StringParameterValue"
	case NodeParam:
		return nodeLabelPackage + "NodeParameterDefinition", nodeLabelPackage + "NodeParameterValue"
	case LabelParam:
		return nodeLabelPackage + "LabelParameterDefinition", nodeLabelPackage + "LabelParameterValue"
	}
	return "hudson.model.StringParameterDefinition", "hudson.model.StringParameterValue"
}

func (e *Emulator) propertyObjs(j *job) []*object {
	if !j.parameterized() {
		return []*object{}
	}
	var defs []*object
	for _, d := range j.spec.Params {
		dc, _ := paramClass(d.Type)
		def := d.Default
		if d.Type == ChoiceParam {
			def = d.Choices[0]
		}
		pvl, _ := resolveParams(&job{spec: JobSpec{Params: []ParamSpec{d}}}, func(string) (string, bool) { return def, true })
		o := obj(dc,
			pv("defaultParameterValue", 3, paramValueObj(pvl[0])),
			pv("description", 3, d.Description),
			pv("name", 3, d.Name),
			pv("type", 3, dc[strings.LastIndexByte(dc, '.')+1:]),
		)
		if d.Type == ChoiceParam {
			o.add(pv("choices", 3, append([]string(nil), d.Choices...)))
		}
		defs = append(defs, o)
	}
	return objs(obj("hudson.model.ParametersDefinitionProperty", pv("parameterDefinitions", 2, defs)))
}

func paramValueObj(v paramValue) *object {
	_, vc := paramClass(v.typ)
	var val any = v.value
	if v.typ == BooleanParam {
		val = v.value == "true"
	}
	o := obj(vc, pv("name", 3, v.name), pv("value", 4, val))
	if v.typ == NodeParam || v.typ == LabelParam {
		o.add(pv("label", 3, v.value))
	}
	return o
}

func (e *Emulator) actionObjs(params []paramValue, userName string) []*object {
	var out []*object
	if len(params) > 0 {
		var ps []*object
		for _, v := range params {
			ps = append(ps, paramValueObj(v))
		}
		out = append(out, obj("hudson.model.ParametersAction", pv("parameters", 2, ps)))
	}
	cause := obj("hudson.model.Cause$UserIdCause", pv("shortDescription", 3, "Started by user "+userName),
		pv("userId", 3, userName), pv("userName", 3, userName))
	if userName == "" || userName == "anonymous" {
		cause = obj("hudson.model.Cause$UserIdCause", pv("shortDescription", 3, "Started by user anonymous"),
			pv("userId", 3, nil), pv("userName", 3, "anonymous"))
	}
	return append(out, obj("hudson.model.CauseAction", pv("causes", 2, objs(cause))))
}

func (e *Emulator) taskObj(j *job) *object {
	return obj(j.class(), pv("name", 999, j.name), pv("url", 999, e.rootURL+j.path()), pv("color", 2, j.color()))
}

func (e *Emulator) queueItemObj(it *queueItem) *object {
	class := map[itemState]string{
		stateWaiting: "hudson.model.Queue$WaitingItem", stateBlocked: "hudson.model.Queue$BlockedItem",
		stateBuildable: "hudson.model.Queue$BuildableItem", stateLeft: "hudson.model.Queue$LeftItem",
	}[it.state]
	var params strings.Builder
	for _, v := range it.params {
		fmt.Fprintf(&params, "\n%s=%s", v.name, v.value)
	}
	var why any = it.why
	switch it.state {
	case stateLeft:
		why = nil
	case stateWaiting: // counts down between maintenance passes too
		why = "In the quiet period. Expires in " + timeSpan(max(0, it.due.Sub(e.Clock.Now())))
	}
	o := obj(class,
		p("actions", e.actionObjs(it.params, it.user)),
		p("blocked", it.state == stateBlocked),
		p("buildable", it.state == stateBuildable),
		p("id", it.id),
		p("inQueueSince", it.enqueued.UnixMilli()),
		p("params", params.String()),
		p("stuck", false),
		p("task", e.taskObj(it.job)),
		p("url", fmt.Sprintf("queue/item/%d/", it.id)),
		p("why", why),
	)
	switch it.state {
	case stateWaiting:
		o.add(p("timestamp", it.due.UnixMilli()))
	case stateBuildable:
		o.add(p("buildableStartMilliseconds", it.buildable.UnixMilli()), p("pending", false))
	case stateBlocked:
		o.add(p("buildableStartMilliseconds", it.buildable.UnixMilli()))
	case stateLeft:
		var exe any
		if it.build != nil && !e.Clock.Now().Before(it.leftAt.Add(e.opts.leftGap)) {
			exe = obj(it.build.class(), pv("number", 2, it.build.number), pv("url", 2, e.rootURL+it.build.path()))
		}
		o.add(p("cancelled", it.cancelled), p("executable", exe))
	}
	return o
}

func (e *Emulator) queueObj() *object {
	var items []*object
	for _, it := range e.queue {
		if it.state != stateLeft {
			items = append(items, e.queueItemObj(it))
		}
	}
	return obj("hudson.model.Queue", p("discoverableItems", []*object{}), pin("items", objs(items...)))
}

func (e *Emulator) buildObj(b *build) *object {
	var result, desc any
	if !b.building {
		result = b.result
	}
	if b.description != nil {
		desc = *b.description
	}
	dur := int64(0)
	if !b.building {
		dur = b.duration.Milliseconds()
	}
	o := obj(b.class(),
		p("actions", e.actionObjs(b.params, b.user)),
		p("artifacts", []*object{}),
		p("building", b.building),
		p("description", desc),
		p("displayName", fmt.Sprintf("#%d", b.number)),
		p("duration", dur),
		p("estimatedDuration", b.job.estimatedDuration()),
		p("executor", nil),
		p("fullDisplayName", fmt.Sprintf("%s #%d", strings.ReplaceAll(b.job.fullName(), "/", " » "), b.number)),
		p("id", fmt.Sprint(b.number)),
		p("keepLog", false),
		pv("number", 2, b.number),
		p("queueId", b.queueID),
		p("result", result),
		p("timestamp", b.start.UnixMilli()),
		pv("url", 2, e.rootURL+b.path()),
	)
	if b.job.spec.Pipeline { // a WorkflowRun has no builtOn: it is not an AbstractBuild
		return o.add(p("changeSets", []*object{}), p("culprits", []*object{}), p("inProgress", b.building))
	}
	return o.add(
		p("builtOn", b.nodeName),
		p("changeSet", obj("hudson.scm.EmptyChangeLogSet", p("items", []*object{}), p("kind", nil))),
		p("culprits", []*object{}),
	)
}

func (e *Emulator) computerName(n *node) string {
	if n.name == "" {
		return e.prof.builtInName
	}
	return n.name
}

func (e *Emulator) computerObj(n *node) *object {
	class := classSlaveComp
	if n.name == "" {
		class = classMasterComp
	}
	execs := make([]*object, len(n.slots))
	for i, b := range n.slots {
		var cur any
		progress := -1
		if b != nil {
			cur = obj(b.class(), pv("number", 2, b.number), pv("url", 2, e.rootURL+b.path()), pv("timestamp", 2, b.start.UnixMilli()))
			if est := b.job.estimatedDuration(); est > 0 {
				progress = min(99, int(e.Clock.Now().Sub(b.start).Milliseconds()*100/est))
			}
		}
		execs[i] = obj(classExecutor, p("currentExecutable", cur), p("idle", b == nil),
			p("likelyStuck", false), p("number", i), p("progress", progress))
	}
	var cause any
	reason := ""
	switch {
	case n.tempOffline:
		cause = obj("hudson.slaves.OfflineCause$UserCause", p("description", n.offlineMsg))
		reason = n.offlineMsg
	case !n.connected:
		cause = obj("hudson.slaves.OfflineCause$ChannelTermination", p("description", "Connection was broken"))
		reason = "Connection was broken"
	}
	if !n.connected && !n.tempOffline && n.name != "" {
		cause, reason = nil, "" // never connected: Jenkins has no cause yet
	}
	o := obj(class, p("actions", []*object{}))
	if e.prof.labelExprJSON {
		o.add(p("assignedLabels", e.labelObjs(e.assignedLabels(n))))
	}
	return o.add(
		p("description", n.description),
		p("displayName", e.computerName(n)),
		p("executors", execs),
		p("icon", "symbol-computer"),
		p("iconClassName", "symbol-computer"),
		p("idle", n.busy() == 0),
		p("jnlpAgent", false),
		p("launchSupported", true),
		p("loadStatistics", obj("hudson.model.Label$1")),
		p("manualLaunchAllowed", true),
		p("monitorData", obj("java.util.HashMap")),
		p("numExecutors", n.numExecutors),
		p("offline", !n.online()),
		p("offlineCause", cause),
		p("offlineCauseReason", reason),
		p("oneOffExecutors", e.oneOffObjs(n)),
		p("temporarilyOffline", n.tempOffline),
	)
}

func (e *Emulator) computerSetObj() *object {
	comps := make([]*object, 0, len(e.nodeOrder))
	busy, total := 0, 0
	for _, n := range e.nodeOrder {
		comps = append(comps, e.computerObj(n))
		if n.online() {
			busy += n.busy()
			total += n.numExecutors
		}
	}
	return obj("hudson.model.ComputerSet",
		p("busyExecutors", busy), pin("computer", comps),
		p("displayName", "Nodes"), p("totalExecutors", total))
}

// nodeObj is a Node (not its Computer), as listed by a label.
func (e *Emulator) nodeObj(n *node) *object {
	if n.name == "" {
		return e.rootObj()
	}
	o := obj(classDumbSlave)
	if e.prof.labelExprJSON {
		o.add(p("assignedLabels", e.labelObjs(e.assignedLabels(n))))
	}
	return o.add(p("mode", string(n.mode)), pv("nodeName", 999, n.name),
		p("nodeDescription", n.description), p("numExecutors", n.numExecutors))
}

func (e *Emulator) labelObj(l Label) *object {
	class := classLabelAtom
	if !label.IsAtom(l) {
		class = "hudson.model.labels.LabelExpression"
	}
	var nodes []*object
	idle, busy, total := 0, 0, 0
	for _, n := range e.nodeOrder {
		if !l.Matches(n.labelSet) {
			continue
		}
		nodes = append(nodes, e.nodeObj(n))
		if n.online() {
			busy += n.busy()
			total += n.numExecutors
			idle += max(0, n.numExecutors-n.busy())
		}
	}
	name := l.String()
	tied := lazy(func() any {
		var out []*object
		for _, j := range e.jobs {
			if !j.folder && j.label != nil && j.label.String() == name {
				out = append(out, e.taskObj(j))
			}
		}
		return out
	})
	return obj(class,
		p("actions", []*object{}),
		p("busyExecutors", busy),
		p("clouds", []*object{}),
		p("description", nil),
		p("idleExecutors", idle),
		p("loadStatistics", obj("hudson.model.Label$1")),
		pv("name", 2, name),
		p("nodes", objs(nodes...)),
		p("offline", total == 0),
		p("tiedJobs", tied),
		p("totalExecutors", total),
	)
}
