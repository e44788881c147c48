package jenkinstest

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gearbridge/gearbridge/bridge/label"
)

type itemState int

const (
	stateWaiting   itemState = iota // in the quiet period
	stateBlocked                    // a non-concurrent job is already building
	stateBuildable                  // waiting for an executor
	stateLeft                       // started or cancelled
)

func (s itemState) String() string {
	return [...]string{"waiting", "blocked", "buildable", "left"}[s]
}

type paramValue struct {
	name  string
	typ   ParamType
	value string
}

type queueItem struct {
	id        int
	job       *job
	params    []paramValue
	key       string // params as a comparable string, for merging
	pin       Label  // from a node or label parameter; overrides the job label
	user      string
	enqueued  time.Time
	due       time.Time // end of the quiet period
	buildable time.Time // when it first became buildable
	state     itemState
	why       string
	cancelled bool
	build     *build
	leftAt    time.Time
	// Why the item could not start when it was due: the bridge's tests
	// assert that none of its builds ever waited for an executor.
	waitStart   time.Time
	waited      time.Duration
	waitReasons []string
}

// QueueRecord is a snapshot of a queue item for assertions.
type QueueRecord struct {
	ID          int
	Job         string // full name
	Params      map[string]string
	User        string // who triggered it ("" = anonymous or the Go API)
	State       string // waiting, blocked, buildable or left
	Why         string
	Cancelled   bool
	BuildNumber int // 0 until started
	Enqueued    time.Time
	Started     time.Time // zero unless it started
	// WaitReasons are the distinct "why" texts seen when the item was due
	// but could not start (no executor, blocked by a running build, quieting
	// down, offline nodes). Empty if it started at its first chance.
	WaitReasons []string
	// ExecutorWait is the time from the first failed start to the start (or
	// to now while it still waits).
	ExecutorWait time.Duration
}

func (e *Emulator) record(it *queueItem, now time.Time) QueueRecord {
	r := QueueRecord{
		ID: it.id, Job: it.job.fullName(), Params: map[string]string{}, User: it.user,
		State: it.state.String(), Why: it.why, Cancelled: it.cancelled,
		Enqueued: it.enqueued, WaitReasons: append([]string(nil), it.waitReasons...),
		ExecutorWait: it.waited,
	}
	for _, pv := range it.params {
		r.Params[pv.name] = pv.value
	}
	if it.build != nil {
		r.BuildNumber, r.Started = it.build.number, it.build.start
	}
	if it.state != stateLeft && !it.waitStart.IsZero() {
		r.ExecutorWait = now.Sub(it.waitStart)
	}
	return r
}

// QueueItems returns the items still in the queue, oldest first.
func (e *Emulator) QueueItems() []QueueRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.Clock.Now()
	var out []QueueRecord
	for _, it := range e.queue {
		if it.state != stateLeft {
			out = append(out, e.record(it, now))
		}
	}
	return out
}

// QueueHistory returns every item ever queued, by ID, including left ones
// (even after Restart or their TTL).
func (e *Emulator) QueueHistory() []QueueRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.Clock.Now()
	out := make([]QueueRecord, 0, len(e.history))
	for _, it := range e.history {
		out = append(out, e.record(it, now))
	}
	return out
}

// WaitedItems returns the items that were due but could not start at once
// (see QueueRecord.WaitReasons).
func (e *Emulator) WaitedItems() []QueueRecord {
	var out []QueueRecord
	for _, r := range e.QueueHistory() {
		if len(r.WaitReasons) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// Trigger queues a build as a Jenkins user or timer would (a "native"
// build, not one from the bridge). params are resolved like
// buildWithParameters: undefined ones are dropped, missing ones defaulted.
// It returns the queue item ID (an existing one if the request merged).
func (e *Emulator) Trigger(fullName string, params map[string]string, delay time.Duration) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, err := e.jobLocked(fullName)
	if err != nil {
		return 0, err
	}
	pvs, err := resolveParams(j, func(n string) (string, bool) { v, ok := params[n]; return v, ok })
	if err != nil {
		return 0, err
	}
	it, _ := e.scheduleLocked(j, pvs, delay, "")
	e.maintainNow()
	return it.id, nil
}

// CancelQueueItem cancels a queued item; false if it is not in the queue.
func (e *Emulator) CancelQueueItem(id int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	it, ok := e.active[id]
	if ok {
		e.cancelLocked(it)
		e.maintainNow()
	}
	return ok
}

// Maintain runs queue maintenance now, as Jenkins' Queue.maintain() does
// in its own tests. Useful with WithQueueLag or after FakeClock.Advance.
func (e *Emulator) Maintain() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.maintainLocked()
}

