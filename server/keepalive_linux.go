package server

import (
	"syscall"
	"time"
)

// setFD applies k to a socket of the event loop.
func (k KeepAlive) setFD(fd int) {
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1)
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(k.idle()/time.Second))
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(k.interval()/time.Second))
	if k.Count > 0 {
		syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, k.Count)
	}
}
