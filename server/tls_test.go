package server

import (
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/testcert"
	"github.com/gearbridge/gearbridge/protocol"
)

// startTLSServer runs a server with ServeTLS on a free loopback port.
func startTLSServer(t *testing.T, cfg Config, tlsCfg *tls.Config) string {
	t.Helper()
	_, addr := serveOn(t, cfg, func(s *Server, l net.Listener) error { return s.ServeTLS(l, tlsCfg) })
	return addr
}

// dialTLS is dial over TLS with the given client configuration.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) *client {
	t.Helper()
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: protocol.NewResponseReader(nc, 1<<26)}
}

// With TLS configured, jobs, results and admin commands go over TLS on
// both transports: with EventLoop set, TLS connections are served by
// goroutines. A client certificate is required when the configuration asks
// for one, and a plaintext client gets nothing.
func TestTLSServesBothTransports(t *testing.T) {
	certs := testcert.New(t)
	for _, eventLoop := range []bool{false, true} {
		name := "goroutines"
		if eventLoop {
			name = "event-loop"
		}
		t.Run(name, func(t *testing.T) {
			var logged syncBuffer
			addr := startTLSServer(t, Config{EventLoop: eventLoop, Logger: slog.New(slog.NewTextHandler(&logged, nil))}, certs.ServerConfig(true))
			w := dialTLS(t, addr, certs.ClientConfig(true))
			w.send(protocol.CanDo, "tls-f")
			c := dialTLS(t, addr, certs.ClientConfig(true))
			big := strings.Repeat("x", 1<<20) // more than one write and one TLS record
			c.send(protocol.SubmitJob, "tls-f", "u1", big)
			h := c.recv(protocol.JobCreated)[0]
			got := w.grab()
			if got[0] != h || got[3] != big {
				t.Fatalf("grabbed %q with %d bytes", got[:3], len(got[3]))
			}
			w.send(protocol.WorkComplete, h, "done")
			if res := c.recv(protocol.WorkComplete); res[1] != "done" {
				t.Fatalf("result %q", res)
			}
			if st := c.admin("status"); !strings.Contains(st, "tls-f\t0\t0\t1") {
				t.Fatalf("status over TLS: %q", st)
			}

			// No client certificate: the handshake fails.
			noCert := certs.ClientConfig(false)
			if nc, err := tls.Dial("tcp", addr, noCert); err == nil {
				nc.SetDeadline(time.Now().Add(5 * time.Second))
				nc.Write([]byte("status\r\n"))
				if _, err := nc.Read(make([]byte, 1)); err == nil {
					t.Error("a client without a certificate was served")
				}
				nc.Close()
			}
			// A certificate from another CA: refused as well.
			other := certs.ClientConfig(false)
			other.Certificates = []tls.Certificate{testcert.New(t).Client}
			if nc, err := tls.Dial("tcp", addr, other); err == nil {
				nc.SetDeadline(time.Now().Add(5 * time.Second))
				nc.Write([]byte("status\r\n"))
				if _, err := nc.Read(make([]byte, 1)); err == nil {
					t.Error("a client with an untrusted certificate was served")
				}
				nc.Close()
			}
			// Plaintext on the TLS port: no Gearman reply, the connection is closed.
			plain, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			plain.SetDeadline(time.Now().Add(5 * time.Second))
			plain.Write([]byte("status\r\n"))
			buf := make([]byte, 512)
			n, _ := plain.Read(buf)
			if strings.Contains(string(buf[:n]), "tls-f") {
				t.Errorf("a plaintext client got %q", buf[:n])
			}
			waitFor(t, "the failed handshakes in the log", func() bool {
				return strings.Count(logged.String(), "TLS handshake failed") >= 3
			})
			// The TLS connections carry on.
			w.expectNothing()
			c.expectNothing()
		})
	}
}

// A peer that connects and sends nothing is cut off when the handshake
// timeout ends, instead of holding a connection forever.
func TestTLSHandshakeTimesOut(t *testing.T) {
	// Restored after the server's cleanup, which waits for its goroutines.
	old := tlsHandshakeTimeout
	t.Cleanup(func() { tlsHandshakeTimeout = old })
	tlsHandshakeTimeout = 300 * time.Millisecond
	certs := testcert.New(t)
	addr := startTLSServer(t, Config{}, certs.ServerConfig(false))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(tlsHandshakeTimeout + 10*time.Second))
	start := time.Now()
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from a server waiting for a handshake")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept the silent connection open for %v", time.Since(start))
	}
}
