package server

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/testkit"
	"github.com/gearbridge/gearbridge/protocol"
)

// The keep-alive settings (gearmand's --keepalive-idle, -interval and
// -count) are on the accepted sockets of both transports.
func TestKeepAliveSettingsOnAcceptedSockets(t *testing.T) {
	for _, loop := range []bool{false, true} {
		t.Run("event-loop="+strconv.FormatBool(loop), func(t *testing.T) {
			_, addr := startServer(t, Config{EventLoop: loop, KeepAlive: KeepAlive{Idle: 77 * time.Second, Interval: 13 * time.Second, Count: 4}})
			c := dial(t, addr)
			c.send(protocol.EchoReq, "x")
			c.recv(protocol.EchoRes) // accepted and served
			fd := acceptedFD(t, addr, c.nc.LocalAddr().String())
			testkit.CheckKeepAlive(t, fd, 77, 13, 4)
		})
	}
}

// acceptedFD finds the server's end of a connection among this process's
// descriptors: the socket whose local address is the listener's and whose
// peer is the client.
func acceptedFD(t *testing.T, server, client string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		local, err1 := syscall.Getsockname(fd)
		peer, err2 := syscall.Getpeername(fd)
		if err1 != nil || err2 != nil {
			continue
		}
		if sockaddrString(local) == server && sockaddrString(peer) == client {
			return fd
		}
	}
	t.Fatalf("no socket from %s to %s", server, client)
	return -1
}