// resolveParams reads each defined parameter through get, defaulting
// missing ones; values for undefined names are never asked for.
func resolveParams(j *job, get func(string) (string, bool)) ([]paramValue, error) {
	var out []paramValue
	for _, d := range j.spec.Params {
		v, ok := get(d.Name)
		switch d.Type {
		case ChoiceParam:
			if !ok {
				v = d.Choices[0]
			} else if !slices.Contains(d.Choices, v) {
				return nil, fmt.Errorf("Illegal choice for parameter %s: %s", d.Name, v)
			}
		case BooleanParam:
			if !ok {
				v = d.Default
			}
			v = fmt.Sprint(strings.EqualFold(v, "true"))
		default:
			if !ok {
				v = d.Default
			}
		}
		out = append(out, paramValue{name: d.Name, typ: d.Type, value: v})
	}
	return out, nil
}

func paramsKey(pvs []paramValue) string {
	var b strings.Builder
	for _, pv := range pvs {
		b.WriteString(pv.name)
		b.WriteByte(0)
		b.WriteString(pv.value)
		b.WriteByte(0)
	}
	return b.String()
}

// scheduleLocked adds a queue item or merges the request into an equal one
// still in the queue (Queue.scheduleInternal with ParametersAction.shouldSchedule).
func (e *Emulator) scheduleLocked(j *job, pvs []paramValue, quiet time.Duration, user string) (*queueItem, bool) {
	now := e.Clock.Now()
	due := now.Add(quiet)
	key := paramsKey(pvs)
	for _, it := range e.queue {
		if it.job == j && it.state != stateLeft && it.key == key {
			if due.Before(it.due) {
				it.due = due
				e.wakeAt(due)
			}
			return it, true
		}
	}
	e.nextQueueID++
	it := &queueItem{id: e.nextQueueID, job: j, params: pvs, key: key, user: user, enqueued: now, due: due}
	for _, pv := range pvs {
		if pv.value == "" {
			continue
		}
		switch pv.typ {
		case NodeParam:
			it.pin = label.Atom(pv.value)
		case LabelParam:
			it.pin = labelFor(pv.value)
		}
	}
	e.queue = append(e.queue, it)
	e.active[it.id] = it
	e.history = append(e.history, it)
	// A new item is a WaitingItem, even with no quiet period, until a
	// maintenance pass looks at it.
	it.why = "In the quiet period. Expires in " + timeSpan(quiet)
	if quiet > 0 {
		e.wakeAt(due)
	}
	return it, false
}

func (e *Emulator) wakeAt(t time.Time) {
	e.Clock.AfterFunc(t.Sub(e.Clock.Now()), func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.maintainNow()
	})
}

func (e *Emulator) cancelLocked(it *queueItem) {
	it.state, it.cancelled, it.why = stateLeft, true, ""
	it.leftAt = e.Clock.Now()
	delete(e.active, it.id)
	e.left[it.id] = it
}

// maintainNow runs maintenance at once, or after the configured lag.
func (e *Emulator) maintainNow() {
	if e.opts.queueLag <= 0 {
		e.maintainLocked()
		return
	}
	e.lagMaintain()
}

// maintainSoon asks the scheduler goroutine for a maintenance pass, so an
// HTTP trigger returns before its build starts, as in Jenkins.
func (e *Emulator) maintainSoon() {
	if e.opts.queueLag > 0 {
		e.lagMaintain()
		return
	}
	select {
	case e.kickCh <- struct{}{}:
	default:
	}
}

func (e *Emulator) lagMaintain() {
	if e.lagPending {
		return
	}
	e.lagPending = true
	e.Clock.AfterFunc(e.opts.queueLag, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.lagPending = false
		e.maintainLocked()
	})
}

func (e *Emulator) scheduler() {
	for {
		select {
		case <-e.done:
			return
		case <-e.kickCh:
			e.mu.Lock()
			e.maintainLocked()
			e.mu.Unlock()
		}
	}
}

