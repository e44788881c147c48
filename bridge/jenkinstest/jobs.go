package jenkinstest

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// ParamType is a parameter definition type.
type ParamType string

const (
	StringParam  ParamType = "string"
	TextParam    ParamType = "text"
	BooleanParam ParamType = "boolean"
	ChoiceParam  ParamType = "choice"
	// NodeParam is the NodeLabel Parameter plugin's node parameter: its
	// value names the node the build must run on, overriding the job label.
	NodeParam ParamType = "node"
	// LabelParam is the plugin's label parameter: a label expression.
	LabelParam ParamType = "label"
)

// ParamSpec is a parameter definition.
type ParamSpec struct {
	Name        string
	Type        ParamType // default StringParam
	Default     string    // "true"/"false" for booleans; ignored for choices (the first choice)
	Choices     []string
	Description string
}

// Build results.
const (
	ResultSuccess  = "SUCCESS"
	ResultUnstable = "UNSTABLE"
	ResultFailure  = "FAILURE"
	ResultNotBuilt = "NOT_BUILT"
	ResultAborted  = "ABORTED"
)

// Outcome is how one build of a job goes.
type Outcome struct {
	Duration time.Duration
	Result   string // default SUCCESS
}

// JobSpec describes a freestyle job.
type JobSpec struct {
	// Name is the full name; folders in it ("a/b/job") are created as needed.
	Name       string
	Label      string // label expression; "" = can run anywhere (NORMAL nodes)
	Disabled   bool
	Concurrent bool
	Params     []ParamSpec
	// QuietPeriod overrides the global quiet period when non-nil.
	QuietPeriod *time.Duration
	// Duration and Result apply to every build not covered by Outcomes.
	Duration time.Duration
	Result   string
	// Outcomes are used by the next builds, one each, in order.
	Outcomes    []Outcome
	Description string
	// Pipeline makes it a WorkflowJob: no label of its own, flyweight runs
	// on the built-in node that take no executor, no builtOn in its runs.
	Pipeline bool
}

type job struct {
	name     string
	parent   *job // nil for the root
	folder   bool
	children map[string]*job
	spec     JobSpec
	label    Label // parsed spec.Label, nil when unrestricted
	next     int   // nextBuildNumber
	builds   []*build
	byNumber map[int]*build
	outcomes []Outcome
	// runningCount avoids scanning the build history on every maintenance.
	runningCount int
}

func (j *job) fullName() string {
	if j.parent == nil || j.parent.parent == nil {
		return j.name
	}
	return j.parent.fullName() + "/" + j.name
}

// path is the URL path below the root, e.g. "job/a/job/b%20c/".
func (j *job) path() string {
	if j.parent == nil {
		return ""
	}
	return j.parent.path() + "job/" + url.PathEscape(j.name) + "/"
}

func (j *job) sortedChildren() []*job {
	out := make([]*job, 0, len(j.children))
	for _, c := range j.children {
		out = append(out, c)
	}
	sort.Slice(out, func(a, b int) bool { return strings.ToLower(out[a].name) < strings.ToLower(out[b].name) })
	return out
}

func (j *job) parameterized() bool { return len(j.spec.Params) > 0 }

// lastRunning returns the newest running build (runningCount > 0).
func (j *job) lastRunning() *build {
	for i := len(j.builds) - 1; i >= 0; i-- {
		if j.builds[i].building {
			return j.builds[i]
		}
	}
	return nil
}

func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\?*%!@#$^&|<>[]:;")
}

// AddFolder creates a folder (and its parents).
func (e *Emulator) AddFolder(fullName string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err := e.folderLocked(strings.Split(fullName, "/"))
	return err
}

func (e *Emulator) folderLocked(parts []string) (*job, error) {
	f := e.root
	for _, name := range parts {
		if !validName(name) {
			return nil, fmt.Errorf("jenkinstest: bad item name %q", name)
		}
		c, ok := f.children[name]
		if !ok {
			c = &job{name: name, parent: f, folder: true, children: map[string]*job{}}
			f.children[name] = c
			e.jobs[c.fullName()] = c
		}
		if !c.folder {
			return nil, fmt.Errorf("jenkinstest: %q is a job, not a folder", c.fullName())
		}
		f = c
	}
	return f, nil
}

