package integration

import (
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
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("gearbridge kept running with an invalid config")
	}
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
