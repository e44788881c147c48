package jenkinstest

import (
	"fmt"
	"regexp"
	"slices"
	"time"
)

type build struct {
	job         *job
	number      int
	queueID     int
	node        *node
	nodeName    string // "" for the built-in node
	nodeLabels  []string
	slot        int
	start       time.Time
	duration    time.Duration
	building    bool
	result      string
	description *string
	params      []paramValue
	user        string
	planned     Outcome
	held        bool
	aborting    bool
	timer       Timer
}

func (b *build) path() string { return b.job.path() + fmt.Sprint(b.number) + "/" }

// startLocked turns a queue item into a running build on n's executor slot.
// The build number is assigned only now, as in Jenkins.
func (e *Emulator) startLocked(it *queueItem, n *node, slot int, now time.Time) {
	j := it.job
	b := &build{
		job: j, number: j.next, queueID: it.id, node: n, nodeName: n.name,
		nodeLabels: e.assignedLabels(n), slot: slot, start: now, building: true,
		params: it.params, user: it.user,
	}
	j.next++
	j.builds = append(j.builds, b)
	j.byNumber[b.number] = b
	j.runningCount++
	if slot >= 0 {
		n.slots[slot] = b
	} else {
		n.oneOff[len(n.oneOff)-1] = b
	}
	it.state, it.why, it.build, it.leftAt = stateLeft, "", b, now
	if it.buildable.IsZero() {
		it.buildable = now
	}
	if !it.waitStart.IsZero() {
		it.waited = now.Sub(it.waitStart)
	}
	delete(e.active, it.id)
	e.left[it.id] = it
	e.log.Debug("build started", "job", j.fullName(), "number", b.number, "node", n.name, "queue_id", it.id)

	b.planned = j.nextOutcome()
	switch {
	case e.heldLocked(j):
		b.held = true
	case b.planned.Duration <= 0:
		e.finishLocked(b, b.planned.Result)
	default:
		b.timer = e.Clock.AfterFunc(b.planned.Duration, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if b.building && !b.held && !b.aborting {
				e.finishLocked(b, b.planned.Result)
				e.maintainNow()
			}
		})
	}
}

// finishLocked ends a running build and frees its executor. Callers run
// maintenance afterwards.
func (e *Emulator) finishLocked(b *build, result string) {
	if !b.building {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	b.building, b.result = false, result
	b.duration = e.Clock.Now().Sub(b.start)
	b.job.runningCount--
	if n := b.node; b.slot >= 0 && b.slot < len(n.slots) && n.slots[b.slot] == b {
		n.slots[b.slot] = nil
		n.resize(n.numExecutors)
	} else if b.slot < 0 {
		n.oneOff = slices.DeleteFunc(n.oneOff, func(x *build) bool { return x == b })
	}
	e.log.Debug("build finished", "job", b.job.fullName(), "number", b.number, "result", result)
}

// stopLocked aborts a build asynchronously: it keeps building for the stop
// delay, then ends ABORTED.
func (e *Emulator) stopLocked(b *build) {
	if !b.building || b.aborting {
		return
	}
	b.aborting = true
	if b.timer != nil {
		b.timer.Stop()
	}
	b.timer = e.Clock.AfterFunc(e.opts.stopDelay, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if b.building {
			e.finishLocked(b, ResultAborted)
			e.maintainNow()
		}
	})
}

func (e *Emulator) heldLocked(j *job) bool {
	for _, re := range e.holds {
		if re.MatchString(j.fullName()) {
			return true
		}
	}
	return false
}

// HoldBuilds makes builds that start from now on, of jobs whose full name
// matches the regular expression (anchored; "" = all jobs), run until
// released, stopped or finished by the test.
func (e *Emulator) HoldBuilds(pattern string) error {
	re, err := anchored(pattern)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.holds = append(e.holds, re)
	return nil
}

// StopHolding forgets all hold patterns; already held builds stay held
// until Release.
func (e *Emulator) StopHolding() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.holds = nil
}

// Release ends the held builds of jobs matching pattern (anchored; "" =
// all) now, with their planned result, and returns how many it ended.
func (e *Emulator) Release(pattern string) (int, error) {
	re, err := anchored(pattern)
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, b := range e.runningLocked() {
		if b.held && !b.aborting && re.MatchString(b.job.fullName()) {
			e.finishLocked(b, b.planned.Result)
			n++
		}
	}
	e.maintainNow()
	return n, nil
}

// FinishBuild ends a running build now with result (held or not).
func (e *Emulator) FinishBuild(fullName string, number int, result string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, err := e.jobLocked(fullName)
	if err != nil {
		return err
	}
	b, ok := j.byNumber[number]
	if !ok || !b.building {
		return fmt.Errorf("jenkinstest: %s #%d is not building", fullName, number)
	}
	e.finishLocked(b, result)
	e.maintainNow()
	return nil
}

func (e *Emulator) runningLocked() []*build {
	var out []*build
	for _, n := range e.nodeOrder {
		for _, b := range n.slots {
			if b != nil {
				out = append(out, b)
			}
		}
		out = append(out, n.oneOff...)
	}
	return out
}

func anchored(pattern string) (*regexp.Regexp, error) {
	if pattern == "" {
		pattern = ".*"
	}
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		return nil, fmt.Errorf("jenkinstest: pattern %q: %w", pattern, err)
	}
	return re, nil
}

// BuildRecord is a snapshot of a build for assertions.
type BuildRecord struct {
	Job         string
	Number      int
	QueueID     int
	Node        string // "" for the built-in node
	Building    bool
	Held        bool
	Result      string // "" while building
	Start       time.Time
	Duration    time.Duration
	Description string
	Params      map[string]string
	User        string
}

func (b *build) record() BuildRecord {
	r := BuildRecord{
		Job: b.job.fullName(), Number: b.number, QueueID: b.queueID, Node: b.nodeName,
		Building: b.building, Held: b.held && b.building, Result: b.result, Start: b.start,
		Duration: b.duration, Params: map[string]string{}, User: b.user,
	}
	if b.description != nil {
		r.Description = *b.description
	}
	for _, pv := range b.params {
		r.Params[pv.name] = pv.value
	}
	return r
}

// Builds returns a job's builds, oldest first.
func (e *Emulator) Builds(fullName string) []BuildRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, err := e.jobLocked(fullName)
	if err != nil {
		return nil
	}
	out := make([]BuildRecord, 0, len(j.builds))
	for _, b := range j.builds {
		out = append(out, b.record())
	}
	return out
}

// RunningBuilds returns every build in progress.
func (e *Emulator) RunningBuilds() []BuildRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []BuildRecord
	for _, b := range e.runningLocked() {
		out = append(out, b.record())
	}
	return out
}

// Restart emulates a crash and restart of Jenkins: running builds end
// ABORTED (FAILURE before 2.447; see WithRestartResult), Pipeline runs
// resume and go on, the left-item cache and all sessions (and so crumbs)
// are lost; waiting queue items survive, as queue.xml does.
func (e *Emulator) Restart() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.runningLocked() {
		if b.slot >= 0 {
			e.finishLocked(b, e.restartResult())
		}
	}
	e.left = map[int]*queueItem{}
	e.sessions = map[string]string{}
	e.log.Info("restarted")
	e.maintainNow()
}
