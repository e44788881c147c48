package integration

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lockedFile creates name and holds an flock on it for the test, as a
// running backup or compaction does on its temporary file.
func lockedFile(t *testing.T, name string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
}

func touch(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := os.WriteFile(n, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// Temporary files that a killed backup, or a killed store creation or
// compaction, left behind are removed by the next backup to the same file
// and by the next start of the server; files still locked by a running
// process, and other backups' files, are kept.
func TestBackup_StaleTempFilesAreCleared(t *testing.T) {
	s := StartGearbridge(t, "--durability", "sync")
	staleNew := filepath.Join(s.Dir, ".gearbridge-new-123.db")
	staleCompact := filepath.Join(s.Dir, ".gearbridge-compact-456.db")
	busy := filepath.Join(s.Dir, ".gearbridge-compact-789.db")
	touch(t, staleNew, staleCompact)
	lockedFile(t, busy)
	s.Restart()
	if exists(staleNew) || exists(staleCompact) {
		t.Errorf("serve left stale temporary files: %v %v", exists(staleNew), exists(staleCompact))
	}
	if !exists(busy) {
		t.Errorf("serve removed %s, which a running process holds", busy)
	}

	dir := t.TempDir()
	dst := filepath.Join(dir, "backup.db")
	stale := dst + ".tmp-111"
	running := dst + ".tmp-222"
	other := filepath.Join(dir, "other.db.tmp-333")
	touch(t, stale, other)
	lockedFile(t, running)
	out, err := runWithin(t, exec.Command(GearbridgeBinary(t), "backup", "--server", "http://"+s.HTTPAddr, dst), 30*time.Second)
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if exists(stale) {
		t.Errorf("backup left %s, which an earlier backup to the same file left:\n%s", stale, out)
	}
	if !exists(running) || !exists(other) {
		t.Errorf("backup removed a file it must keep: running %v, other %v", exists(running), exists(other))
	}
	if !exists(dst) {
		t.Errorf("no backup at %s", dst)
	}
}

// A backup stopped by SIGTERM or SIGINT in the middle of its download
// removes its temporary file and leaves no FILE.
func TestBackup_SignalRemovesTheTempFile(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			// A server that sends the start of a large copy, then nothing.
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "1048576")
				w.Write(make([]byte, 4096))
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			defer srv.Close()
			defer close(release)
			dir := t.TempDir()
			dst := filepath.Join(dir, "backup.db")
			cmd := exec.Command(GearbridgeBinary(t), "backup", "--server", srv.URL, dst)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			temps := func() []string { m, _ := filepath.Glob(dst + ".tmp-*"); return m }
			eventually(t, 10*time.Second, "the temporary file", func() bool { return len(temps()) > 0 })
			cmd.Process.Signal(sig)
			select {
			case err := <-exited:
				if err == nil {
					t.Errorf("backup exited 0 after %v", sig)
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("backup did not exit within 10s of %v", sig)
			}
			if left := temps(); len(left) > 0 || exists(dst) {
				t.Errorf("after %v: temporary files %v, %s exists: %v\n%s", sig, left, dst, exists(dst), out.String())
			}
		})
	}
}
