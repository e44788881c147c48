package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	p "github.com/gearbridge/gearbridge/protocol"
)

func TestCLI_InvalidConfigIsReportedAndServerDoesNotStart(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(cfg, []byte("masters:\n  - name: has space\n    url: ftp://x/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(GearbridgeBinary(t), "serve", "--port", "0", "--http", "", "--durability", "none", "--config", cfg)
	out, err := runWithin(t, cmd, 10*time.Second)
	if err == nil {
		t.Fatal("exit status 0 with an invalid config")
	}
	for _, want := range []string{cfg, "name must not contain whitespace", `url "ftp://x/" is not an http(s) URL`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
}

func TestCLI_StatusPrintsTheAdminTable(t *testing.T) {
	s := StartGearbridge(t)
	c := Dial(t, s.Addr)
	c.Send(p.SubmitJobBg, "report", "", "x")
	c.Read()
	out, err := exec.Command(GearbridgeBinary(t), "status", "--server", s.Addr).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || strings.Fields(lines[0])[0] != "FUNCTION" || strings.Join(strings.Fields(lines[1]), " ") != "report 1 0 0" {
		t.Fatalf("status output:\n%s", out)
	}
	if out, err := exec.Command(GearbridgeBinary(t), "status", "--server", "127.0.0.1:1", "--timeout", "2s").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "127.0.0.1:1") {
		t.Fatalf("status against nothing: %v %s", err, out)
	}
}

func TestCLI_DamagedDatabaseIsRefusedAndKept(t *testing.T) {
	db := filepath.Join(t.TempDir(), "gearbridge.db")
	garbage := []byte(strings.Repeat("not a bbolt file ", 1000))
	if err := os.WriteFile(db, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(GearbridgeBinary(t), "serve", "--port", "0", "--http", "", "--db", db)
	out, err := runWithin(t, cmd, 15*time.Second)
	if err == nil {
		t.Fatal("gearbridge started on a damaged file")
	}
	if !strings.Contains(string(out), db) {
		t.Errorf("the error does not name the file:\n%s", out)
	}
	if after, _ := os.ReadFile(db); string(after) != string(garbage) {
		t.Error("the damaged file was changed")
	}
	// gearbridge check says the same, offline.
	out, err = runWithin(t, exec.Command(GearbridgeBinary(t), "check", "--db", db), 15*time.Second)
	if err == nil || !strings.Contains(string(out), db) {
		t.Errorf("check: %v\n%s", err, out)
	}
}

// runWithin runs cmd and fails the test if it has not ended within d.
func runWithin(t *testing.T, cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	t.Helper()
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := cmd.CombinedOutput()
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-time.After(d):
		cmd.Process.Kill()
		t.Fatalf("%s still running after %v", cmd.Path, d)
		return nil, nil
	}
}

// A flipped bit in a stored job's payload: `gearbridge check` names the job
// and exits 1; the server starts, never hands the job to a worker, counts it
// in /metrics, and check then lists it as quarantined (issue 14).
func TestCLI_DamagedRecordIsQuarantined(t *testing.T) {
	s := StartGearbridge(t, "--durability", "sync")
	c := Dial(t, s.Addr)
	c.Send(p.SubmitJobBg, "damaged-fn", "victim", "payload-that-gets-a-flipped-bit")
	victim := c.Read().Args()[0]
	c.Send(p.SubmitJobBg, "damaged-fn", "sound", "sound payload")
	sound := c.Read().Args()[0]
	c.Close()
	s.Stop()

	db := filepath.Join(s.Dir, "gearbridge.db")
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt copies pages on write: damage every copy, the live one among them.
	marker := []byte("payload-that-gets")
	n := 0
	for i := bytes.Index(data, marker); i >= 0; i = bytes.Index(data, marker) {
		data[i+3] ^= 0x04
		n++
	}
	if n == 0 {
		t.Fatal("payload not found in the file")
	}
	if err := os.WriteFile(db, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runWithin(t, exec.Command(GearbridgeBinary(t), "check", "--db", db), 15*time.Second)
	if err == nil || !strings.Contains(string(out), victim) || !strings.Contains(string(out), "damaged-fn") {
		t.Fatalf("check of the damaged file: %v\n%s", err, out)
	}

	s.Restart()
	w := Dial(t, s.Addr)
	w.Send(p.CanDo, "damaged-fn")
	w.Send(p.GrabJobUniq)
	if got := w.Read(); got.Type != p.JobAssignUniq || got.Args()[0] != sound {
		t.Fatalf("first grab: %v", got)
	}
	w.Send(p.GrabJobUniq)
	if got := w.Read(); got.Type != p.NoJob {
		t.Fatalf("second grab: %v (the damaged job must not run)", got)
	}
	if metricValue(t, s, "gearbridge_store_records_quarantined_total") != 1 {
		t.Errorf("/metrics does not count the quarantined record")
	}
	if !strings.Contains(readFile(t, s.LogPath), victim) {
		t.Errorf("the log does not name the damaged job %s", victim)
	}
	w.Close()
	s.Stop()
	out, err = runWithin(t, exec.Command(GearbridgeBinary(t), "check", "--db", db), 15*time.Second)
	if err != nil || !strings.Contains(string(out), "quarantined") || !strings.Contains(string(out), victim) {
		t.Fatalf("check after the quarantine: %v\n%s", err, out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
