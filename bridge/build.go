package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/protocol"
)

// buildData is the JSON of WORK_DATA and WORK_COMPLETE, as the plugin
// sends it and Zuul reads it. result is only in the final packet.
type buildData struct {
	Name       string   `json:"name"`
	Number     int      `json:"number"`
	Manager    string   `json:"manager"`
	Worker     string   `json:"worker"`
	URL        string   `json:"url"`
	NodeName   string   `json:"node_name"`
	NodeLabels []string `json:"node_labels"`
	Result     string   `json:"result,omitempty"`
}

// buildRef is what the store keeps per job handle, so that a restarted
// gearbridge follows the build it started instead of starting another.
type buildRef struct {
	Master  string `json:"master"`
	Project string `json:"project"` // full name
	QueueID int64  `json:"queue_id"`
	Number  int    `json:"number,omitempty"`
	URL     string `json:"url,omitempty"`
	// Node is the node the build was seen on (nil: not yet), so that a
	// restarted bridge can take a single-use node offline.
	Node *string `json:"node,omitempty"`
}

// buildJSON is a build as the bridge reads it.
type buildJSON struct {
	Number            int     `json:"number"`
	URL               string  `json:"url"`
	Building          bool    `json:"building"`
	Result            *string `json:"result"`
	EstimatedDuration int64   `json:"estimatedDuration"`
	Timestamp         int64   `json:"timestamp"`
	BuiltOn           string  `json:"builtOn"`
}

const buildTree = "number,url,building,result,estimatedDuration,timestamp,builtOn"

// jobFailure is a reason a build could not start or finish. The job ends
// with one WORK_EXCEPTION carrying the reason and no result, so that Zuul
// runs it again.
type jobFailure struct{ reason string }

func (f *jobFailure) Error() string { return f.reason }

func failf(format string, args ...any) error { return &jobFailure{fmt.Sprintf(format, args...)} }

// runJob runs one build:* job to its end. It returns an error only when
// the job server connection is lost.
func (w *worker) runJob(ctx context.Context, conn *gearConn, job *assignment, registered []string) error {
	if !slices.Contains(registered, job.function) {
		// A job for a function we just dropped (the plugin's JENKINS-28891).
		w.gate.release()
		return conn.sendString(protocol.WorkFail, job.handle)
	}
	r := &buildRun{w: w, conn: conn, job: job, m: w.m, refKey: w.m.refKey(w.server, job.handle)}
	r.claim, r.claimGate = w.gate.startBuild(), w.gate
	defer func() { r.claimGate.finished(r.claim) }()
	defer r.endSingleUse(ctx) // before the claim ends: the node never opens in between
	defer r.releaseItem()
	w.m.bridge.builds.update(r, func(st *gearbridge.BuildStatus) {
		st.Master, st.Function, st.Handle, st.Worker = w.m.cfg.Name, job.function, job.handle, w.id
	})
	err := r.run(ctx)
	var fail *jobFailure
	// A job cut short by a shutdown did not end: the next start re-attaches.
	ended := err == nil || ctx.Err() == nil && errors.As(err, &fail)
	if fail != nil {
		w.m.bridge.builds.update(r, func(st *gearbridge.BuildStatus) { st.Error = shortError(fail) })
	}
	w.m.bridge.builds.end(r, ended)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		// Shutting down: the build goes on in Jenkins and the store keeps
		// its reference, so the next start re-attaches to it. (A request
		// that the shutdown cut short is not the job's failure.)
		return ctx.Err()
	case errors.As(err, &fail):
		w.log.Warn("build failed to run", "handle", job.handle, "function", job.function, "reason", fail) // the bridge's logger cuts errors short
		w.m.metrics.failures.Inc()
		w.m.forgetRef(r.refKey)
		return conn.sendString(protocol.WorkException, job.handle, fail.reason)
	default:
		return err // the job server is gone; the job will be handed out again
	}
}

