package integration

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// Out of file descriptors, gearbridge keeps serving the connections it
// has, and takes the ones waiting in the kernel's backlog once descriptors
// are free again, on both transports. It backs off rather than retrying
// the accept for every request it serves: that retry cost the event loop
// a 10 ms sleep (and a log line) per turn, for every connection it served.
func TestBadInput_OutOfFileDescriptors(t *testing.T) {
	for _, transport := range []struct {
		name  string
		flags []string
	}{
		{"event loop", []string{"--event-loop=true"}},
		{"goroutines", []string{"--event-loop=false"}},
	} {
		t.Run(transport.name, func(t *testing.T) {
			s := StartGearbridge(t, transport.flags...)
			served := Dial(t, s.Addr)
			served.Barrier()

			// Leave the server 4 descriptors, then open 12 connections:
			// the kernel completes them all, so 8 or more must wait.
			restore := limitOpenFiles(t, s.Pid(), openFiles(t, s.Pid())+4)
			waiting := make([]*Conn, 12)
			for i := range waiting {
				waiting[i] = Dial(t, s.Addr)
			}
			for range 300 {
				served.Barrier()
			}
			restore()
			for _, c := range waiting {
				c.Barrier()
			}
			expectHealthy(t, s)

			log, err := os.ReadFile(s.LogPath)
			if err != nil {
				t.Fatal(err)
			}
			retries := strings.Count(string(log), "accept failed")
			t.Logf("%d accept retries logged", retries)
			if retries == 0 {
				t.Fatal("the server never ran out of descriptors: the test proves nothing")
			}
			if retries > 30 {
				t.Errorf("%d accept retries logged while 300 requests were served: no backoff", retries)
			}
		})
	}
}

// openFiles counts the descriptors process pid has open.
func openFiles(t *testing.T, pid int) uint64 {
	t.Helper()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatalf("counting open files: %v", err)
	}
	return uint64(len(fds))
}

// limitOpenFiles lowers the soft open-files limit of process pid to n and
// returns a function that puts the old limit back (also run at cleanup).
// Only the soft limit changes, so no privilege is needed to restore it.
func limitOpenFiles(t *testing.T, pid int, n uint64) (restore func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := prlimit(pid, nil, &old); err != nil {
		t.Fatalf("reading the open-files limit: %v", err)
	}
	lower := syscall.Rlimit{Cur: n, Max: old.Max}
	if err := prlimit(pid, &lower, nil); err != nil {
		t.Fatalf("lowering the open-files limit: %v", err)
	}
	restore = func() { // twice is harmless: the test's call, then cleanup's
		if err := prlimit(pid, &old, nil); err != nil {
			t.Errorf("restoring the open-files limit: %v", err)
		}
	}
	t.Cleanup(restore)
	return restore
}

// prlimit sets (when set is not nil) and reads (when old is not nil) the
// open-files limit of another process; package syscall has no wrapper.
func prlimit(pid int, set, old *syscall.Rlimit) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE,
		uintptr(unsafe.Pointer(set)), uintptr(unsafe.Pointer(old)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
