package server

import (
	"net"
	"time"
)

// KeepAlive is the TCP keep-alive of every accepted connection (gearmand's
// --keepalive-idle, --keepalive-interval and --keepalive-count). Keep-alive
// is always on: there is no idle timeout (workers sleep for hours), and
// dead peers are found by it instead. Zero fields take the defaults: 30s
// idle, 30s between probes, and the kernel's probe count.
type KeepAlive struct {
	Idle     time.Duration
	Interval time.Duration
	Count    int
}

func (k KeepAlive) idle() time.Duration {
	if k.Idle > 0 {
		return k.Idle
	}
	return keepAlivePeriod
}

func (k KeepAlive) interval() time.Duration {
	if k.Interval > 0 {
		return k.Interval
	}
	return keepAlivePeriod
}

// setConn applies k to a connection of the goroutine transport.
func (k KeepAlive) setConn(tc *net.TCPConn) {
	cfg := net.KeepAliveConfig{Enable: true, Idle: k.idle(), Interval: k.interval(), Count: k.Count}
	if k.Count <= 0 {
		cfg.Count = -1 // the kernel's
	}
	tc.SetKeepAliveConfig(cfg)
}