// buildRun follows one job through Jenkins.
type buildRun struct {
	w      *worker
	conn   *gearConn
	job    *assignment
	m      *master // the master the build runs on (on re-attach, maybe not w's)
	refKey string
	proj   *project
	ref    buildRef
	params map[string]string
	hold   bool // OFFLINE_NODE_WHEN_COMPLETE
	// firstHold: no other single-use job held the node when this one was
	// grabbed (singleuse.go).
	firstHold bool
	// triggerLost: the trigger failed in a way that may have queued a
	// build all the same.
	triggerLost bool
	fresh       bool // triggered by this run, not re-attached

	claim       *claim
	claimGate   *gate
	outage      bool      // Jenkins was unreachable while we followed the build
	outageSince time.Time // start of the current run of failed requests

	claimedItem int64   // the queue item this job alone follows (claimItem)
	claimedOn   *master // whose queue item it is

	started time.Time // when Jenkins started the build
}

// startedOn logs the build's start and shows it running on the status
// page.
func (r *buildRun) startedOn(b buildJSON, url string) {
	r.started = time.Now()
	if b.Timestamp > 0 {
		r.started = time.UnixMilli(b.Timestamp)
	}
	node := b.BuiltOn
	if node == "" {
		node = "built-in"
	}
	r.w.log.Info("build started", "handle", r.job.handle, "project", r.ref.Project, "number", r.ref.Number, "url", url, "node", node)
	started := r.started
	r.m.bridge.builds.update(r, func(st *gearbridge.BuildStatus) {
		st.State, st.Started, st.Node, st.Number, st.URL = "running", &started, node, r.ref.Number, url
	})
}

// answered ends an outage: any answer from Jenkins shows it reachable,
// so the next failed request starts a new max_outage.
func (r *buildRun) answered() { r.outageSince = time.Time{} }

// unreachable notes a transient error while following the build; after
// the master's max_outage of them in a row the job fails, so that nothing
// waits on an unreachable Jenkins forever.
func (r *buildRun) unreachable(err error) error {
	maxOutage := time.Duration(r.m.cfg.MaxOutage)
	r.outage = true
	now := time.Now()
	if r.outageSince.IsZero() {
		r.outageSince = now
		return nil
	}
	if now.Sub(r.outageSince) > maxOutage {
		return failf("Jenkins master %s unreachable for %v while following %s: %v", r.m.cfg.Name, maxOutage, r.ref.Project, err)
	}
	return nil
}

func (r *buildRun) run(ctx context.Context) error {
	params, err := parseParameters(r.job.payload)
	if err != nil {
		return err
	}
	r.params = params
	if singleUseValue(params["OFFLINE_NODE_WHEN_COMPLETE"]) {
		if r.pipelineJob() {
			// Its node would be the controller itself: taking that offline
			// would stop every build. The agents its node { } blocks use
			// are Jenkins' choice, not this worker's.
			r.w.log.Warn("OFFLINE_NODE_WHEN_COMPLETE ignored for a Pipeline project, which runs on no agent of ours", "function", r.job.function)
		} else {
			r.hold = true
			r.firstHold = r.claimGate.holdFirst(r.claim)
		}
	}
	if ref, ok := r.m.loadRef(r.refKey); ok {
		if m := r.m.bridge.master(ref.Master); m != nil {
			r.m, r.ref = m, ref
			r.w.log.Info("re-attaching to the build this job started before a restart", "handle", r.job.handle, "master", ref.Master, "project", ref.Project, "queue_item", ref.QueueID, "build", ref.URL)
		}
	}
	if r.ref.QueueID == 0 {
		r.fresh = true // this run triggers the build
		if err := r.singleUseTurn(ctx); err != nil {
			return err
		}
		if err := r.trigger(ctx); err != nil {
			return err
		}
	} else {
		r.proj = r.m.projectByFullName(r.ref.Project)
		if r.proj == nil {
			r.proj = &project{name: lastSegment(r.ref.Project), fullName: r.ref.Project, path: jobPath(r.ref.Project)}
		}
		if err := r.claimItem(r.ref.QueueID, false); err != nil {
			return err
		}
	}
	r.tracked()
	if r.proj.pipeline {
		r.claimGate.flyweight(r.claim)
	}
	if r.ref.Number == 0 {
		if err := r.awaitStart(ctx); err != nil {
			return err
		}
	}
	return r.follow(ctx)
}

func lastSegment(fullName string) string {
	return fullName[strings.LastIndexByte(fullName, '/')+1:]
}

