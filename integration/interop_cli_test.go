package integration

// Interop with libgearman 1.1.20's command-line tools (gearman, gearadmin).
// Every test runs against C gearmand too, so a failure that happens on
// both servers points at the test, one on gearbridge alone at the server.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const cliTimeout = 20 * time.Second

// forEachServer runs f in a subtest against gearmand and one against
// gearbridge, each on its own fresh server.
func forEachServer(t *testing.T, f func(t *testing.T, s *Server)) {
	t.Helper()
	for _, kind := range []string{"gearmand", "gearbridge"} {
		t.Run(kind, func(t *testing.T) { f(t, StartServer(t, kind, nil, nil)) })
	}
}

func hostPort(s *Server) []string { return []string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port)} }

// runCLI runs a gearman tool to completion with stdin, bounded by
// cliTimeout, and returns its stdout and stderr. A non-zero exit fails.
func runCLI(t *testing.T, stdin string, tool string, args ...string) (string, string) {
	t.Helper()
	path := NeedTool(t, tool)
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstdout: %q\nstderr: %q", tool, args, err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

func gearadmin(t *testing.T, s *Server, args ...string) (string, string) {
	t.Helper()
	return runCLI(t, "", "gearadmin", append(hostPort(s), args...)...)
}

// startProcess starts cmd, killed on cleanup; its stderr is logged if the
// test failed. The returned channel is closed when the process exits.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) <-chan struct{} {
	t.Helper()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() && errb.Len() > 0 {
			t.Logf("%s stderr: %s", name, errb.String())
		}
	})
	return done
}

// startCLIWorker starts `gearman -w -f fn -c count -- cmd...` and waits
// until the server lists a worker for fn (or it has already exited). The
// returned channel is closed when the process exits; it is killed on
// cleanup.
func startCLIWorker(t *testing.T, s *Server, fn string, count int, cmd ...string) <-chan struct{} {
	t.Helper()
	path := NeedTool(t, "gearman")
	args := append(hostPort(s), "-w", "-f", fn, "-c", strconv.Itoa(count), "--")
	done := startProcess(t, "gearman worker", exec.Command(path, append(args, cmd...)...))
	a := Dial(t, s.Addr)
	defer a.Close()
	eventually(t, cliTimeout, "CLI worker to register "+fn, func() bool {
		select {
		case <-done:
			// It may do all its jobs and exit between two polls (jobs
			// queued before it): the caller checks what it did.
			return true
		default:
		}
		return statusOf(a.Admin("status\n"), fn).workers >= 1
	})
	return done
}

type fnStatus struct{ total, running, workers int }

// statusOf parses the `status` line for fn (zeros if absent).
func statusOf(reply, fn string) fnStatus {
	for _, l := range strings.Split(reply, "\n") {
		f := strings.Split(l, "\t")
		if len(f) == 4 && f[0] == fn {
			var st fnStatus
			st.total, _ = strconv.Atoi(f[1])
			st.running, _ = strconv.Atoi(f[2])
			st.workers, _ = strconv.Atoi(f[3])
			return st
		}
	}
	return fnStatus{}
}

func TestInterop_CLIForegroundJobsWithCLIWorker(t *testing.T) {
	forEachServer(t, func(t *testing.T, s *Server) {
		startCLIWorker(t, s, "upper", 3, "tr", "a-z", "A-Z")
		hp := hostPort(s)
		if out, _ := runCLI(t, "", "gearman", append(hp, "-f", "upper", "hello world")...); out != "HELLO WORLD" {
			t.Errorf("argument job: got %q", out)
		}
		if out, _ := runCLI(t, "from stdin", "gearman", append(hp, "-f", "upper")...); out != "FROM STDIN" {
			t.Errorf("stdin job: got %q", out)
		}
		if out, _ := runCLI(t, "", "gearman", append(hp, "-f", "upper", "-u", "my-unique", "with unique")...); out != "WITH UNIQUE" {
			t.Errorf("-u job: got %q", out)
		}
	})
}

