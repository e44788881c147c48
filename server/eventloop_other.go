//go:build !linux

package server

import (
	"errors"
	"net"
)

// eventLoop is Linux-only; elsewhere each connection has its goroutines.
type eventLoop struct{}

func (*eventLoop) stop()                             {}
func (s *Server) serveLoop(l *net.TCPListener) error { return errors.New("the event loop needs Linux") }
