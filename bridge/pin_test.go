package bridge

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func TestTriggerOptionDefaultsToRESTAndIsChecked(t *testing.T) {
	cfg, err := ParseConfig([]byte("masters:\n  - name: a\n    url: http://a/\n  - name: b\n    url: http://b/\n    trigger: script\n    allow_unpinned: true\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Masters[0].Trigger != triggerREST || cfg.Masters[1].Trigger != triggerScript || !cfg.Masters[1].AllowUnpinned {
		t.Fatalf("%+v", cfg.Masters)
	}
	_, err = ParseConfig([]byte("masters:\n  - name: a\n    url: http://a/\n    trigger: groovy\n"), "x")
	if err == nil || !strings.Contains(err.Error(), `trigger "groovy" is neither "rest" nor "script"`) {
		t.Fatalf("error %v", err)
	}
}

func TestPinParamPrefersTheNamedOne(t *testing.T) {
	p := &project{params: []string{"A", "LBL", "NODE"}, paramClasses: map[string]string{
		"A": "hudson.model.StringParameterDefinition", "LBL": labelParamClass, "NODE": nodeParamClass}}
	m := &master{}
	if name, label := m.pinParam(p); name != "LBL" || !label {
		t.Fatalf("found %q %v, want the first NodeLabel parameter, LBL (a label)", name, label)
	}
	m.cfg.NodeParameter = "NODE"
	if name, label := m.pinParam(p); name != "NODE" || label {
		t.Fatalf("node_parameter: %q %v", name, label)
	}
	m.cfg.NodeParameter = "MISSING"
	if name, _ := m.pinParam(&project{params: []string{"A"}}); name != "" {
		t.Fatalf("pinned by %q without a NodeLabel parameter", name)
	}
}

func TestLabelAtomExprQuotesOperators(t *testing.T) {
	for in, want := range map[string]string{
		"b-trusty.1": "b-trusty.1",
		"built-in":   "built-in",
		"a&&b":       `"a&&b"`,
		"x y":        `"x y"`,
		`q"`:         `"q\""`,
	} {
		if got := labelAtomExpr(in); got != want {
			t.Errorf("labelAtomExpr(%q) = %s, want %s", in, got, want)
		}
	}
}

// The request travels as base64 JSON: no value, however odd, can change
// the Groovy source, which is the template with one base64 blob in it.
func TestTriggerScriptCarriesValuesAsBase64(t *testing.T) {
	req := triggerScriptRequest{Project: "f/p", Node: "n", Parameters: map[string]string{"X": "'); System.exit(1); ('", "Y": "${x}\n\"\\"}}
	script, err := renderTriggerScript(req)
	if err != nil {
		t.Fatal(err)
	}
	prefix, suffix, _ := strings.Cut(triggerScriptTemplate, "%s")
	if !strings.HasPrefix(script, prefix) || !strings.HasSuffix(script, suffix) {
		t.Fatal("the script is not the template")
	}
	blob := strings.TrimSuffix(strings.TrimPrefix(script, prefix), suffix)
	raw, err := base64.StdEncoding.DecodeString(blob)
	if err != nil {
		t.Fatalf("blob %q: %v", blob, err)
	}
	var back triggerScriptRequest
	if err := json.Unmarshal(raw, &back); err != nil || back.Parameters["X"] != req.Parameters["X"] || back.Parameters["Y"] != req.Parameters["Y"] {
		t.Fatalf("decoded %+v, %v", back, err)
	}
	if strings.Count(triggerScriptTemplate, "%s") != 1 || strings.Count(triggerScriptTemplate, "%") != 1 {
		t.Fatal("the template must have exactly one placeholder")
	}
}

func TestParseScriptOutput(t *testing.T) {
	for out, want := range map[string]struct {
		id     int64
		merged bool
		err    string
	}{
		"gearbridge-queue-item: 42 created\n":                    {id: 42},
		"some noise\ngearbridge-queue-item: 7 existing\r\n":      {id: 7, merged: true},
		"gearbridge-error: project f/p is disabled\n":            {err: "project f/p is disabled"},
		"groovy.lang.MissingPropertyException: No such property": {err: "the script console did not run the trigger script"},
		"":                                  {err: "did not run"},
		"gearbridge-queue-item: 42 maybe\n": {err: "did not run"},
	} {
		id, merged, err := parseScriptOutput(out)
		switch {
		case want.err != "" && (err == nil || !strings.Contains(err.Error(), want.err)):
			t.Errorf("%q: error %v, want %q", out, err, want.err)
		case want.err == "" && (err != nil || id != want.id || merged != want.merged):
			t.Errorf("%q: %d %v %v, want %d %v", out, id, merged, err, want.id, want.merged)
		}
	}
}
