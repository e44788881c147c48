package jenkinstest

import "time"

// Pipeline (WorkflowJob) jobs run as flyweight tasks: Jenkins starts the
// WorkflowRun on a one-off executor of the built-in node (their label is
// the built-in node's self label), whatever its executor count, so a run
// occupies no executor of any node. Its node { } blocks would take agent
// executors as separate queue items; the emulator does not model them.

const (
	classWorkflowJob = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
	classWorkflowRun = "org.jenkinsci.plugins.workflow.job.WorkflowRun"
	classOneOffExec  = "hudson.model.OneOffExecutor"
)

func (j *job) class() string {
	if j.spec.Pipeline {
		return classWorkflowJob
	}
	return classFreeStyle
}

func (b *build) class() string {
	if b.job.spec.Pipeline {
		return classWorkflowRun
	}
	return classBuild
}

// startFlyweightLocked starts a Pipeline item on a one-off executor of the
// built-in node; it never waits for an executor.
func (e *Emulator) startFlyweightLocked(it *queueItem, now time.Time) {
	n := e.nodes[""]
	n.oneOff = append(n.oneOff, nil)
	e.startLocked(it, n, -1, now)
}

// WithLeftItemGap makes a started item's LeftItem show executable: null and
// cancelled: false for d after it left the queue, as Jenkins does until the
// executor has created the build.
func WithLeftItemGap(d time.Duration) Option { return func(o *options) { o.leftGap = d } }

// WithRestartResult sets the result that Restart gives the builds it
// interrupts. By default it follows the version: ABORTED from 2.447
// (jenkinsci/jenkins#8986), FAILURE before.
func WithRestartResult(result string) Option { return func(o *options) { o.restartResult = result } }

func (e *Emulator) restartResult() string {
	if e.opts.restartResult != "" {
		return e.opts.restartResult
	}
	return e.prof.restartResult
}

// oneOffObjs lists the flyweight runs of n as Computer.getOneOffExecutors
// exports them.
func (e *Emulator) oneOffObjs(n *node) []*object {
	out := []*object{}
	for _, b := range n.oneOff {
		cur := obj(b.class(), pv("number", 2, b.number), pv("url", 2, e.rootURL+b.path()))
		out = append(out, obj(classOneOffExec, p("currentExecutable", cur), p("idle", false),
			p("likelyStuck", false), p("number", -1), p("progress", -1)))
	}
	return out
}
