package bridge

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Reload tells a master whose settings, token or job servers changed from
// one that stays as it is.
func TestReloadDiffsMasters(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	write := func(s string) {
		if err := os.WriteFile(token, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("t1")
	parse := func(yaml string) *Config {
		t.Helper()
		c, err := ParseConfig([]byte(yaml), "test")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := "  - name: a\n    url: http://a.example/\n    user: u\n    token_file: " + token + "\n"
	b := "  - name: b\n    url: http://b.example/\n"
	br := New(parse("masters:\n"+a), Options{Embedded: "127.0.0.1:4730"})
	for _, step := range []struct {
		before func()
		yaml   string
		want   string
	}{
		{nil, "masters:\n" + a, "{[] [] [] [a]}"},
		{nil, "masters:\n" + a + b, "{[b] [] [] [a]}"},
		{func() { write("t2") }, "masters:\n" + a + b, "{[] [] [a] [b]}"},
		{nil, "masters:\n" + a + b + "    poll_interval: 1s\n", "{[] [] [b] [a]}"},
		{nil, "gearman:\n  servers: [\"127.0.0.1:4731\"]\nmasters:\n" + a + b + "    poll_interval: 1s\n", "{[] [] [a b] []}"},
		{nil, "gearman:\n  servers: [\"127.0.0.1:4731\"]\nmasters:\n" + b + "    poll_interval: 1s\n", "{[] [a] [] [b]}"},
		{nil, "", "{[] [b] [] []}"},
	} {
		if step.before != nil {
			step.before()
		}
		res, err := br.Reload(parse(step.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(res); got != step.want {
			t.Errorf("reload to\n%s: %s, want {added removed changed unchanged} %s", step.yaml, got, step.want)
		}
	}
}
