package bridge

import (
	"encoding/json"
	"errors"
	"net"
	"syscall"
	"testing"
)

func TestParseParameters(t *testing.T) {
	got, err := parseParameters([]byte(`{"ZUUL_UUID":"abc","N":3,"F":1.5,"B":true,"Z":null}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ZUUL_UUID": "abc", "N": "3", "F": "1.5", "B": "true", "Z": ""}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if p, err := parseParameters(nil); err != nil || len(p) != 0 {
		t.Fatalf("empty payload: %v %v", p, err)
	}
	for _, bad := range []string{`[1,2]`, `{"a":{"b":1}}`, `{"a":[1]}`, `not json`} {
		var f *jobFailure
		if _, err := parseParameters([]byte(bad)); !errors.As(err, &f) {
			t.Errorf("%s: want a job failure, got %v", bad, err)
		}
	}
}

func TestQueueItemID(t *testing.T) {
	for loc, want := range map[string]int64{
		"http://j:8080/queue/item/42/":           42,
		"https://j/ci/queue/item/7":              7,
		"http://other-host/prefix/queue/item/9/": 9,
	} {
		if got, err := queueItemID(loc); err != nil || got != want {
			t.Errorf("%s: %d %v", loc, got, err)
		}
	}
	for _, bad := range []string{"", "http://j/job/x/", "http://j/queue/item/abc/"} {
		if _, err := queueItemID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestJobPathEscapesEachFolder(t *testing.T) {
	if got := jobPath("folder one/sub/my job"); got != "job/folder%20one/job/sub/job/my%20job/" {
		t.Fatalf("got %s", got)
	}
}

// hasParameters reads parameter values as Jenkins exports them: strings,
// and booleans as JSON booleans; the job's values come from the payload
// as text (parseParameters).
func TestHasParameters(t *testing.T) {
	var actions []parametersJSON
	err := json.Unmarshal([]byte(`[{"_class":"hudson.model.ParametersAction","parameters":[
		{"name":"ZUUL_UUID","value":"abc"},{"name":"B","value":true},{"name":"N","value":3},{"name":"DEFAULTED","value":"d"}]},
		{"_class":"hudson.model.CauseAction"}]`), &actions)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		want map[string]string
		ok   bool
	}{
		{map[string]string{"ZUUL_UUID": "abc"}, true},
		{map[string]string{"ZUUL_UUID": "abc", "B": "true", "N": "3"}, true},
		{map[string]string{"ZUUL_UUID": "abd"}, false},
		{map[string]string{"B": "false"}, false},
		{map[string]string{"MISSING": ""}, false},
	} {
		if got := hasParameters(actions, c.want); got != c.ok {
			t.Errorf("hasParameters(%v) = %v, want %v", c.want, got, c.ok)
		}
	}
}

// After these failures a trigger may have reached Jenkins, so the bridge
// looks for its build before it fails the job or posts again.
func TestMayHaveQueued(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, false},
		{&httpError{Status: 502}, true},
		{&httpError{Status: 504}, true},
		{&httpError{Status: 503}, false},
		{&httpError{Status: 500}, false},
	} {
		if got := mayHaveQueued(c.err); got != c.want {
			t.Errorf("mayHaveQueued(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
