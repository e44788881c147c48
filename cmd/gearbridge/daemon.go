package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// -d/--daemon detaches as gearmand does, so that units and init scripts
// written for it (Debian's gearman-job-server.service is Type=forking and
// passes --daemon) work unchanged. Go cannot fork a running runtime, so
// the process starts itself again in a new session and waits until that
// copy is ready (listeners bound, database open, pid file written) or has
// failed, and exits 0 or 1 with its error: a bad start is never silent.

// daemonChildEnv marks the detached copy; its descriptor 3 is the pipe to
// the starting process.
const daemonChildEnv = "GEARBRIDGE_DAEMON_CHILD"

// daemonPipe is the detached copy's pipe to the starting process; nil
// elsewhere and once the readiness has been reported.
var daemonPipe *os.File

func init() {
	if os.Getenv(daemonChildEnv) == "1" {
		os.Unsetenv(daemonChildEnv)
		daemonPipe = os.NewFile(3, "daemon-ready")
	}
}

// detach starts the detached copy with the same arguments and waits for
// its word.
func detach() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--daemon: find the executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("--daemon: %w", err)
	}
	defer r.Close()
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return fmt.Errorf("--daemon: %w", err)
	}
	defer devNull.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), daemonChildEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devNull, devNull, devNull
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("--daemon: start: %w", err)
	}
	// The answer, or EOF when the copy exits without one.
	word, _ := io.ReadAll(r)
	msg := strings.TrimSpace(string(word))
	if msg == "ready" {
		cmd.Process.Release()
		return nil
	}
	// It failed: collect it, so that it is no zombie while we exit.
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	if msg == "" {
		return errors.New("--daemon: the server exited before it was ready (see its log file)")
	}
	return errors.New(msg)
}

// daemonReady tells the starting process that the detached copy serves.
func daemonReady() { daemonReport("ready") }

// daemonFailed hands a start-up error to the starting process, which
// prints it; the detached copy's stderr goes nowhere.
func daemonFailed(err error) { daemonReport(err.Error()) }

func daemonReport(word string) {
	if daemonPipe == nil {
		return
	}
	io.WriteString(daemonPipe, word+"\n")
	daemonPipe.Close()
	daemonPipe = nil
}