// AddJob creates a job, or reconfigures an existing one (its builds and
// next build number are kept).
func (e *Emulator) AddJob(spec JobSpec) error {
	parts := strings.Split(spec.Name, "/")
	if !validName(parts[len(parts)-1]) {
		return fmt.Errorf("jenkinstest: bad job name %q", spec.Name)
	}
	var label Label
	if strings.TrimSpace(spec.Label) != "" {
		l, err := ParseLabel(spec.Label)
		if err != nil {
			return err
		}
		label = l
	}
	for i := range spec.Params {
		ps := &spec.Params[i]
		if ps.Type == "" {
			ps.Type = StringParam
		}
		switch ps.Type {
		case StringParam, TextParam, BooleanParam, ChoiceParam, NodeParam, LabelParam:
		default:
			return fmt.Errorf("jenkinstest: parameter %q: unknown type %q", ps.Name, ps.Type)
		}
		if ps.Type == ChoiceParam && len(ps.Choices) == 0 {
			return fmt.Errorf("jenkinstest: choice parameter %q without choices", ps.Name)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	parent, err := e.folderLocked(parts[:len(parts)-1])
	if err != nil {
		return err
	}
	name := parts[len(parts)-1]
	j, ok := parent.children[name]
	if ok && j.folder {
		return fmt.Errorf("jenkinstest: %q is a folder", spec.Name)
	}
	if !ok {
		j = &job{name: name, parent: parent, next: 1, byNumber: map[int]*build{}}
		parent.children[name] = j
		e.jobs[j.fullName()] = j
	}
	j.spec, j.label = spec, label
	j.outcomes = append([]Outcome(nil), spec.Outcomes...)
	e.maintainNow()
	return nil
}

func (e *Emulator) jobLocked(fullName string) (*job, error) {
	j, ok := e.jobs[fullName]
	if !ok || j.folder {
		return nil, fmt.Errorf("jenkinstest: no job %q", fullName)
	}
	return j, nil
}

// RemoveJob deletes a job or folder: its queue items are cancelled, its
// running builds are aborted and all its builds are gone (404).
func (e *Emulator) RemoveJob(fullName string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, ok := e.jobs[fullName]
	if !ok {
		return fmt.Errorf("jenkinstest: no item %q", fullName)
	}
	e.removeLocked(j)
	delete(j.parent.children, j.name)
	e.maintainNow()
	return nil
}

func (e *Emulator) removeLocked(j *job) {
	for _, c := range j.children {
		e.removeLocked(c)
	}
	for _, it := range e.queue {
		if it.job == j && it.state != stateLeft {
			e.cancelLocked(it)
		}
	}
	for _, b := range j.builds {
		if b.building {
			e.finishLocked(b, ResultAborted)
		}
	}
	delete(e.jobs, j.fullName())
}

// SetJobDisabled disables or enables a job.
func (e *Emulator) SetJobDisabled(fullName string, disabled bool) error {
	return e.updateJob(fullName, func(j *job) error { j.spec.Disabled = disabled; return nil })
}

// SetJobLabel changes a job's label expression ("" = unrestricted).
func (e *Emulator) SetJobLabel(fullName, expr string) error {
	return e.updateJob(fullName, func(j *job) error {
		j.label = nil
		if strings.TrimSpace(expr) != "" {
			l, err := ParseLabel(expr)
			if err != nil {
				return err
			}
			j.label = l
		}
		j.spec.Label = expr
		return nil
	})
}

// SetOutcomes replaces the outcomes queued for a job's next builds.
func (e *Emulator) SetOutcomes(fullName string, outcomes ...Outcome) error {
	return e.updateJob(fullName, func(j *job) error {
		j.outcomes = append([]Outcome(nil), outcomes...)
		return nil
	})
}

// SetDefaultOutcome sets the duration and result of builds not covered by
// queued outcomes.
func (e *Emulator) SetDefaultOutcome(fullName string, o Outcome) error {
	return e.updateJob(fullName, func(j *job) error {
		j.spec.Duration, j.spec.Result = o.Duration, o.Result
		return nil
	})
}

func (e *Emulator) updateJob(fullName string, f func(*job) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, err := e.jobLocked(fullName)
	if err != nil {
		return err
	}
	if err := f(j); err != nil {
		return err
	}
	e.maintainNow()
	return nil
}

// Jobs lists the full names of all jobs (not folders), sorted.
func (e *Emulator) Jobs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for name, j := range e.jobs {
		if !j.folder {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (j *job) nextOutcome() Outcome {
	o := Outcome{Duration: j.spec.Duration, Result: j.spec.Result}
	if len(j.outcomes) > 0 {
		o, j.outcomes = j.outcomes[0], j.outcomes[1:]
	}
	if o.Result == "" {
		o.Result = ResultSuccess
	}
	return o
}

// estimatedDuration follows Job.getEstimatedDuration: the mean of up to
// three recent successful or unstable builds, topped up with failed ones,
// or -1 with no history.
func (j *job) estimatedDuration() int64 {
	var good, bad []time.Duration
	seen := 0
	for i := len(j.builds) - 1; i >= 0 && seen < 6; i-- {
		b := j.builds[i]
		if b.building {
			continue
		}
		seen++
		switch b.result {
		case ResultSuccess, ResultUnstable:
			good = append(good, b.duration)
		case ResultFailure:
			bad = append(bad, b.duration)
		}
	}
	if len(good) > 3 {
		good = good[:3]
	}
	for len(good) < 3 && len(bad) > 0 {
		good, bad = append(good, bad[0]), bad[1:]
	}
	if len(good) == 0 {
		return -1
	}
	var sum time.Duration
	for _, d := range good {
		sum += d
	}
	return (sum / time.Duration(len(good))).Milliseconds()
}