// maintainLocked moves due items to executors, in arrival order, and
// records why the others cannot start.
func (e *Emulator) maintainLocked() {
	now := e.Clock.Now()
	live := e.queue[:0]
	for _, it := range e.queue {
		if it.state != stateLeft {
			live = append(live, it)
		}
	}
	clear(e.queue[len(live):])
	e.queue = live
	for _, it := range e.queue {
		if now.Before(it.due) {
			it.state, it.why = stateWaiting, "In the quiet period. Expires in "+timeSpan(it.due.Sub(now))
			continue
		}
		j := it.job
		if !j.spec.Concurrent && j.runningCount > 0 {
			b := j.lastRunning()
			eta := ""
			if est := j.estimatedDuration(); est >= 0 {
				eta = " (ETA: " + timeSpan(max(0, time.Duration(est)*time.Millisecond-now.Sub(b.start))) + ")"
			}
			e.noteWait(it, now, stateBlocked, fmt.Sprintf("Build #%d is already in progress%s", b.number, eta))
			continue
		}
		if e.quieting {
			e.noteWait(it, now, stateBuildable, "Jenkins is about to shut down")
			continue
		}
		if j.spec.Pipeline {
			e.startFlyweightLocked(it, now)
			continue
		}
		label := it.pin
		if label == nil {
			label = j.label
		}
		if n, slot := e.pickNode(label, j.fullName()); n != nil {
			e.startLocked(it, n, slot, now)
			continue
		}
		e.noteWait(it, now, stateBuildable, e.whyNoExecutor(label))
	}
	if now.Sub(e.lastSweep) > 10*time.Second {
		e.lastSweep = now
		for id, it := range e.left {
			if now.Sub(it.leftAt) >= e.opts.leftTTL {
				delete(e.left, id)
			}
		}
	}
}

func (e *Emulator) noteWait(it *queueItem, now time.Time, s itemState, why string) {
	if it.buildable.IsZero() {
		it.buildable = now
	}
	it.state, it.why = s, why
	if it.waitStart.IsZero() {
		it.waitStart = now
	}
	if len(it.waitReasons) < 10 && !slices.Contains(it.waitReasons, why) {
		it.waitReasons = append(it.waitReasons, why)
	}
}

// pickNode returns the node that takes a build of label now (nil label:
// any NORMAL node), chosen as Jenkins' consistent hash of the job (key).
func (e *Emulator) pickNode(label Label, key string) (*node, int) {
	var candidates []*node
	for _, n := range e.nodeOrder {
		if n.online() && e.canTake(n, label) && n.idleSlot() >= 0 {
			candidates = append(candidates, n)
		}
	}
	for _, n := range hashOrder(key, candidates) {
		if slot := n.idleSlot(); slot >= 0 {
			return n, slot
		}
	}
	return nil, -1
}

func (e *Emulator) canTake(n *node, label Label) bool {
	if label == nil {
		return n.mode == Normal
	}
	return label.Matches(n.labelSet)
}

// whyNoExecutor gives Jenkins' texts for a buildable item with no executor.
func (e *Emulator) whyNoExecutor(label Label) string {
	if label == nil {
		return "Waiting for next available executor"
	}
	name := label.String()
	var matched []*node
	online := false
	for _, n := range e.nodeOrder {
		if label.Matches(n.labelSet) {
			matched = append(matched, n)
			online = online || n.online()
		}
	}
	switch {
	case len(matched) == 0:
		return "There are no nodes with the label ‘" + name + "’"
	case !online && len(matched) == 1 && name == e.selfLabel(matched[0]):
		return "‘" + name + "’ is offline"
	case !online:
		return "All nodes of label ‘" + name + "’ are offline"
	}
	return "Waiting for next available executor on ‘" + name + "’"
}

// timeSpan formats like hudson.Util.getTimeSpanString.
func timeSpan(d time.Duration) string {
	ms := d.Milliseconds()
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%d days %d hr", ms/86400000, ms%86400000/3600000)
	case d >= time.Hour:
		return fmt.Sprintf("%d hr %d min", ms/3600000, ms%3600000/60000)
	case d >= time.Minute:
		return fmt.Sprintf("%d min %d sec", ms/60000, ms%60000/1000)
	case d >= 10*time.Second:
		return fmt.Sprintf("%d sec", ms/1000)
	case d >= time.Second:
		return fmt.Sprintf("%.1f sec", float64(ms)/1000)
	}
	return fmt.Sprintf("%d ms", ms)
}