func TestInterop_CLIBackgroundJobsRunByPriority(t *testing.T) {
	forEachServer(t, func(t *testing.T, s *Server) {
		hp := hostPort(s)
		runCLI(t, "", "gearman", append(hp, "-b", "-L", "-f", "prio", "low")...)
		runCLI(t, "", "gearman", append(hp, "-b", "-f", "prio", "normal")...)
		runCLI(t, "", "gearman", append(hp, "-b", "-I", "-f", "prio", "high")...)
		// Two submits with the same -u coalesce into one job.
		runCLI(t, "", "gearman", append(hp, "-b", "-u", "same", "-f", "prio", "dup")...)
		runCLI(t, "", "gearman", append(hp, "-b", "-u", "same", "-f", "prio", "dup")...)
		if out, _ := gearadmin(t, s, "--priority-status"); !strings.Contains(out, "prio\t1\t2\t1\t0\n") {
			t.Errorf("--priority-status: got %q, want a line \"prio\\t1\\t2\\t1\\t0\"", out)
		}
		out, _ := gearadmin(t, s, "--show-unique-jobs")
		if !strings.Contains(out, "same\n") || strings.Count(out, "\n") != 5 {
			t.Errorf("--show-unique-jobs: got %q, want 4 uniques including \"same\"", out)
		}

		log := filepath.Join(t.TempDir(), "order")
		done := startCLIWorker(t, s, "prio", 4, "sh", "-c", "cat >> "+log+"; echo >> "+log)
		select {
		case <-done:
		case <-time.After(cliTimeout):
			t.Fatal("CLI worker did not finish its 4 jobs")
		}
		got, _ := os.ReadFile(log)
		if string(got) != "high\nnormal\ndup\nlow\n" {
			t.Errorf("run order: got %q, want high, normal, dup, low", got)
		}
	})
}

func TestInterop_Gearadmin(t *testing.T) {
	forEachServer(t, func(t *testing.T, s *Server) {
		startCLIWorker(t, s, "adm", 1, "cat")
		if out, _ := gearadmin(t, s, "--status"); !strings.Contains(out, "adm\t0\t0\t1\n") || !strings.HasSuffix(out, ".\n") {
			t.Errorf("--status: got %q", out)
		}
		if out, _ := gearadmin(t, s, "--workers"); !strings.Contains(out, " 127.0.0.1 - : adm\n") {
			t.Errorf("--workers: got %q", out)
		}
		out, _ := gearadmin(t, s, "--server-version")
		if s.Kind == "gearmand" && out != "1.1.20+ds\n" || strings.Count(out, "\n") != 1 || len(out) < 2 {
			t.Errorf("--server-version: got %q", out)
		}
		if out, _ := gearadmin(t, s, "--getpid"); out != strconv.Itoa(s.Pid())+"\n" {
			t.Errorf("--getpid: got %q, want %d", out, s.Pid())
		}
		if out, _ := gearadmin(t, s, "--server-verbose"); strings.Count(out, "\n") != 1 || strings.ToUpper(out) != out {
			t.Errorf("--server-verbose: got %q", out)
		}

		if out, _ := gearadmin(t, s, "--create-function", "newfn"); out != "OK\n" {
			t.Errorf("--create-function: got %q", out)
		}
		if out, _ := gearadmin(t, s, "--status"); !strings.Contains(out, "newfn\t0\t0\t0\n") {
			t.Errorf("--status after create: got %q", out)
		}
		if out, _ := gearadmin(t, s, "--drop-function", "newfn"); out != "OK\n" {
			t.Errorf("--drop-function: got %q", out)
		}
		if _, errOut := gearadmin(t, s, "--drop-function", "newfn"); errOut != "Error: function not found\r\n" {
			t.Errorf("--drop-function again: stderr %q", errOut)
		}

		runCLI(t, "", "gearman", append(hostPort(s), "-b", "-f", "cancelme", "x")...)
		jobs, _ := gearadmin(t, s, "--show-jobs")
		handle, _, _ := strings.Cut(jobs, "\t")
		if !strings.HasPrefix(handle, "H:") {
			t.Fatalf("--show-jobs: got %q", jobs)
		}
		if out, _ := gearadmin(t, s, "--priority-status"); !strings.Contains(out, "cancelme\t0\t1\t0\t0\n") {
			t.Errorf("--priority-status: got %q", out)
		}
		if out, _ := gearadmin(t, s, "--cancel-job", handle); out != "OK\n" {
			t.Errorf("--cancel-job: got %q", out)
		}
		// gearmand keeps a cancelled job listed (ignored) until a worker
		// would take it; gearbridge removes it at once.
		after, _ := gearadmin(t, s, "--show-jobs")
		want := ".\n"
		if s.Kind == "gearmand" {
			want = handle + "\t0\t1\t0\n.\n"
		}
		if after != want {
			t.Errorf("--show-jobs after cancel: got %q, want %q", after, want)
		}
		if _, errOut := gearadmin(t, s, "--cancel-job", "H:nosuch:1"); errOut != "Error: UNKNOWN_JOB\r\n" {
			t.Errorf("--cancel-job unknown: stderr %q", errOut)
		}
	})
}
