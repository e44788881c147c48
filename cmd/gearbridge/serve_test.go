package main

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestServeFlagsTakeGearmandSpellings(t *testing.T) {
	f, err := parseServeFlags([]string{"-p", "4799", "-L", "127.0.0.1", "--job-retries=3", "--log-file", "/dev/stderr",
		"--verbose", "debug", "--grab-hold", "250ms", "--threads", "4", "--config-file=/dev/null", "-P", "/tmp/pid"})
	if err != nil {
		t.Fatal(err)
	}
	if f.port != 4799 || f.listen != "127.0.0.1" || f.jobRetries != 3 || f.verbose != "DEBUG" || f.pidFile != "/tmp/pid" ||
		f.grabHold != 250*time.Millisecond {
		t.Fatalf("%+v", f)
	}
	if f.durability != "sync" || f.db != "./gearbridge.db" || f.http != "127.0.0.1:4800" {
		t.Fatalf("defaults: %+v", f)
	}
}

func TestServeFlagsRejectNonsense(t *testing.T) {
	for _, args := range [][]string{
		{"--durability", "maybe"},
		{"--restore-foreground", "keep"},
		{"--port", "70000"},
		{"--max-packet", "0"},
		{"--job-retries", "-1"},
		{"--verbose", "LOUD"},
		{"--grab-hold", "1s"},
		{"--grab-hold", "-1ms"},
		{"--busy-poll", "-1us"},
		{"--event-loops", "-1"},
		{"--event-loops", "2", "--event-loop=false"},
		{"--max-connections", "-5"},
		{"extra-arg"},
		{"--no-such-flag"},
	} {
		_, err := parseServeFlags(args)
		var u usageError
		if !errors.As(err, &u) {
			t.Errorf("%q: want a usage error, got %v", args, err)
		}
	}
}

func TestLoopbackAddrForWildcardListeners(t *testing.T) {
	for addr, want := range map[string]string{
		"0.0.0.0:4730":   "127.0.0.1:4730",
		"[::]:4730":      "127.0.0.1:4730",
		"10.1.2.3:4730":  "10.1.2.3:4730",
		"127.0.0.1:4731": "127.0.0.1:4731",
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := loopbackAddr(tcp); got != want {
			t.Errorf("%s: %s, want %s", addr, got, want)
		}
	}
}

func TestPrintStatusAlignsColumns(t *testing.T) {
	var b bytes.Buffer
	if err := printStatus(&b, []string{"build:a-long-name\t3\t1\t2", "x\t0\t0\t0"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "FUNCTION") {
		t.Fatalf("%q", b.String())
	}
	if strings.Index(lines[1], "3") != strings.Index(lines[2], "0") {
		t.Fatalf("columns not aligned:\n%s", b.String())
	}
}

func TestUnknownCommandIsAUsageError(t *testing.T) {
	err := run([]string{"frobnicate"})
	if exitCode(err) != 2 {
		t.Fatalf("exit code %d for %v", exitCode(err), err)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, "512MiB": 512 << 20, "2GiB": 2 << 30, "64KiB": 64 << 10,
		"1.5GB": 1_500_000_000, "256M": 256 << 20, "3g": 3 << 30, "100B": 100,
	} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1MiB", "ten", "1XB"} {
		if _, err := parseByteSize(bad); err == nil {
			t.Errorf("parseByteSize(%q) accepted", bad)
		}
	}
	if d := defaultBufferMemory(); d < 64<<20 {
		t.Errorf("default buffer memory %d", d)
	}
}

func TestRedactHidesURLPasswords(t *testing.T) {
	for in, want := range map[string]string{
		"https://gb:tok3n@jenkins.example.org/job/x": "https://gb:xxxxx@jenkins.example.org/job/x",
		`Get "http://u:p%40ss@h:8080/api": EOF`:      `Get "http://u:xxxxx@h:8080/api": EOF`,
		"a=http://u:@h b=https://x:y@z/":             "a=http://u:xxxxx@h b=https://x:xxxxx@z/",
		"https://jenkins.example.org/ user@host":     "https://jenkins.example.org/ user@host",
		"mailto:someone@example.org":                 "mailto:someone@example.org",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// A non-loopback HTTP address needs a token (or --http-insecure), and the
// message names the fix; TLS flags come in their pairs and need --ssl.
func TestServeFlagsGuardTheNetwork(t *testing.T) {
	for _, args := range [][]string{
		{"--http", "0.0.0.0:4731"},
		{"--http", ":4731"},
		{"--http", "[::]:4731"},
		{"--ssl-certificate", "/etc/x.pem"},
		{"--ssl-ca-file", "/etc/ca.pem"},
		{"--http-tls-cert", "/etc/x.pem"},
		{"--ssl", "--event-loops", "2"},
	} {
		_, err := parseServeFlags(args)
		var u usageError
		if !errors.As(err, &u) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
		if args[1] == "0.0.0.0:4731" && (err == nil || !strings.Contains(err.Error(), "--http-token-file") || !strings.Contains(err.Error(), "--http-insecure")) {
			t.Errorf("the message does not name the fixes: %v", err)
		}
	}
	for _, args := range [][]string{
		{"--http", "0.0.0.0:4731", "--http-insecure"},
		{"--http", "0.0.0.0:4731", "--http-token-file", "/etc/token"},
		{"--http", "localhost:4731"},
		{"--http", "[::1]:4731"},
		{"--http", "127.0.0.2:4731"},
		{"--http", ""},
		{"--ssl", "--ssl-certificate", "c", "--ssl-key", "k", "--ssl-ca-file", "ca"},
		{"--http-tls-cert", "c", "--http-tls-key", "k"},
	} {
		if _, err := parseServeFlags(args); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
}