// trigger asks Jenkins for the build and records the queue item.
func (r *buildRun) trigger(ctx context.Context) error {
	name := functionProject(r.job.function)
	r.proj = r.m.projectByName(name)
	if r.proj == nil {
		return failf("project %s is not known on Jenkins master %s", name, r.m.cfg.Name)
	}
	if r.m.cfg.Trigger == triggerScript {
		return r.triggerByScript(ctx)
	}
	params := r.params

	form := url.Values{}
	sent := map[string]string{} // the job's own parameters, for findLostTrigger
	action := "build"
	if r.proj.params != nil {
		action = "buildWithParameters"
		for _, p := range r.proj.params {
			if v, ok := params[p]; ok {
				form.Set(p, v)
				sent[p] = v
			}
		}
		if np, isLabel := r.m.pinParam(r.proj); np != "" {
			v := r.m.pinValue(r.w.node, isLabel)
			form.Set(np, v)
			sent[np] = v
		}
	}
	r.dropUndefined(form)
	query := url.Values{"delay": {"0sec"}}
	var resp *http.Response
	done, err := r.postTrigger(ctx, sent, func() (err error) {
		resp, err = r.m.jc.post(ctx, r.proj.path+action, query, form)
		return err
	})
	if done {
		return err
	}
	if err != nil {
		if statusOf(err) == http.StatusConflict {
			return failf("project %s is not buildable (disabled?)", r.proj.fullName)
		}
		return failf("could not trigger %s on %s: %v", r.proj.fullName, r.m.cfg.Name, err)
	}
	id, err := queueItemID(resp.Header.Get("Location"))
	if err != nil {
		return failf("triggered %s but %v", r.proj.fullName, err)
	}
	if err := r.claimItem(id, resp.StatusCode == http.StatusSeeOther); err != nil {
		return err
	}
	r.follows(buildRef{Master: r.m.cfg.Name, Project: r.proj.fullName, QueueID: id})
	return nil
}

// postTrigger sends a trigger request (post), retrying what Jenkins refused
// with a 5xx up to three times. When the answer is lost but the request may
// have queued the build, it looks the build up by the parameters it sent
// and follows it, and nothing may be posted again. done is true when the
// caller must return err as it is: the build was followed (err then says
// why the build found is not this job's, if it is not), or ctx ended (err
// is ctx.Err()).
func (r *buildRun) postTrigger(ctx context.Context, sent map[string]string, post func() error) (done bool, err error) {
	bo := backoff{max: 2 * time.Second}
	for attempt := 0; ; attempt++ {
		err = post()
		if err != nil && mayHaveQueued(err) && ctx.Err() == nil {
			// Jenkins may have queued the build without our hearing of
			// it: failing the job (Zuul runs it again) or posting again
			// would build it twice.
			ref, ok, ferr := r.findLostTrigger(ctx, sent)
			if ok {
				r.w.log.Warn("the trigger's answer was lost, but Jenkins had queued the build; following it", "project", r.proj.fullName, "queue_item", ref.QueueID, "build", ref.URL, "err", err)
				r.m.metrics.triggers.Inc()
				if err := r.claimItem(ref.QueueID, false); err != nil {
					return true, err
				}
				r.follows(ref)
				return true, nil
			}
			if ferr != nil {
				err = fmt.Errorf("%w (and looking for the build: %v)", err, ferr)
			}
		}
		// Only retry what was refused with a 5xx: after a lost connection
		// that the lookup could not settle, the build may be queued.
		if err == nil || statusOf(err) < 500 || attempt == 3 {
			r.m.metrics.triggers.Inc()
			r.triggerLost = err != nil && mayHaveQueued(err)
			if err != nil && ctx.Err() != nil {
				return true, ctx.Err()
			}
			return false, err
		}
		if err := sleepCtx(ctx, bo.next()); err != nil {
			return true, err
		}
	}
}

// follows records the build this job follows, for a restart to re-attach.
func (r *buildRun) follows(ref buildRef) {
	r.ref = ref
	r.m.saveRef(r.refKey, r.ref)
	r.w.log.Info("build triggered", "handle", r.job.handle, "function", r.job.function, "project", ref.Project, "queue_item", ref.QueueID)
}

