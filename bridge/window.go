package bridge

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// Zuul's windows. Zuul can cancel a job only while it waits in Gearman,
// and stop its build only once WORK_DATA has brought the build number:
// in between, the job can be neither. The bridge keeps that window short
// and ends jobs that wait on an unreachable master quickly, so that Zuul
// runs them elsewhere.

// startPollCap bounds the interval between reads of a queue item, so that
// WORK_DATA follows the build's start within a second (the p99 that
// bench/bridgebench reports). The cost, per build waiting in Jenkins'
// queue: 7 small GETs in its first second (10 ms, doubling, so that a
// build that starts at once is seen at once), then 2 a second. There is
// one such build per worker at most, and the gate lets a worker grab only
// when its node has an idle executor, so builds seldom wait there.
const startPollCap = 500 * time.Millisecond

// startPacer spaces the reads of a queue item: 10 ms, doubling up to
// startPollCap (or the poll interval, if shorter).
type startPacer struct{ d, max time.Duration }

func (r *buildRun) startPacer() *startPacer {
	return &startPacer{d: 10 * time.Millisecond, max: min(r.m.pollInterval(), startPollCap)}
}

func (p *startPacer) next() time.Duration {
	d := min(p.d, p.max)
	p.d = min(2*p.d, p.max)
	return d
}

// queueReadTimeout bounds one read of the queue item: a master that hangs
// counts as unreachable after a poll interval, not after request_timeout.
func (r *buildRun) queueReadTimeout() time.Duration {
	return min(r.m.pollInterval(), time.Duration(r.m.cfg.RequestTimeout))
}

// unreachableBeforeStart notes a transient error, from a request sent at
// began, while the build waits in Jenkins' queue. After a poll interval of
// them in a row the job fails (at most two poll intervals after the
// master went away): the build has not started, so Zuul can run it on
// another master at once, and abandon keeps it from running here too.
// A started build waits up to max_outage instead (unreachable).
func (r *buildRun) unreachableBeforeStart(err error, began time.Time) error {
	r.outage = true
	if r.outageSince.IsZero() {
		r.outageSince = began
	}
	if wait := r.m.pollInterval(); time.Since(r.outageSince) >= wait {
		return failf("Jenkins master %s unreachable for %v before queue item %d of %s started: %v",
			r.m.cfg.Name, wait, r.ref.QueueID, r.ref.Project, err)
	}
	return nil
}

// findByQueueID looks for the build of the queue item among the project's
// latest builds: Jenkins forgets a left item 5 minutes after it started
// (or at a restart), and a bridge that was down longer re-attaches to a
// job whose item is gone. Starting the build again would build it twice.
// The build must also carry the job's parameters that the project
// defines, in case Jenkins reused the item's ID after a restart.
func (r *buildRun) findByQueueID(ctx context.Context) (bool, error) {
	_, builds, err := r.recentBuilds(ctx, 100)
	if err != nil {
		return false, err
	}
	want := map[string]string{}
	for name, v := range r.params {
		if r.proj.hasParam(name) {
			want[name] = v
		}
	}
	for _, b := range builds {
		if b.QueueID == r.ref.QueueID && hasParameters(b.Actions, want) {
			r.ref.Number, r.ref.URL = b.Number, b.URL
			r.m.saveRef(r.refKey, r.ref)
			r.w.log.Info("the queue item has expired; found its build by queueId", "handle", r.job.handle, "project", r.ref.Project, "queue_item", r.ref.QueueID, "build", b.URL)
			return true, nil
		}
	}
	return false, nil
}

// abandon makes sure that the queue item of a job that gave up before its
// build started (Zuul runs the job elsewhere) builds nothing here: once
// the master answers again, it cancels the item, or stops its build if it
// started in the meantime. It tries for max_outage.
func (m *master) abandon(ctx context.Context, proj *project, id int64) {
	path := "queue/item/" + strconv.FormatInt(id, 10) + "/"
	log := m.log.With("project", proj.fullName, "queue_item", id)
	bo := backoff{max: m.pollInterval()}
	for deadline := time.Now().Add(time.Duration(m.cfg.MaxOutage)); time.Now().Before(deadline); {
		if sleepCtx(ctx, bo.next()) != nil {
			log.Warn("shutting down before the abandoned queue item was cancelled; its build may run")
			return
		}
		var item queueItemJSON
		err := m.jc.getJSON(ctx, path, "cancelled,executable[number,url]", &item)
		switch {
		case isNotFound(err):
			log.Warn("the abandoned queue item is gone (Jenkins restarted?); if its build started, it runs unobserved")
			return
		case err != nil:
			continue
		case item.Cancelled:
			log.Info("cancelled the queue item of a job that gave up")
			return
		case item.Executable != nil:
			if _, err := m.jc.post(ctx, proj.path+strconv.Itoa(item.Executable.Number)+"/stop", nil, nil); err == nil {
				log.Warn("the build of a job that gave up started meanwhile; stopped it", "build", item.Executable.URL)
				return
			}
		default: // still queued, or about to show its build
			if _, err := m.jc.post(ctx, "queue/cancelItem", url.Values{"id": {strconv.FormatInt(id, 10)}}, nil); err != nil && !isNotFound(err) {
				log.Warn("cannot cancel the queue item of a job that gave up; trying again", "err", err)
			}
		}
	}
	log.Error("gave up cancelling the queue item of a job that gave up; its build may run", "max_outage", time.Duration(m.cfg.MaxOutage))
}
