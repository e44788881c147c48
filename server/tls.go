package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// tlsHandshakeTimeout bounds a TLS handshake. Once it is done there is no
// read deadline (a sleeping worker may wait for hours), but a peer that
// connects and never completes a handshake is cut off. Tests shorten it.
var tlsHandshakeTimeout = 10 * time.Second

// ServeTLS is Serve with TLS on every connection accepted from l
// (gearmand's --ssl); cfg holds the server's certificate and, to require
// client certificates, ClientAuth and ClientCAs. The event loop works on
// raw sockets, and TLS records need crypto/tls, so TLS connections are
// always served by the goroutine transport, whatever Config.EventLoop
// says.
func (s *Server) ServeTLS(l net.Listener, cfg *tls.Config) error {
	return s.Serve(&tlsListener{Listener: l, config: cfg, log: s.log})
}

// tlsListener wraps every accepted connection in a TLS server connection.
type tlsListener struct {
	net.Listener
	config *tls.Config
	log    *slog.Logger
}

func (l *tlsListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		// Server.accept sets these on plain TCP connections only.
		tc.SetKeepAlive(true)
		tc.SetKeepAlivePeriod(keepAlivePeriod)
		tc.SetNoDelay(true)
	}
	return &tlsConn{Conn: tls.Server(nc, l.config), raw: nc, log: l.log}, nil
}

// tlsConn is a server-side TLS connection whose first Read completes the
// handshake within tlsHandshakeTimeout, and whose Close closes the socket
// at once: no close_notify, which could wait for a peer that does not read
// while the server holds its lock.
type tlsConn struct {
	*tls.Conn
	raw   net.Conn
	log   *slog.Logger
	once  sync.Once
	hsErr error
}

func (c *tlsConn) Read(b []byte) (int, error) {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
		defer cancel()
		if err := c.HandshakeContext(ctx); err != nil {
			c.hsErr = err
			level := slog.LevelInfo
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				level = slog.LevelDebug // a port probe, or the server closing
			}
			c.log.Log(context.Background(), level, "TLS handshake failed; closing the connection",
				"peer", c.raw.RemoteAddr().String(), "err", err)
		}
	})
	if c.hsErr != nil {
		return 0, c.hsErr
	}
	return c.Conn.Read(b)
}

func (c *tlsConn) Close() error { return c.raw.Close() }
