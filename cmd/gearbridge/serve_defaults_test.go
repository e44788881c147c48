package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's `make run ARGS="--port 4731"` must not collide with the HTTP
// side: unless --http is given, it follows --port.
func TestServeHTTPAddressFollowsThePort(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "127.0.0.1:4731"},
		{[]string{"--port", "4731"}, "127.0.0.1:4732"},
		{[]string{"-p", "5000"}, "127.0.0.1:5001"},
		{[]string{"--port", "0"}, "127.0.0.1:0"},
		{[]string{"--port", "4731", "--http", "127.0.0.1:9000"}, "127.0.0.1:9000"},
		{[]string{"--port", "4731", "--http", ""}, ""},
		{[]string{"--port", "4731", "-L", "10.0.0.1", "--http", "127.0.0.1:4731"}, "127.0.0.1:4731"},
	} {
		f, err := parseServeFlags(c.args)
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if f.http != c.want {
			t.Errorf("%q: --http %q, want %q", c.args, f.http, c.want)
		}
	}
	for _, args := range [][]string{
		{"--port", "4731", "--http", "127.0.0.1:4731"},
		{"--port", "4731", "--http", ":4731"},
		{"--port", "65535"},
		{"--http", "no-port"},
	} {
		_, err := parseServeFlags(args)
		var u usageError
		if !errors.As(err, &u) {
			t.Errorf("%q: want a usage error, got %v", args, err)
		}
	}
}

func TestServeLogFormat(t *testing.T) {
	if f, err := parseServeFlags(nil); err != nil || f.logFormat != "text" {
		t.Fatalf("default: %+v %v", f, err)
	}
	var u usageError
	if _, err := parseServeFlags([]string{"--log-format", "xml"}); !errors.As(err, &u) {
		t.Fatalf("--log-format xml: %v", err)
	}
	for format, check := range map[string]func(line string) bool{
		"json": func(line string) bool {
			var rec map[string]any
			return json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "hello" && rec["level"] == "INFO" && rec["n"] == float64(1)
		},
		"text": func(line string) bool { return strings.Contains(line, "level=INFO msg=hello n=1") },
	} {
		f, err := parseServeFlags([]string{"--log-format", format})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "log")
		log, closer, err := openLog(path, "INFO", f.logFormat)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("hello", "n", 1)
		log.Debug("not at INFO")
		closer.Close()
		out, _ := os.ReadFile(path)
		lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
		if len(lines) != 1 || !check(string(lines[0])) {
			t.Errorf("%s: %q", format, out)
		}
	}
}