// tracked shows the build the job follows on the status page.
func (r *buildRun) tracked() {
	r.m.bridge.builds.update(r, func(st *gearbridge.BuildStatus) {
		st.Master, st.Project, st.Number, st.URL = r.m.cfg.Name, r.ref.Project, r.ref.Number, r.ref.URL
	})
}

// mayHaveQueued reports whether a trigger that failed with err may still
// have reached Jenkins: the connection failed after it was made, or a
// proxy gave up waiting for Jenkins (502, 504).
func mayHaveQueued(err error) bool {
	switch statusOf(err) {
	case 0:
		var oe *net.OpError
		return !(errors.As(err, &oe) && oe.Op == "dial")
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// lostTriggerLookups is how often findLostTrigger asks Jenkins before it
// gives up: the failure that lost the answer may last a moment.
const lostTriggerLookups = 4

// findLostTrigger looks for the build that a trigger whose answer was lost
// may have queued. Only a job whose Gearman unique ID is also one of its
// parameters (Zuul sends it as ZUUL_UUID) can be told apart from other
// builds: for one, a queue item or one of the project's last 20 builds
// whose parameters include every one the job sent is its build, provided
// exactly one matches.
func (r *buildRun) findLostTrigger(ctx context.Context, sent map[string]string) (buildRef, bool, error) {
	if !carriesUnique(sent, r.job.unique) {
		return buildRef{}, false, nil
	}
	bo := backoff{max: 2 * time.Second}
	for attempt := 1; ; attempt++ {
		ref, n, err := r.triggeredBuild(ctx, sent)
		if err == nil {
			return ref, n == 1, nil
		}
		if !isTransient(err) || attempt == lostTriggerLookups {
			return buildRef{}, false, err
		}
		if sleepCtx(ctx, bo.next()) != nil {
			return buildRef{}, false, ctx.Err()
		}
	}
}

// carriesUnique reports whether the unique ID is the value of a parameter.
func carriesUnique(params map[string]string, unique string) bool {
	if unique == "" {
		return false
	}
	for _, v := range params {
		if v == unique {
			return true
		}
	}
	return false
}

// triggeredBuild counts the project's queue items and latest builds whose
// parameters include sent (one per queue item) and returns one of them.
func (r *buildRun) triggeredBuild(ctx context.Context, sent map[string]string) (ref buildRef, n int, err error) {
	// The queue first: an item that starts between the two requests then
	// shows in both, and not in neither.
	var queue struct {
		Items []struct {
			ID   int64 `json:"id"`
			Task struct {
				URL string `json:"url"`
			} `json:"task"`
			Actions []parametersJSON `json:"actions"`
		} `json:"items"`
	}
	if err := r.m.jc.getJSON(ctx, "queue/", "items[id,task[url],actions[parameters[name,value]]]", &queue); err != nil {
		return ref, 0, err
	}
	projectURL, builds, err := r.recentBuilds(ctx, 20)
	if err != nil {
		return ref, 0, err
	}
	items := map[int64]bool{}
	ref = buildRef{Master: r.m.cfg.Name, Project: r.proj.fullName}
	for _, b := range builds {
		if b.QueueID != 0 && hasParameters(b.Actions, sent) {
			items[b.QueueID] = true
			ref.QueueID, ref.Number, ref.URL = b.QueueID, b.Number, b.URL
		}
	}
	for _, it := range queue.Items {
		if it.Task.URL == projectURL && hasParameters(it.Actions, sent) && !items[it.ID] {
			items[it.ID] = true
			ref.QueueID, ref.Number, ref.URL = it.ID, 0, ""
		}
	}
	return ref, len(items), nil
}

// recentBuilds reads the project's URL and its last n builds with their
// queue items and parameters: what the lookups for a lost trigger and an
// expired queue item compare.
func (r *buildRun) recentBuilds(ctx context.Context, n int) (url string, builds []recentBuildJSON, err error) {
	var project struct {
		URL    string            `json:"url"`
		Builds []recentBuildJSON `json:"builds"`
	}
	tree := "url,builds[number,url,queueId,actions[parameters[name,value]]]{0," + strconv.Itoa(n) + "}"
	if err := r.m.jc.getJSON(ctx, r.proj.path, tree, &project); err != nil {
		return "", nil, err
	}
	return project.URL, project.Builds, nil
}

// recentBuildJSON is one of a project's builds as the lookups for a lost
// trigger and an expired queue item read it.
type recentBuildJSON struct {
	Number  int              `json:"number"`
	URL     string           `json:"url"`
	QueueID int64            `json:"queueId"`
	Actions []parametersJSON `json:"actions"`
}

// parametersJSON is one entry of a queue item's or a build's actions; only
// a ParametersAction has parameters.
type parametersJSON struct {
	Parameters []struct {
		Name  string `json:"name"`
		Value any    `json:"value"`
	} `json:"parameters"`
}

// hasParameters reports whether actions hold every parameter of want with
// the same value (Jenkins adds defaults for the ones not sent).
func hasParameters(actions []parametersJSON, want map[string]string) bool {
	have := map[string]string{}
	for _, a := range actions {
		for _, p := range a.Parameters {
			switch v := p.Value.(type) {
			case string:
				have[p.Name] = v
			case bool:
				have[p.Name] = strconv.FormatBool(v)
			case float64:
				have[p.Name] = strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
	}
	for name, v := range want {
		if got, ok := have[name]; !ok || got != v {
			return false
		}
	}
	return true
}

// parseParameters reads the job payload: a JSON object whose values become
// build parameters. Numbers and booleans are taken as their text; nested
// values are refused, as the plugin refused them.
func parseParameters(payload []byte) (map[string]string, error) {
	params := map[string]string{}
	if len(strings.TrimSpace(string(payload))) == 0 {
		return params, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, failf("job arguments are not a JSON object: %v", err)
	}
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			params[k] = s
			continue
		}
		var scalar any
		if err := json.Unmarshal(v, &scalar); err != nil {
			return nil, failf("parameter %s: %v", k, err)
		}
		switch scalar.(type) {
		case nil:
			params[k] = ""
		case float64, bool:
			params[k] = strings.TrimSpace(string(v)) // as written: 3, 1.5, true
		default:
			return nil, failf("parameter %s is not a string, number or boolean", k)
		}
	}
	return params, nil
}

// queueItemJSON is a Jenkins queue item; cancelled and executable only
// exist once it has left the queue.
type queueItemJSON struct {
	Why        string `json:"why"`
	Cancelled  bool   `json:"cancelled"`
	Executable *struct {
		Number int    `json:"number"`
		URL    string `json:"url"`
	} `json:"executable"`
}

// awaitStart follows the queue item until Jenkins starts the build.
func (r *buildRun) awaitStart(ctx context.Context) error {
	path := "queue/item/" + strconv.FormatInt(r.ref.QueueID, 10) + "/"
	p := r.startPacer()
	for {
		var item queueItemJSON
		began := time.Now()
		rctx, cancel := context.WithTimeout(ctx, r.queueReadTimeout())
		err := r.m.jc.getJSON(rctx, path, "why,cancelled,executable[number,url]", &item)
		cancel()
		if err == nil {
			r.answered()
		}
		switch {
		case err == nil && item.Executable != nil:
			r.ref.Number, r.ref.URL = item.Executable.Number, item.Executable.URL
			r.m.saveRef(r.refKey, r.ref)
			return nil
		case err == nil && item.Cancelled:
			return failf("the Jenkins queue item %d for %s was cancelled", r.ref.QueueID, r.ref.Project)
		case isNotFound(err):
			found, ferr := r.findByQueueID(ctx)
			if found {
				return nil
			}
			if ferr != nil {
				return failf("the Jenkins queue item %d for %s is gone, and looking for its build: %v", r.ref.QueueID, r.ref.Project, ferr)
			}
			return failf("the Jenkins queue item %d for %s is gone (Jenkins restarted?)", r.ref.QueueID, r.ref.Project)
		case err != nil && !isTransient(err):
			return failf("following queue item %d: %v", r.ref.QueueID, err)
		case err != nil:
			if err := r.unreachableBeforeStart(err, began); err != nil {
				go r.m.abandon(ctx, r.proj, r.ref.QueueID)
				return err
			}
		}
		if sleepCtx(ctx, p.next()) != nil {
			return ctx.Err()
		}
	}
}

// follow reports the started build and waits for its result.
func (r *buildRun) follow(ctx context.Context) error {
	path := r.proj.path + strconv.Itoa(r.ref.Number) + "/"
	data := buildData{Name: r.proj.name, Number: r.ref.Number, Manager: r.m.cfg.Name, Worker: r.w.id, URL: r.ref.URL}
	p := newPacer(r.m.pollInterval())
	r.m.track(r.proj, r.ref.URL)
	defer r.m.untrack(r.ref.URL)
	reported := false
	for {
		var b buildJSON
		err := r.m.jc.getJSON(ctx, path, buildTree, &b)
		if err == nil {
			r.answered()
		}
		switch {
		case isNotFound(err):
			return failf("build %s #%d is gone (project deleted?)", r.proj.fullName, r.ref.Number)
		case err != nil && !isTransient(err):
			return failf("following build %s #%d: %v", r.proj.fullName, r.ref.Number, err)
		case err != nil:
			if err := r.unreachable(err); err != nil {
				return err
			}
		default:
			if !reported {
				if b.URL != "" {
					data.URL = b.URL
				}
				node := r.m.node(b.BuiltOn)
				data.NodeName = b.BuiltOn
				data.NodeLabels = []string{}
				if node != nil {
					data.NodeLabels = node.labelList()
				}
				r.moveClaim(b.BuiltOn, data.URL)
				r.ranOn(ctx, b.BuiltOn)
				r.startedOn(b, data.URL)
				if err := r.sendJSON(protocol.WorkData, data); err != nil {
					return err
				}
				reported = true
			}
			if err := r.sendStatus(b); err != nil {
				return err
			}
			if !b.Building && b.Result != nil {
				return r.complete(ctx, data, *b.Result)
			}
		}
		if sleepCtx(ctx, p.next()) != nil {
			return ctx.Err()
		}
	}
}

// moveClaim makes the gate of the node the build runs on count it.
func (r *buildRun) moveClaim(builtOn, buildURL string) {
	g := r.m.gateFor(builtOn)
	if g != nil && g != r.claimGate {
		r.claimGate.drop(r.claim)
		g.adopt(r.claim)
		r.claimGate = g
	}
	r.claimGate.started(r.claim, buildURL)
}

func (r *buildRun) sendStatus(b buildJSON) error {
	elapsed := int64(0)
	if b.Timestamp > 0 {
		elapsed = max(0, time.Now().UnixMilli()-b.Timestamp)
	}
	return r.conn.sendString(protocol.WorkStatus, r.job.handle,
		strconv.FormatInt(elapsed, 10), strconv.FormatInt(b.EstimatedDuration, 10))
}

func (r *buildRun) sendJSON(typ protocol.Type, data buildData) error {
	b, err := r.marshalData(data)
	if err != nil {
		return err
	}
	return r.conn.send(typ, []byte(r.job.handle), b)
}

// complete ends the job with the build's result.
func (r *buildRun) complete(ctx context.Context, data buildData, result string) error {
	if result == "ABORTED" && r.outage && !r.m.stoppedByUs(data.URL) {
		// Aborted while Jenkins was away: a restart, not a user's choice.
		return failf("build %s was aborted while Jenkins was unreachable (restart?)", data.URL)
	}
	data.Result = result
	if err := r.sendJSON(protocol.WorkComplete, data); err != nil {
		return err
	}
	r.m.metrics.completed.WithLabelValues(r.m.cfg.Name, result).Inc()
	r.m.bridge.builds.update(r, func(st *gearbridge.BuildStatus) { st.Result = result })
	r.w.log.Info("build finished", "handle", r.job.handle, "project", r.ref.Project, "number", data.Number, "url", data.URL, "result", result, "duration", time.Since(r.started).Round(time.Millisecond).String())
	r.m.forgetRef(r.refKey)
	return nil
}

// pacer spaces polls: quickly at first, so that short builds are seen at
// once, then every poll interval.
type pacer struct{ d, max time.Duration }

func newPacer(max time.Duration) *pacer { return &pacer{d: 5 * time.Millisecond, max: max} }

func (p *pacer) next() time.Duration {
	d := p.d
	p.d = min(p.d*3/2+time.Millisecond, p.max)
	return d
}
