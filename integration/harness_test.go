package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// GearmandPath is the C server. /usr/bin/gearmand may be the Perl server
// from the gearman-server package, so the absolute path matters.
const GearmandPath = "/usr/sbin/gearmand"

// Timeouts. Every wait in these tests is bounded by one of them.
const (
	readyTimeout = 15 * time.Second // server accepting connections
	stopTimeout  = 10 * time.Second // SIGTERM until exit
	opTimeout    = 5 * time.Second  // one reply on a connection
)

var (
	binDir   string // temp dir holding the built binary; removed by TestMain
	buildMu  sync.Mutex
	buildBin string
	buildErr error
	buildOut []byte
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gearbridge-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// inCI reports whether missing tools must fail tests instead of skipping.
func inCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips the test locally and fails it under CI=true.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// NeedTool skips (fails under CI) when the executable at path is missing.
// A bare name is looked up in PATH. It returns the resolved path.
func NeedTool(t testing.TB, path string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err != nil {
		skipOrFail(t, "%s not available: %v (apt-get install gearman-tools gearman-job-server)", path, err)
	}
	return p
}

// GearbridgeBinary returns the path of the gearbridge binary, building it
// once per test binary. GEARBRIDGE_BIN names a prebuilt binary instead.
// A failed build is remembered and skips (or under CI fails) every caller.
func GearbridgeBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("GEARBRIDGE_BIN"); p != "" {
		return p
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildBin == "" && buildErr == nil {
		root, err := filepath.Abs("..")
		if err != nil {
			buildErr = err
		} else {
			out := filepath.Join(binDir, "gearbridge")
			cmd := exec.Command("go", "build", "-o", out, "./cmd/gearbridge")
			cmd.Dir = root
			buildOut, buildErr = cmd.CombinedOutput()
			if buildErr == nil {
				buildBin = out
			}
		}
	}
	if buildErr != nil {
		skipOrFail(t, "cannot build gearbridge: %v\n%s", buildErr, buildOut)
	}
	return buildBin
}

// Server is one running job server process, gearbridge or C gearmand.
type Server struct {
	Kind     string // "gearbridge" or "gearmand"
	Addr     string // 127.0.0.1:port of the Gearman listener
	Port     int
	HTTPAddr string // gearbridge's HTTP listener, "" for gearmand
	Dir      string // private temp dir (db, logs)
	LogPath  string

	t      testing.TB
	bin    string
	args   func(port, httpPort int) []string
	cmd    *exec.Cmd
	exited chan struct{}
	errOut *bytes.Buffer // stdout+stderr of the process
	outMu  *sync.Mutex
}

// StartGearbridge starts `gearbridge serve` on free loopback ports with a
// private temp dir, log file and db file. extra flags are appended; unless
// they set --durability, the server runs with --durability none.
func StartGearbridge(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := GearbridgeBinary(t)
	s := &Server{Kind: "gearbridge", t: t, bin: bin, Dir: t.TempDir()}
	s.LogPath = filepath.Join(s.Dir, "gearbridge.log")
	durability := []string{"--durability", "none"}
	for _, a := range extra {
		if a == "--durability" || strings.HasPrefix(a, "--durability=") {
			durability = nil
		}
	}
	s.args = func(port, httpPort int) []string {
		args := []string{"serve", "--listen", "127.0.0.1", "--port", strconv.Itoa(port),
			"--http", fmt.Sprintf("127.0.0.1:%d", httpPort),
			"--db", filepath.Join(s.Dir, "gearbridge.db"), "--log-file", s.LogPath}
		args = append(args, durability...)
		return append(args, extra...)
	}
	s.start(true)
	t.Cleanup(s.cleanup)
	return s
}

// StartGearmand starts C gearmand 1.1.20 on a free loopback port. extra
// flags (for example "--job-retries=2") are appended.
func StartGearmand(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := NeedTool(t, GearmandPath)
	s := &Server{Kind: "gearmand", t: t, bin: bin, Dir: t.TempDir()}
	s.LogPath = filepath.Join(s.Dir, "gearmand.log")
	s.args = func(port, _ int) []string {
		args := []string{"--listen=127.0.0.1", "--port=" + strconv.Itoa(port),
			"--log-file=" + s.LogPath, "--pid-file=" + filepath.Join(s.Dir, "gearmand.pid"),
			"--config-file=/dev/null"}
		return append(args, extra...)
	}
	s.start(true)
	t.Cleanup(s.cleanup)
	return s
}

// StartServer starts a server of the given kind ("gearbridge" or
// "gearmand"). gbExtra and gmExtra are the kind-specific extra flags.
func StartServer(t testing.TB, kind string, gbExtra, gmExtra []string) *Server {
	t.Helper()
	if kind == "gearmand" {
		return StartGearmand(t, gmExtra...)
	}
	return StartGearbridge(t, gbExtra...)
}

// start launches the process and polls until it accepts connections. With
// newPorts it picks fresh free ports and retries when the process dies
// (another process may have taken the port between probe and bind).
func (s *Server) start(newPorts bool) {
	s.t.Helper()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if newPorts || s.Port == 0 {
			s.Port = freePort(s.t)
			if s.Kind == "gearbridge" {
				hp := freePort(s.t)
				s.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", hp)
			}
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", s.Port)
		httpPort := 0
		if s.HTTPAddr != "" {
			_, p, _ := net.SplitHostPort(s.HTTPAddr)
			httpPort, _ = strconv.Atoi(p)
		}
		if lastErr = s.launch(s.args(s.Port, httpPort)); lastErr == nil {
			return
		}
		s.t.Logf("%s did not start (attempt %d): %v", s.Kind, attempt+1, lastErr)
		if !newPorts {
			// Restarting on the same port: only retry while the port may
			// still be held by the previous process.
			time.Sleep(100 * time.Millisecond)
		}
	}
	s.dumpLogs()
	s.t.Fatalf("%s: could not start: %v", s.Kind, lastErr)
}

func (s *Server) launch(args []string) error {
	s.outMu = &sync.Mutex{}
	s.errOut = &bytes.Buffer{}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.Dir
	w := &lockedWriter{mu: s.outMu, b: s.errOut}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() { cmd.Wait(); close(s.exited) }()
	// Ready means every listener accepts: gearbridge listens for HTTP
	// after Gearman, and exits if the HTTP port is taken, which can happen
	// on a restart, since the port was chosen by an earlier life.
	pending := []string{s.Addr}
	if s.HTTPAddr != "" {
		pending = append(pending, s.HTTPAddr)
	}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", pending[0], time.Second)
		if err == nil {
			c.Close()
			if pending = pending[1:]; len(pending) == 0 {
				return nil
			}
			continue
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited early (%v): %s", cmd.ProcessState, s.output())
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.kill()
	return errors.New("not accepting connections after " + readyTimeout.String())
}

// Stop sends SIGTERM and waits for the process to exit (SIGKILL after
// stopTimeout). It reports a failure if the server did not exit cleanly
// in time.
func (s *Server) Stop() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		s.kill()
		s.t.Errorf("%s did not exit within %v of SIGTERM", s.Kind, stopTimeout)
	}
	s.cmd = nil
}

