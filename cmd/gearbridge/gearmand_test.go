package main

import (
	"errors"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// gearmandHelpOption matches an option line of `gearmand --help`:
// "  -p [ --port ] arg" or "  --ssl".
var gearmandHelpOption = regexp.MustCompile(`^  (?:-(\w) \[ )?--([a-z0-9-]+)`)

// Every option `gearmand --help` lists is in the table (and so in the
// README), with the same short spelling, and the table has no other.
func TestGearmandOptionTableMatchesGearmandHelp(t *testing.T) {
	bin, err := exec.LookPath("gearmand")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("gearmand not available (apt-get install gearman-job-server): %v", err)
		}
		t.Skipf("gearmand not available (apt-get install gearman-job-server): %v", err)
	}
	out, _ := exec.Command(bin, "--help").CombinedOutput() // exits 1 after the help
	listed := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if m := gearmandHelpOption.FindStringSubmatch(line); m != nil {
			listed[m[2]] = m[1]
		}
	}
	if len(listed) < 40 {
		t.Fatalf("only %d options in gearmand --help:\n%s", len(listed), out)
	}
	inTable := map[string]bool{}
	for _, o := range gearmandOptions {
		inTable[o.long] = true
		short, ok := listed[o.long]
		switch {
		case !ok:
			t.Errorf("--%s is in the table but not in gearmand --help", o.long)
		case short != o.short:
			t.Errorf("--%s: short spelling %q in the table, %q in gearmand --help", o.long, o.short, short)
		}
	}
	for long := range listed {
		if !inTable[long] {
			t.Errorf("gearmand --help lists --%s, which the table lacks", long)
		}
	}
}

// Each option does what the table says, in its long and short spelling:
// honoured ones parse quietly, ignored ones parse with a warning naming
// them, refused ones fail with the reason.
func TestGearmandOptionsBehaveAsTheTableSays(t *testing.T) {
	for _, o := range gearmandOptions {
		spellings := [][]string{{"--" + o.long}}
		if o.short != "" {
			spellings = append(spellings, []string{"-" + o.short})
		}
		for _, args := range spellings {
			if o.arg != "" {
				args = append(args, o.arg)
			}
			if strings.HasPrefix(o.long, "ssl-") {
				args = append(args, "--ssl") // they need it
			}
			f, err := parseServeFlags(args)
			if o.long == "help" {
				if !errors.Is(err, flag.ErrHelp) {
					t.Errorf("%v: %v, want help", args, err)
				}
				continue
			}
			switch o.status {
			case honoured:
				if err != nil {
					t.Errorf("%v (honoured): %v", args, err)
				} else if len(f.warnings) > 0 {
					t.Errorf("%v (honoured): warnings %q", args, f.warnings)
				}
			case ignored:
				if err != nil {
					t.Errorf("%v (ignored): %v", args, err)
				} else if len(f.warnings) != 1 || !strings.Contains(f.warnings[0], "--"+o.long) || !strings.Contains(f.warnings[0], o.note) {
					t.Errorf("%v (ignored): warnings %q", args, f.warnings)
				}
			case refused:
				if err == nil || !strings.Contains(err.Error(), "--"+o.long) || !strings.Contains(err.Error(), o.note) {
					t.Errorf("%v (refused): %v", args, err)
				} else if exitCode(err) != 2 {
					t.Errorf("%v: exit status %d, want 2", args, exitCode(err))
				}
			default:
				t.Errorf("--%s: status %q", o.long, o.status)
			}
		}
	}
}

func TestQueueTypeBuiltinOnly(t *testing.T) {
	for _, v := range []string{"builtin", "BUILTIN"} {
		if _, err := parseServeFlags([]string{"-q", v}); err != nil {
			t.Errorf("-q %s: %v", v, err)
		}
	}
	for _, v := range []string{"libsqlite3", "MySQL", "redis"} {
		_, err := parseServeFlags([]string{"--queue-type=" + v})
		if err == nil || !strings.Contains(err.Error(), "durable store (--db") {
			t.Errorf("-q %s: %v", v, err)
		}
	}
}

