package integration

// The network side's credentials: TLS on the Gearman port and on HTTP, the
// HTTP bearer token, and secrets kept out of logs.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A password written into a master's URL appears in no log line and in no
// error message, while the user name and host still do.
func TestCLI_URLCredentialsAreRedacted(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bridge.yaml")
	url := fmt.Sprintf("http://gb:s3cret-pass@127.0.0.1:%d/", freePort(t)) // nothing listens there
	if err := os.WriteFile(cfg, []byte("masters:\n  - name: m1\n    url: "+url+"\n    poll_interval: 100ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := StartGearbridge(t, "--config", cfg)
	eventually(t, 10*time.Second, "the master to be reported unreachable", func() bool {
		return strings.Contains(readFile(t, s.LogPath), "unreachable")
	})
	s.Stop()
	log := readFile(t, s.LogPath)
	if strings.Contains(log, "s3cret") {
		t.Errorf("the log shows the password:\n%s", log)
	}
	if !strings.Contains(log, "gb:xxxxx@127.0.0.1") {
		t.Errorf("the log does not name the master's URL, redacted:\n%s", log)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("masters:\n  - name: m1\n    url: ftp://gb:s3cret-pass@host/\n"), 0o600)
	out, err := runWithin(t, exec.Command(GearbridgeBinary(t), "serve", "--port", "0", "--http", "", "--durability", "none", "--config", bad), 10*time.Second)
	if err == nil || strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "ftp://gb:xxxxx@host/") {
		t.Errorf("a bad config with a password in its URL: %v\n%s", err, out)
	}
}
