package integration

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gearbridge/gearbridge/internal/testkit"
	"golang.org/x/sys/unix"
)

// gearmand's --keepalive flags reach the sockets the server accepts, on
// both transports. The test takes a copy of the server's socket with
// pidfd_getfd (the server is its child) and reads the options.
func TestCLI_KeepaliveFlagsSetTheAcceptedSockets(t *testing.T) {
	for _, loop := range []string{"--event-loop=true", "--event-loop=false"} {
		t.Run(loop, func(t *testing.T) {
			s := StartGearbridge(t, loop, "--keepalive", "--keepalive-idle", "77", "--keepalive-interval", "13", "--keepalive-count", "4")
			c := Dial(t, s.Addr)
			c.Admin("version\n") // accepted and served
			fd := serverSocket(t, s.Pid(), s.Addr, c.nc.LocalAddr().String())
			defer syscall.Close(fd)
			testkit.CheckKeepAlive(t, fd, 77, 13, 4)
		})
	}
}

// serverSocket returns a copy of process pid's socket from local to peer.
func serverSocket(t *testing.T, pid int, local, peer string) int {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		n, err := strconv.Atoi(e.Name())
		if err != nil || !strings.HasPrefix(target, "socket:") {
			continue
		}
		fd, err := unix.PidfdGetfd(pidfd, n, 0)
		if err != nil {
			t.Skipf("pidfd_getfd: %v", err)
		}
		l, err1 := syscall.Getsockname(fd)
		p, err2 := syscall.Getpeername(fd)
		if err1 == nil && err2 == nil && inet4String(l) == local && inet4String(p) == peer {
			return fd
		}
		syscall.Close(fd)
	}
	t.Fatalf("process %d has no socket from %s to %s", pid, local, peer)
	return -1
}

func inet4String(sa syscall.Sockaddr) string {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return fmt.Sprintf("%d.%d.%d.%d:%d", a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3], a.Port)
	case *syscall.SockaddrInet6:
		if ip := net.IP(a.Addr[:]).To4(); ip != nil {
			return fmt.Sprintf("%s:%d", ip, a.Port)
		}
	}
	return ""
}
