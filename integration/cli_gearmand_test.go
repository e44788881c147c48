package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

func TestCLI_VersionFlagExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-V"}} {
		out, err := runWithin(t, exec.Command(GearbridgeBinary(t), args...), 30*time.Second)
		if err != nil || !strings.HasPrefix(string(out), "gearbridge ") {
			t.Errorf("gearbridge %v: %v: %s", args, err, out)
		}
	}
}

// logrotate moves the log file away and sends SIGHUP: the server carries
// on, and its next lines go to a new file of the old name.
func TestCLI_SIGHUPReopensTheLogFile(t *testing.T) {
	s := StartGearbridge(t)
	rotated := s.LogPath + ".1"
	must(t, os.Rename(s.LogPath, rotated))
	must(t, syscall.Kill(s.Pid(), syscall.SIGHUP))
	eventually(t, 10*time.Second, "a new log file with the reopen line", func() bool {
		data, err := os.ReadFile(s.LogPath)
		return err == nil && strings.Contains(string(data), "reopened the log file")
	})
	select {
	case <-s.Exited():
		t.Fatalf("the server exited on SIGHUP: %s", s.output())
	default:
	}
	c := Dial(t, s.Addr)
	if got := c.Admin("version\n"); !strings.HasPrefix(got, "OK ") {
		t.Fatalf("after SIGHUP: version answered %q", got)
	}
	if data := readFile(t, rotated); strings.Contains(data, "reopened") {
		t.Errorf("the rotated file got lines after SIGHUP:\n%s", data)
	}
}

// An empty bridge configuration starts, with a warning: the bridge does
// nothing until masters are added.
func TestCLI_EmptyConfigIsWarnedAbout(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "gearbridge.yaml")
	must(t, os.WriteFile(cfg, nil, 0o644))
	s := StartGearbridge(t, "--config", cfg)
	eventually(t, 10*time.Second, "the warning", func() bool {
		return strings.Contains(readFile(t, s.LogPath), "names no Jenkins masters")
	})
}

// SIGHUP reloads the bridge configuration while builds run: a master is
// added, another removed while its builds are in flight, a broken file is
// refused and the running configuration kept. Every job ends once with
// its result, and Jenkins runs one build per job.
func TestCLI_SIGHUPReloadsTheBridgeUnderLoad(t *testing.T) {
	a, b := newJenkins(t), newJenkins(t)
	dir := t.TempDir()
	entry := map[string]string{}
	for name, e := range map[string]*jenkinstest.Emulator{"jenkinsA": a, "jenkinsB": b} {
		must(t, e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 2}))
		must(t, e.AddJob(jenkinstest.JobSpec{Name: "job", Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}, Duration: 400 * time.Millisecond}))
		tokenFile := filepath.Join(dir, name+".token")
		must(t, os.WriteFile(tokenFile, []byte(e.AddUser("gearbridge", "secret")), 0o600))
		entry[name] = fmt.Sprintf("  - name: %s\n    url: %s\n    user: gearbridge\n    token_file: %s\n    poll_interval: 200ms\n", name, e.URL, tokenFile)
	}
	cfg := filepath.Join(dir, "gearbridge.yaml")
	write := func(text string) { must(t, os.WriteFile(cfg, []byte(text), 0o644)) }
	write("masters:\n" + entry["jenkinsA"])
	s := StartGearbridge(t, "--config", cfg)
	hup := func() { must(t, syscall.Kill(s.Pid(), syscall.SIGHUP)) }
	workers := func(fn string) string {
		if st := statusFunctions(t, s.Addr)[fn]; len(st) == 3 {
			return st[2]
		}
		return "-"
	}
	eventually(t, 10*time.Second, "A registered", func() bool { return workers("build:job") == "2" && workers("stop:jenkinsA") == "1" })

	var jobs []*zuulClient
	var handles []string
	submit := func(n int) {
		for range n {
			c := &zuulClient{Dial(t, s.Addr)}
			u := fmt.Sprintf("u%03d", len(jobs)+1)
			handles = append(handles, c.submit(protocol.SubmitJob, "build:job", u, map[string]string{"ZUUL_UUID": u}))
			jobs = append(jobs, c)
		}
	}
	submit(8)
	eventually(t, 10*time.Second, "builds on A", func() bool { return len(a.RunningBuilds()) > 0 })

	write("masters:\n" + entry["jenkinsA"] + entry["jenkinsB"])
	hup()
	eventually(t, 10*time.Second, "B added", func() bool { return workers("stop:jenkinsB") == "1" && workers("build:job") == "4" })
	submit(8)

	write("masters:\n  - name: broken\n    url: ftp://nowhere/\n")
	hup()
	eventually(t, 10*time.Second, "the broken file refused", func() bool {
		return strings.Contains(readFile(t, s.LogPath), "the running one is kept")
	})
	if workers("stop:jenkinsA") != "1" || workers("stop:jenkinsB") != "1" {
		t.Fatalf("a refused reload changed the masters: status %v", statusFunctions(t, s.Addr))
	}

	eventually(t, 10*time.Second, "builds on A before it goes", func() bool { return len(a.RunningBuilds()) > 0 })
	write("masters:\n" + entry["jenkinsB"])
	hup()
	submit(8)
	eventually(t, 20*time.Second, "A's workers gone", func() bool { return workers("stop:jenkinsA") == "0" && workers("build:job") == "2" })
	afterRemoval := len(a.Builds("job"))

	for i, c := range jobs {
		res := c.wait(handles[i], 60*time.Second)
		if res.final != protocol.WorkComplete || res.data["result"] != "SUCCESS" {
			t.Fatalf("job %d: %v %v %q", i+1, res.packets, res.data, res.reason)
		}
	}
	if n := len(a.Builds("job")); n != afterRemoval {
		t.Errorf("A started %d builds after it was removed", n-afterRemoval)
	}
	var uuids []string
	for _, e := range []*jenkinstest.Emulator{a, b} {
		for _, rec := range e.Builds("job") {
			uuids = append(uuids, rec.Params["ZUUL_UUID"])
		}
	}
	slices.Sort(uuids)
	if len(uuids) != len(jobs) || len(slices.Compact(slices.Clone(uuids))) != len(jobs) {
		t.Fatalf("%d jobs ran as %d builds: %v", len(jobs), len(uuids), uuids)
	}
	if n := len(b.Builds("job")); n == 0 {
		t.Errorf("the added master B ran no build")
	}
}

