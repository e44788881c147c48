package testkit

import (
	"syscall"
	"testing"
)

// CheckKeepAlive checks that socket fd has TCP keep-alive on, with these
// idle and interval seconds and probe count.
func CheckKeepAlive(t testing.TB, fd, idle, interval, count int) {
	t.Helper()
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, idle},
		{"TCP_KEEPINTVL", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, interval},
		{"TCP_KEEPCNT", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, count},
	} {
		if got, err := syscall.GetsockoptInt(fd, o.level, o.opt); err != nil || got != o.want {
			t.Errorf("%s = %d (%v), want %d", o.name, got, err, o.want)
		}
	}
}
