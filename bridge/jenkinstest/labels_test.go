package jenkinstest_test

import (
	"net/url"
	"reflect"
	"sort"
	"testing"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
)

func TestParseLabel(t *testing.T) {
	tests := []struct {
		expr  string
		atoms []string
		str   string
	}{
		{"linux", []string{"linux"}, "linux"},
		{"linux && ubuntu", []string{"linux", "ubuntu"}, "linux&&ubuntu"},
		{"a||b&&c", []string{"a", "b", "c"}, "a||b&&c"},
		{"!linux", []string{"linux"}, "!linux"},
		{"(a || b) && !c", []string{"a", "b", "c"}, "(a||b)&&!c"},
		{"a -> b <-> c", []string{"a", "b", "c"}, "a->b<->c"},
		{`"python 2.4" && x`, []string{"python 2.4", "x"}, `"python 2.4"&&x`},
		{`"say \"hi\""`, []string{`say "hi"`}, `"say \"hi\""`},
		{"python-2.4", []string{"python-2.4"}, "python-2.4"},
		{"a->b", []string{"a", "b"}, "a->b"},
		{"a && a", []string{"a"}, "a&&a"},
		{"bare-precise || bare-trusty", []string{"bare-precise", "bare-trusty"}, "bare-precise||bare-trusty"},
		{"x=1", []string{"x=1"}, "x=1"},
	}
	for _, tc := range tests {
		l, err := jenkinstest.ParseLabel(tc.expr)
		if err != nil {
			t.Errorf("ParseLabel(%q): %v", tc.expr, err)
			continue
		}
		if got := l.Atoms(); !reflect.DeepEqual(got, tc.atoms) {
			t.Errorf("ParseLabel(%q).Atoms() = %q, want %q", tc.expr, got, tc.atoms)
		}
		if got := l.String(); got != tc.str {
			t.Errorf("ParseLabel(%q).String() = %q, want %q", tc.expr, got, tc.str)
		}
	}
	for _, bad := range []string{"", "  ", "a &&", "&& a", "a & b", "a | b", "(a", "a)", "!!a", `"open`, "a b", "a < b", "'a'"} {
		if _, err := jenkinstest.ParseLabel(bad); err == nil {
			t.Errorf("ParseLabel(%q) succeeded, want an error", bad)
		}
	}
}

func TestLabelMatching(t *testing.T) {
	m := func(labels ...string) map[string]bool {
		out := map[string]bool{}
		for _, l := range labels {
			out[l] = true
		}
		return out
	}
	tests := []struct {
		expr string
		on   map[string]bool
		want bool
	}{
		{"a", m("a"), true},
		{"a", m("b"), false},
		{"!a", m("b"), true},
		{"a && b", m("a"), false},
		{"a || b", m("b"), true},
		{"a -> b", m(), true},
		{"a -> b", m("a"), false},
		{"a <-> b", m(), true},
		{"a <-> b", m("b"), false},
		{"a || b && c", m("a"), true}, // && binds tighter
		{"(a || b) && c", m("a"), false},
		{"a -> b -> c", m("a"), true},   // left-assoc: (a->b)->c
		{"a <-> b -> c", m("c"), false}, // -> binds tighter than <->
	}
	for _, tc := range tests {
		l, err := jenkinstest.ParseLabel(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Matches(tc.on); got != tc.want {
			t.Errorf("%q on %v = %v, want %v", tc.expr, tc.on, got, tc.want)
		}
	}
}

// TestLabelNodesOverHTTP asks /label/<expr>/api/json which nodes match, as
// the bridge does, so the table holds for a real Jenkins with these nodes.
func TestLabelNodesOverHTTP(t *testing.T) {
	e := jenkinstest.New(t)
	mustNode(t, e, jenkinstest.NodeSpec{Name: "a", Labels: []string{"linux", "ubuntu", "gcc"}})
	mustNode(t, e, jenkinstest.NodeSpec{Name: "b", Labels: []string{"linux", "python-2.4"}})
	mustNode(t, e, jenkinstest.NodeSpec{Name: "c", Labels: []string{"windows"}, Mode: jenkinstest.Exclusive})
	c := newClient(t, e.URL, "", "")
	tests := []struct {
		expr string
		want []string // "" is the built-in node
	}{
		{"linux", []string{"a", "b"}},
		{"linux && ubuntu", []string{"a"}},
		{"linux&&ubuntu", []string{"a"}},
		{"linux || windows", []string{"a", "b", "c"}},
		{"!linux", []string{"", "c"}},
		{"linux -> ubuntu", []string{"", "a", "c"}},
		{"linux <-> ubuntu", []string{"", "a", "c"}},
		{"(linux || windows) && !ubuntu", []string{"b", "c"}},
		{"c || linux && ubuntu", []string{"a", "c"}},
		{"linux -> ubuntu -> gcc", []string{"a", "b"}},
		{"!linux && !windows", []string{""}},
		{"a", []string{"a"}},            // self label
		{"built-in", []string{""}},      // the built-in node's self label
		{`"python-2.4"`, []string{"b"}}, // quoted atom
		{"python-2.4", []string{"b"}},   // '-' not followed by '>' is part of an atom
		{"bogus", nil},                  // no such label
		{"!!linux", nil},                // does not parse: taken as one atom
	}
	for _, tc := range tests {
		m := c.json("/label/" + url.PathEscape(tc.expr) + "/api/json?tree=nodes[nodeName]")
		var got []string
		for _, n := range m["nodes"].([]any) {
			got = append(got, n.(map[string]any)["nodeName"].(string))
		}
		sort.Strings(got)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("label %q matches %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func mustNode(t testing.TB, e *jenkinstest.Emulator, spec jenkinstest.NodeSpec) {
	t.Helper()
	if err := e.AddNode(spec); err != nil {
		t.Fatal(err)
	}
}

func mustJob(t testing.TB, e *jenkinstest.Emulator, spec jenkinstest.JobSpec) {
	t.Helper()
	if err := e.AddJob(spec); err != nil {
		t.Fatal(err)
	}
}
