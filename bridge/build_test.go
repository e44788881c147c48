package bridge

import (
	"errors"
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