// A gearmand --config-file: options as on the command line, several on a
// line or one per line; the command line overrides them.
func TestConfigFileInGearmandFormat(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "gearmand.conf")
	if err := os.WriteFile(conf, []byte("# gearmand options\n--port=4799 -j 3\n--verbose DEBUG\n--keepalive\n--keepalive-idle=60\n-L 127.0.0.1\n--threads=8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--config-file", conf, "--port", "4800"},
		{"--config-file=" + conf, "-p", "4800"},
		{"@" + conf, "--port=4800"},
		{"--port=4800", "--config-file", conf}, // the command line wins wherever the file is named
	} {
		f, err := parseServeFlags(args)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if f.port != 4800 || f.jobRetries != 3 || f.verbose != "DEBUG" || f.listen != "127.0.0.1" || f.keepaliveIdle != 60 {
			t.Errorf("%v: port %d retries %d verbose %s listen %s keepalive-idle %d", args, f.port, f.jobRetries, f.verbose, f.listen, f.keepaliveIdle)
		}
		if len(f.warnings) != 1 || !strings.Contains(f.warnings[0], "--threads") {
			t.Errorf("%v: warnings %q", args, f.warnings)
		}
	}
	if _, err := parseServeFlags([]string{"--config-file", filepath.Join(dir, "missing.conf")}); err == nil || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("--port=1\n-q libsqlite3 --libsqlite3-db=/var/lib/gearman/q.db\n"), 0o644)
	if _, err := parseServeFlags([]string{"--config-file", bad}); err == nil || !strings.Contains(err.Error(), "libsqlite3") {
		t.Errorf("a libsqlite3 queue in the file: %v", err)
	}
}

func TestVersionFlags(t *testing.T) {
	for _, args := range [][]string{{"-V"}, {"--version"}, {"serve", "-V"}, {"version"}} {
		if err := run(args); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// Subcommands' --help is not a usage error.
func TestSubcommandHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"status", "--help"}, {"check-config", "--help"}, {"serve", "--help"}, {"check", "-h"}} {
		if err := run(args); exitCode(err) != 0 {
			t.Errorf("%v: exit status %d (%v)", args, exitCode(err), err)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("masters:\n  - name: jenkins01\n    url: http://jenkins.example/\n"), 0o644)
	if err := run([]string{"check-config", good}); err != nil {
		t.Errorf("valid config: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("masters:\n  - name: jenkins01\n    url: ftp://jenkins.example/\n    poll_interval: 1ms\n"), 0o644)
	err := run([]string{"check-config", bad})
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "not an http(s) URL") || !strings.Contains(err.Error(), "poll_interval") {
		t.Errorf("invalid config: exit %d: %v", exitCode(err), err)
	}
	if err := run([]string{"check-config"}); exitCode(err) != 2 {
		t.Errorf("no file: exit %d: %v", exitCode(err), err)
	}
}

// --syslog sends each line to syslog as one message with the level's
// priority, facility daemon, tag gearbridge.
func TestSyslogGetsLinesWithTheirPriority(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	pc, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Skipf("no unix datagram sockets: %v", err)
	}
	defer pc.Close()
	syslogNetwork, syslogAddr = "unixgram", sock
	defer func() { syslogNetwork, syslogAddr = "", "" }()
	f, err := parseServeFlags([]string{"--syslog", "--verbose", "INFO"})
	if err != nil {
		t.Fatal(err)
	}
	log, closer, err := openServeLog(f)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	log.With("master", "jenkins01").Warn("Jenkins master unreachable", "err", "connection refused")
	log.Debug("not at INFO")
	log.Error("store failed")
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for _, want := range []string{
		"<28>", // daemon (3<<3) | warning (4)
		"<27>", // daemon | err (3)
	} {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, want) || !strings.Contains(msg, "gearbridge[") {
			t.Errorf("syslog message %q, want priority %s and tag gearbridge", msg, want)
		}
		if want == "<28>" && !strings.Contains(msg, `level=WARN msg="Jenkins master unreachable" master=jenkins01 err="connection refused"`) {
			t.Errorf("syslog message %q", msg)
		}
		if strings.Contains(msg, "time=") {
			t.Errorf("syslog message %q carries its own time", msg)
		}
	}
}
