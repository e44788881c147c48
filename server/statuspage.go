package server

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gearbridge/gearbridge"
)

// The status page: the whole fleet on one screen, rendered from memory
// (Snapshot and the bridge's Fleet) and reloaded by the browser every few
// seconds. It is plain HTML with no script, so that it works anywhere and
// a test can read it from headless Chromium's DOM.

//go:embed statuspage.html
var statusPageHTML string

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"age":      age,
	"ago":      ago,
	"since":    func(now time.Time, t *time.Time) string { return age(now.Sub(*t)) },
	"seconds":  func(s float64) string { return age(time.Duration(s * float64(time.Second))) },
	"busy":     busyExecutors,
	"execs":    totalExecutors,
	"upCount":  upMasters,
	"resultOf": resultClass,
	"buildStates": func(bs []gearbridge.BuildStatus) string {
		running := 0
		for _, b := range bs {
			if b.State == "running" {
				running++
			}
		}
		return fmt.Sprintf("%d running, %d queued in Jenkins", running, len(bs)-running)
	},
	"busyFunctions": func(fs []FunctionStatus) bool {
		return slices.ContainsFunc(fs, func(f FunctionStatus) bool { return f.Total > 0 })
	},
	// Functions with no jobs fold away: a fleet registers hundreds.
	"idleFunctions": func(fs []FunctionStatus) []FunctionStatus {
		var idle []FunctionStatus
		for _, f := range fs {
			if f.Total == 0 {
				idle = append(idle, f)
			}
		}
		return idle
	},
	"ms": func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " ms" },
}).Parse(statusPageHTML))

// pageData is what the template renders.
type pageData struct {
	Status
	Now     time.Time
	Refresh int // seconds between reloads; 0: none
}

// defaultRefresh is how often the page reloads itself; ?refresh=N changes
// it (0 stops it).
const defaultRefresh = 5

func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	d := pageData{Status: s.status(), Now: s.cfg.Now(), Refresh: defaultRefresh}
	if v := r.URL.Query().Get("refresh"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 3600 {
			d.Refresh = n
		}
	}
	var buf bytes.Buffer
	if err := statusTemplate.Execute(&buf, d); err != nil {
		s.log.Error("rendering the status page", "err", err)
		http.Error(w, "cannot render the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// age writes a duration as an operator reads it: 850ms, 42s, 3m05s, 2h10m, 3d4h.
func age(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
		fallthrough
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// ago is "3m05s ago", or "never" for a nil time.
func ago(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return age(now.Sub(*t)) + " ago"
}

func busyExecutors(m gearbridge.MasterStatus) int {
	n := 0
	for _, node := range m.Nodes {
		for _, e := range node.Executors {
			if e.Busy {
				n++
			}
		}
	}
	return n
}

func totalExecutors(m gearbridge.MasterStatus) int {
	n := 0
	for _, node := range m.Nodes {
		n += len(node.Executors)
	}
	return n
}

func upMasters(f *gearbridge.Fleet) int {
	n := 0
	for _, m := range f.Masters {
		if m.Up {
			n++
		}
	}
	return n
}

// resultClass is the CSS class of a finished build's result.
func resultClass(b gearbridge.BuildStatus) string {
	switch {
	case b.Error != "":
		return "bad"
	case b.Result == "SUCCESS":
		return "good"
	case b.Result == "UNSTABLE" || b.Result == "ABORTED" || b.Result == "NOT_BUILT":
		return "warn"
	}
	return "bad"
}