// -u switches to the user once the listeners and files are open: the
// process then runs with the user's IDs and still serves.
func TestCLI_UserDropsPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	s := StartGearbridge(t, "--durability", "sync", "-u", "nobody")
	wants := []string{
		fmt.Sprintf("Uid:\t%s\t%s\t%s\t%s\n", nobody.Uid, nobody.Uid, nobody.Uid, nobody.Uid),
		fmt.Sprintf("Gid:\t%s\t%s\t%s\t%s\n", nobody.Gid, nobody.Gid, nobody.Gid, nobody.Gid),
	}
	// The listeners accept (in the kernel) before the switch, which comes
	// once the root-only files are open: poll for it.
	var status string
	switched := func() bool {
		status = readFile(t, fmt.Sprintf("/proc/%d/status", s.Pid()))
		for _, want := range wants {
			if !strings.Contains(status, want) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(10 * time.Second); !switched() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // polling the process's credentials
	}
	for _, want := range wants {
		if !strings.Contains(status, want) {
			t.Errorf("/proc/<pid>/status lacks %q:\n%s", want, status)
		}
	}
	// It serves, and the database it opened as root still takes jobs.
	c := Dial(t, s.Addr)
	c.Send(protocol.SubmitJobBg, "f", "u1", "x")
	if p := c.Read(); p.Type != protocol.JobCreated {
		t.Fatalf("submit as nobody: %v", p)
	}
}

// The same gearmand --config-file starts C gearmand and gearbridge alike:
// both listen where it says and report its verbosity.
func TestCLI_GearmandConfigFileStartsBoth(t *testing.T) {
	gearmand := NeedTool(t, GearmandPath)
	for _, kind := range []string{"gearmand", "gearbridge"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			port := freePort(t)
			conf := filepath.Join(dir, "gearmand.conf")
			must(t, os.WriteFile(conf, []byte(fmt.Sprintf("--listen=127.0.0.1 --port=%d\n--verbose=NOTICE\n--log-file=%s\n",
				port, filepath.Join(dir, "server.log"))), 0o644))
			var cmd *exec.Cmd
			if kind == "gearmand" {
				cmd = exec.Command(gearmand, "--config-file", conf, "--pid-file="+filepath.Join(dir, "pid"))
			} else {
				cmd = exec.Command(GearbridgeBinary(t), "--config-file", conf, "--http", "", "--durability", "none")
			}
			must(t, cmd.Start())
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			eventually(t, 10*time.Second, kind+" listening on the file's port", func() bool {
				c, err := net.Dial("tcp", addr)
				if err == nil {
					c.Close()
				}
				return err == nil
			})
			if got := Dial(t, addr).Admin("verbose\n"); got != "OK NOTICE\n" {
				t.Errorf("verbose: %q, want the file's NOTICE", got)
			}
		})
	}
}

// -d returns once the detached server is ready: it listens, its pid file
// names it, and it leads a session of its own. A start that fails is
// reported by the starting process.
func TestCLI_DaemonDetachesOnceReady(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	pidFile := filepath.Join(dir, "gearbridge.pid")
	args := []string{"-d", "--listen", "127.0.0.1", "--port", strconv.Itoa(port), "--http", "",
		"--db", filepath.Join(dir, "gearbridge.db"), "--log-file", filepath.Join(dir, "gearbridge.log"), "--pid-file", pidFile}
	out, err := runWithin(t, exec.Command(GearbridgeBinary(t), args...), 30*time.Second)
	if err != nil {
		t.Fatalf("gearbridge -d: %v: %s", err, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	})
	// Ready means serving: no waiting here.
	if got := Dial(t, fmt.Sprintf("127.0.0.1:%d", port)).Admin("getpid\n"); got != fmt.Sprintf("OK %d\n", pid) {
		t.Errorf("getpid: %q, want the pid file's %d", got, pid)
	}
	stat := strings.Fields(readFile(t, fmt.Sprintf("/proc/%d/stat", pid)))
	if len(stat) < 6 || stat[5] != strconv.Itoa(pid) {
		t.Errorf("the daemon does not lead its own session: /proc/%d/stat %v", pid, stat)
	}

	// The port is taken now: the second start fails, and says why.
	out, err = runWithin(t, exec.Command(GearbridgeBinary(t), "-d", "--listen", "127.0.0.1", "--port", strconv.Itoa(port), "--http", "",
		"--durability", "none", "--log-file", filepath.Join(dir, "second.log")), 30*time.Second)
	if err == nil || !strings.Contains(string(out), "listen on") {
		t.Errorf("second gearbridge -d on a taken port: %v: %s", err, out)
	}
}
