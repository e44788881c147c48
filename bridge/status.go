package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gearbridge/gearbridge"
)

// The bridge's view for operators: each master's health, and the builds
// in flight and lately finished. Fleet and Ready read only memory, so the
// status page costs Jenkins nothing.

// masterHealth is what the polls tell about a master being reachable.
type masterHealth struct {
	mu          sync.Mutex
	up          bool
	lastSuccess time.Time
	lastError   string
	lastErrorAt time.Time
	downSince   time.Time // first failed poll in a row; start-up until the first success
}

func (h *masterHealth) polled(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.up, h.lastSuccess, h.downSince = true, now, time.Time{}
		return
	}
	if h.up || h.downSince.IsZero() {
		h.downSince = now
	}
	h.up, h.lastError, h.lastErrorAt = false, shortError(err), now
}

func (h *masterHealth) read() masterHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	return masterHealth{up: h.up, lastSuccess: h.lastSuccess, lastError: h.lastError, lastErrorAt: h.lastErrorAt, downSince: h.downSince}
}

// maxErrorText bounds an error in a log line or on the status page: a
// Jenkins error page or a long tree= URL must not make a 2 KB line.
const maxErrorText = 300

// shortError is err's text with URL passwords hidden (before the cut, so
// that no cut can leave half a password unrecognized), cut to
// maxErrorText bytes on a rune boundary.
func shortError(err error) string {
	if err == nil {
		return ""
	}
	s := gearbridge.RedactURLPasswords(err.Error())
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxErrorText {
		return s
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// pollErrorReason sorts a failed poll for gearbridge_bridge_poll_errors_total;
// the set is small and fixed, so the label stays cheap.
func pollErrorReason(err error) string {
	switch s := statusOf(err); {
	case s == http.StatusUnauthorized:
		return "unauthorized"
	case s == http.StatusForbidden:
		return "forbidden"
	case s == http.StatusNotFound:
		return "not_found"
	case s >= 500:
		return "server_error"
	case s != 0:
		return "http_error"
	}
	switch {
	case errors.Is(err, errBadJSON):
		return "bad_response"
	case isTimeout(err):
		return "timeout"
	case isTransient(err):
		return "network"
	}
	return "other"
}

// buildTracker keeps the builds in flight and the last finished ones.
type buildTracker struct {
	mu       sync.Mutex
	inFlight map[*buildRun]*gearbridge.BuildStatus
	finished []gearbridge.BuildStatus // oldest first, at most FinishedBuildsKept
}

func (t *buildTracker) update(r *buildRun, f func(*gearbridge.BuildStatus)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inFlight == nil {
		t.inFlight = map[*buildRun]*gearbridge.BuildStatus{}
	}
	st := t.inFlight[r]
	if st == nil {
		st = &gearbridge.BuildStatus{State: "queued", Triggered: time.Now()}
		t.inFlight[r] = st
	}
	f(st)
}

// end takes r out of flight; a build that ended (a result, or a reason it
// could not run) goes to the finished list. A job dropped because the
// bridge stopped or lost its job server does not: it runs again.
func (t *buildTracker) end(r *buildRun, ended bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.inFlight[r]
	delete(t.inFlight, r)
	if st == nil || !ended {
		return
	}
	now := time.Now()
	st.State, st.Finished = "finished", &now
	t.finished = append(t.finished, *st)
	if n := len(t.finished) - gearbridge.FinishedBuildsKept; n > 0 {
		t.finished = slices.Delete(t.finished, 0, n)
	}
}

func (t *buildTracker) inFlightOn(master string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, st := range t.inFlight {
		if st.Master == master {
			n++
		}
	}
	return n
}

func elapsed(st *gearbridge.BuildStatus, now time.Time) float64 {
	from := st.Triggered
	if st.Started != nil {
		from = *st.Started
	}
	to := now
	if st.Finished != nil {
		to = *st.Finished
	}
	return max(0, to.Sub(from).Seconds())
}

// snapshot copies the tracker's builds, in flight oldest first and
// finished newest first, with elapsed times as of now.
func (t *buildTracker) snapshot(now time.Time) (inFlight, finished []gearbridge.BuildStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	inFlight = make([]gearbridge.BuildStatus, 0, len(t.inFlight))
	for _, st := range t.inFlight {
		c := *st
		c.ElapsedSeconds = elapsed(&c, now)
		inFlight = append(inFlight, c)
	}
	sort.Slice(inFlight, func(i, j int) bool { return inFlight[i].Triggered.Before(inFlight[j].Triggered) })
	finished = make([]gearbridge.BuildStatus, 0, len(t.finished))
	for i := len(t.finished) - 1; i >= 0; i-- {
		c := t.finished[i]
		c.ElapsedSeconds = elapsed(&c, now)
		finished = append(finished, c)
	}
	return inFlight, finished
}

// Fleet returns the bridge's view of its masters, nodes, executors and
// builds, from memory.
func (b *Bridge) Fleet() gearbridge.Fleet {
	now := time.Now()
	inFlight, finished := b.builds.snapshot(now)
	byURL := map[string]*gearbridge.BuildStatus{}
	for i := range inFlight {
		if inFlight[i].URL != "" {
			byURL[inFlight[i].URL] = &inFlight[i]
		}
	}
	f := gearbridge.Fleet{InFlight: inFlight, Finished: finished, Masters: []gearbridge.MasterStatus{}}
	for _, m := range b.masterList() {
		f.Masters = append(f.Masters, m.status(now, byURL))
	}
	return f
}

func (m *master) status(now time.Time, byURL map[string]*gearbridge.BuildStatus) gearbridge.MasterStatus {
	h := m.health.read()
	ms := gearbridge.MasterStatus{Name: m.cfg.Name, URL: m.cfg.base.Redacted(), Up: h.up, LastError: h.lastError, LatencyMS: m.jc.latency().Seconds() * 1000, Nodes: []gearbridge.NodeStatus{}}
	if !h.lastSuccess.IsZero() {
		ms.LastSuccess = &h.lastSuccess
	}
	if !h.lastErrorAt.IsZero() {
		ms.LastErrorAt = &h.lastErrorAt
	}
	if !h.up {
		ms.DownSince = &h.downSince
	}
	m.mu.Lock()
	snap := m.snap
	m.mu.Unlock()
	if snap == nil {
		return ms
	}
	ms.QuietingDown = snap.quietingDown
	names := make([]string, 0, len(snap.nodes))
	for name := range snap.nodes {
		names = append(names, name)
	}
	sort.Strings(names) // the built-in node ("") first
	for _, name := range names {
		n := snap.nodes[name]
		ns := gearbridge.NodeStatus{Name: n.name, State: gearbridge.NodeOnline, Labels: n.labelList(), Executors: []gearbridge.ExecutorStatus{}}
		if n.name == "" {
			ns.Name = "built-in"
		}
		switch {
		case n.tempOffline:
			ns.State, ns.OfflineReason = gearbridge.NodeTemporarilyOffline, n.offlineReason
		case !n.online:
			ns.State, ns.OfflineReason = gearbridge.NodeOffline, n.offlineReason
		}
		for _, sl := range n.slots {
			e := gearbridge.ExecutorStatus{Busy: sl.url != "", BuildURL: sl.url}
			if sl.url != "" {
				e.Build = buildName(sl.url)
				if !sl.started.IsZero() {
					e.Started = &sl.started
				}
				if st := byURL[sl.url]; st != nil {
					e.Handle = st.Handle
					if st.Started != nil {
						e.Started = st.Started
					}
					if st.Number != 0 {
						e.Build = fmt.Sprintf("%s #%d", st.Project, st.Number)
					}
				}
				if e.Started != nil {
					e.ElapsedSeconds = max(0, now.Sub(*e.Started).Seconds())
				}
			}
			ns.Executors = append(ns.Executors, e)
		}
		ms.Nodes = append(ms.Nodes, ns)
	}
	return ms
}

// buildName makes "project #12" of a build URL such as
// http://host/job/folder/job/project/12/.
func buildName(u string) string {
	parts := strings.Split(strings.Trim(u, "/"), "/")
	if len(parts) >= 3 && parts[len(parts)-3] == "job" {
		return parts[len(parts)-2] + " #" + parts[len(parts)-1]
	}
	return u
}

// Ready reports, for /readyz, the masters that have been unreachable
// longer than maxOutage (from start-up, for one that never answered); nil
// when there are none or maxOutage is 0.
func (b *Bridge) Ready(maxOutage time.Duration) error {
	if maxOutage <= 0 {
		return nil
	}
	var down []string
	now := time.Now()
	for _, m := range b.masterList() {
		h := m.health.read()
		if !h.up && now.Sub(h.downSince) > maxOutage {
			msg := fmt.Sprintf("Jenkins master %s unreachable since %s", m.cfg.Name, h.downSince.UTC().Format(time.RFC3339))
			if h.lastError != "" {
				msg += ": " + h.lastError
			}
			down = append(down, msg)
		}
	}
	if len(down) == 0 {
		return nil
	}
	return errors.New(strings.Join(down, "; "))
}

func (b *Bridge) masterList() []*master {
	b.mu.Lock() // Reload changes the list
	defer b.mu.Unlock()
	return slices.Clone(b.order)
}

// shortErrors is a slog handler that cuts every error attribute with
// shortError: Jenkins' error pages and long URLs must not make 2 KB log
// lines, whichever call logs them.
type shortErrors struct{ slog.Handler }

func (h shortErrors) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(shortAttr(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h shortErrors) WithAttrs(attrs []slog.Attr) slog.Handler {
	for i := range attrs {
		attrs[i] = shortAttr(attrs[i])
	}
	return shortErrors{h.Handler.WithAttrs(attrs)}
}

func (h shortErrors) WithGroup(name string) slog.Handler {
	return shortErrors{h.Handler.WithGroup(name)}
}

func shortAttr(a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindAny {
		if err, ok := a.Value.Any().(error); ok {
			return slog.String(a.Key, shortError(err))
		}
	}
	return a
}
