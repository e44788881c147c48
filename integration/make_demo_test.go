package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// `make demo` moves off taken ports: DEMO_PORT, DEMO_HTTP and DEMO_JENKINS
// put the Gearman port, the status page and the emulator where it is told,
// and Ctrl-C stops all of it.
func TestMake_DemoMovesItsPorts(t *testing.T) {
	makeBin := NeedTool(t, "make")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	gearPort, httpPort, jenkinsPort := freePort(t), freePort(t), freePort(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	cmd := exec.Command(makeBin, "--no-print-directory", "demo",
		fmt.Sprintf("DEMO_PORT=%d", gearPort), "DEMO_HTTP="+httpAddr,
		fmt.Sprintf("DEMO_JENKINS=127.0.0.1:%d", jenkinsPort),
		"BIN="+filepath.Join(t.TempDir(), "gearbridge"))
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &lockedWriter{mu: new(sync.Mutex), b: new(bytes.Buffer)}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()
	output := func() string { out.mu.Lock(); defer out.mu.Unlock(); return out.b.String() }

	// The build comes first: wait for the Gearman port, then HTTP must be
	// where DEMO_HTTP says.
	deadline := time.Now().Add(scaledWait(t, 3*time.Minute))
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", gearPort), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("make demo exited (%v) before listening:\n%s", err, output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("make demo: port %d never opened:\n%s", gearPort, output())
		}
	}
	var body string
	eventually(t, 10*time.Second, "the status page on DEMO_HTTP "+httpAddr, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/api/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	})
	if !strings.Contains(body, `"functions"`) {
		t.Errorf("/api/status: %s", body)
	}
	if !strings.Contains(output(), "http://"+httpAddr+"/") {
		t.Errorf("make demo does not print the status page's address:\n%s", output())
	}

	// Ctrl-C reaches the whole process group, as from a terminal.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-exited:
		stopped = true
	case <-time.After(scaledWait(t, 20*time.Second)):
		t.Fatalf("make demo still running after SIGINT:\n%s", output())
	}
	eventually(t, 10*time.Second, "the demo's ports to close", func() bool {
		c, err := net.DialTimeout("tcp", httpAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}
