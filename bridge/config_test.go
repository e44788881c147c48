package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigDefaultsAndSecrets(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("J2_TOKEN", "env-token")
	cfg, err := ParseConfig([]byte(`
gearman:
  servers: ["127.0.0.1:4730", "gearman2:4730"]
masters:
  - name: jenkins01
    url: https://jenkins01.example.org/ci
    user: gb
    token_file: `+tokenFile+`
  - name: jenkins02
    url: http://jenkins02:8080/
    user: gb
    token_env: J2_TOKEN
    poll_interval: 2s
    node_parameter: NODE
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m1, m2 := cfg.Masters[0], cfg.Masters[1]
	if m1.token != "file-token" || m2.token != "env-token" {
		t.Fatalf("tokens %q %q", m1.token, m2.token)
	}
	if time.Duration(m1.PollInterval) != defaultPollInterval || time.Duration(m2.PollInterval) != 2*time.Second {
		t.Fatalf("poll intervals %v %v", m1.PollInterval, m2.PollInterval)
	}
	if m1.base.String() != "https://jenkins01.example.org/ci/" {
		t.Fatalf("base %s", m1.base)
	}
	if len(cfg.Gearman.Servers) != 2 || m2.NodeParameter != "NODE" {
		t.Fatalf("%+v", cfg)
	}
}

func TestParseConfigReportsEveryProblem(t *testing.T) {
	t.Setenv("SET_BUT_EMPTY", "")
	_, err := ParseConfig([]byte(`
masters:
  - url: http://a/
  - name: has space
    url: ftp://b/
  - name: twice
    url: http://c/
    user: u
    token_env: NOT_SET_ANYWHERE
  - name: twice
    url: http://d/
    token_env: SET_BUT_EMPTY
    token_file: /nonexistent
  - name: fast
    url: http://e/
    poll_interval: 1ms
gearman:
  servers: ["nohostport"]
`), "bad.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"masters[0]: name is missing",
		`master "has space": name must not contain whitespace`,
		`url "ftp://b/" is not an http(s) URL`,
		"environment variable NOT_SET_ANYWHERE is not set",
		"give token_file or token_env, not both",
		`master "twice": the name is used twice`,
		"poll_interval must be at least 100ms",
		`"nohostport" is not HOST:PORT`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestParseConfigRejectsUnknownKeysAndBadDurations(t *testing.T) {
	for _, bad := range []string{
		"masters:\n  - name: a\n    url: http://a/\n    tokn_env: X\n",
		"masters:\n  - name: a\n    url: http://a/\n    poll_interval: often\n",
		"masters: [\n",
	} {
		if _, err := ParseConfig([]byte(bad), "x.yaml"); err == nil || !strings.Contains(err.Error(), "x.yaml") {
			t.Errorf("%q: error %v should name the file", bad, err)
		}
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	t.Setenv("TOK", "s3cret-token")
	_, err := ParseConfig([]byte("masters:\n  - name: a\n    url: http://a/\n    token_env: TOK\n"), "x")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("want a missing-user error without the token, got %v", err)
	}
}

// A YAML syntax error is reported on its own line, not on the line where
// the enclosing block starts.
func TestParseConfigSyntaxErrorLine(t *testing.T) {
	data := "masters:\n  - name: a\n    url: http://jenkins.example/\n   poll_interval: 5s\n  - name: b\n"
	_, err := ParseConfig([]byte(data), "gearbridge.yaml")
	if err == nil || !strings.Contains(err.Error(), "line 4:") {
		t.Fatalf("error %v, want it on line 4", err)
	}
}