// Kill stops the server with SIGKILL (a crash) and waits for it.
func (s *Server) Kill() {
	s.t.Helper()
	s.kill()
	s.cmd = nil
}

func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
}

// Restart stops the server (if running) and starts it again with the same
// flags, port and directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start(false)
}

// Exited is closed when the current process exits.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Pid returns the process id of the running server.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

func (s *Server) cleanup() {
	if s.t.Failed() {
		s.dumpLogs()
	}
	s.kill()
}

func (s *Server) output() string {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.errOut.String()
}

// dumpLogs writes the tail of the server's log file and output to the test log.
func (s *Server) dumpLogs() {
	if b, err := os.ReadFile(s.LogPath); err == nil {
		s.t.Logf("--- %s log %s (tail) ---\n%s", s.Kind, s.LogPath, tail(b, 8000))
	}
	if s.outMu != nil {
		if out := s.output(); out != "" {
			s.t.Logf("--- %s stdout/stderr (tail) ---\n%s", s.Kind, tail([]byte(out), 8000))
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// freePort returns a loopback port that was free a moment ago. Callers
// retry on bind failure, since another process may take it meanwhile.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("probe free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// scaledWait returns d, multiplied by GB_TEST_WAIT_SCALE when that is set
// (say 3 on a slow or loaded machine), and cut to what is left of the
// test's deadline less 15 s, so that a wait that runs out fails the test
// with its own message and the server's log instead of go test's timeout
// panic. It is for waits on progress, which a slow machine stretches.
func scaledWait(t testing.TB, d time.Duration) time.Duration {
	t.Helper()
	if v := os.Getenv("GB_TEST_WAIT_SCALE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0) {
			t.Fatalf("GB_TEST_WAIT_SCALE=%q: want a positive number", v)
		}
		d = time.Duration(float64(d) * f)
	}
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if end, ok := dt.Deadline(); ok {
			if left := time.Until(end) - 15*time.Second; left < d {
				d = max(left, time.Second)
			}
		}
	}
	return d
}

// eventually polls cond every 10ms until it returns true or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
