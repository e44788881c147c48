package integration

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// A Transcript records what a server sent during a scenario, normalised so
// that runs against gearmand and gearbridge can be compared line by line:
// job handles become H:*:n by order of appearance, and the fd column of
// `workers` becomes "*".
type Transcript struct {
	T    *testing.T
	Kind string // "gearmand" or "gearbridge"
	Srv  *Server

	lines   []string
	handles map[string]string
}

func newTranscript(t *testing.T, srv *Server) *Transcript {
	return &Transcript{T: t, Kind: srv.Kind, Srv: srv, handles: map[string]string{}}
}

// Differential runs scenario against a fresh C gearmand (with gmFlags) and
// a fresh gearbridge (with gbFlags), and fails if the two transcripts
// differ. Each run also checks its own assertions (Want, Differs, Shape),
// so a run is meaningful even when the other server is unavailable.
func Differential(t *testing.T, gbFlags, gmFlags []string, scenario func(r *Transcript)) {
	t.Helper()
	var ref *Transcript
	refOK := t.Run("gearmand", func(t *testing.T) {
		r := newTranscript(t, StartGearmand(t, gmFlags...))
		ref = r
		scenario(r)
	})
	t.Run("gearbridge", func(t *testing.T) {
		r := newTranscript(t, StartGearbridge(t, gbFlags...))
		if ref != nil && refOK {
			// Deferred so that the comparison is shown even when the
			// scenario stops early on a timeout.
			defer r.compare(ref)
		}
		scenario(r)
	})
}

// Dial opens a raw connection to the scenario's server.
func (r *Transcript) Dial() *Conn { return Dial(r.T, r.Srv.Addr) }

// IsGearmand reports whether this run is against C gearmand.
func (r *Transcript) IsGearmand() bool { return r.Kind == "gearmand" }

// Read reads the next packet on c and records it under label.
func (r *Transcript) Read(c *Conn, label string) Pkt {
	r.T.Helper()
	p := c.Read()
	r.add(label, p.String())
	return p
}

// Note records a value (quoted) under label.
func (r *Transcript) Note(label string, v string) { r.add(label, fmt.Sprintf("%q", v)) }

// AdminSet sends an admin line whose reply is a listing in unspecified
// order, and records it with its lines sorted and fds masked.
func (r *Transcript) AdminSet(c *Conn, label, line string) string {
	r.T.Helper()
	reply := c.Admin(line)
	r.Note(label, sortListing(reply))
	return reply
}

// Want asserts that got is exactly want on both servers and records it.
// Use it for bytes documented in the reference (gearmand captures) that
// gearbridge must reproduce.
func (r *Transcript) Want(label, got, want string) {
	r.T.Helper()
	if got != want {
		r.T.Errorf("%s: got %q, want %q", label, got, want)
	}
	r.Note(label, got)
}

// WantPkt asserts a packet's type and payload on both servers.
func (r *Transcript) WantPkt(label string, got Pkt, want Pkt) {
	r.T.Helper()
	want.Magic = "\x00RES"
	if got.String() != want.String() {
		r.T.Errorf("%s: got %v, want %v", label, got, want)
	}
	r.add(label, got.String())
}

// Differs is a deliberate difference: gearmand must send gm and gearbridge
// must send gb. The transcript records a placeholder, so the comparison
// passes when each server sends its own intended bytes.
func (r *Transcript) Differs(label, got, gm, gb string) {
	r.T.Helper()
	want := gb
	if r.IsGearmand() {
		want = gm
	}
	if got != want {
		r.T.Errorf("%s (differs by design; this is %s): got %q, want %q", label, r.Kind, got, want)
	}
	r.add(label, "<differs by design>")
}

// Shape asserts that got matches re and records shape instead of the
// server-specific value (version strings, pids, log levels).
func (r *Transcript) Shape(label, got string, re *regexp.Regexp, shape string) {
	r.T.Helper()
	if !re.MatchString(got) {
		r.T.Errorf("%s: %q does not match %v", label, got, re)
	}
	r.add(label, shape)
}

var handleRE = regexp.MustCompile(`H:[^\s:\\"]+:[0-9]+`)

func (r *Transcript) add(label, s string) {
	s = handleRE.ReplaceAllStringFunc(s, func(h string) string {
		n, ok := r.handles[h]
		if !ok {
			n = fmt.Sprintf("H:*:%d", len(r.handles)+1)
			r.handles[h] = n
		}
		return n
	})
	r.lines = append(r.lines, label+": "+s)
}

// compare fails the test for every line that differs from ref.
func (r *Transcript) compare(ref *Transcript) {
	r.T.Helper()
	n := max(len(r.lines), len(ref.lines))
	bad := 0
	for i := 0; i < n; i++ {
		var got, want string
		if i < len(r.lines) {
			got = r.lines[i]
		}
		if i < len(ref.lines) {
			want = ref.lines[i]
		}
		if got != want {
			bad++
			r.T.Errorf("transcript line %d differs\n  gearmand:   %s\n  gearbridge: %s", i+1, want, got)
		}
	}
	if bad > 0 {
		r.T.Logf("gearmand transcript:\n  %s", strings.Join(ref.lines, "\n  "))
	}
}

var fdRE = regexp.MustCompile(`^[0-9]+ `)

// sortListing sorts the lines of an admin listing (keeping the "." line
// last) and masks the fd column of `workers` lines.
func sortListing(reply string) string {
	body, ok := strings.CutSuffix(reply, ".\n")
	if !ok || body == "" {
		return reply
	}
	lines := strings.SplitAfter(body, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		lines[i] = fdRE.ReplaceAllString(l, "* ")
	}
	sort.Strings(lines)
	return strings.Join(lines, "") + ".\n"
}
