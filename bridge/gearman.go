package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// gearConn is one worker connection to a Gearman server. Packets are read
// by their own goroutine, so that a worker can wait on Jenkins and on the
// server at the same time; writes are serialised.
type gearConn struct {
	addr    string
	nc      net.Conn
	wmu     sync.Mutex
	packets chan *protocol.Packet
	done    chan struct{} // closed when the reader stops
	err     error         // why the reader stopped; read after done
	closed  chan struct{}
	once    sync.Once
}

// maxAssignSize bounds what a job server may send us.
const maxAssignSize = 64 << 20

// writeTimeout bounds one write to the job server.
const gearWriteTimeout = 30 * time.Second

// dialGear connects to a job server: HOST:PORT, tls://HOST:PORT (over TLS
// with tlsCfg, which may be nil for the system's CAs), or unix:PATH.
func dialGear(ctx context.Context, addr string, tlsCfg *tls.Config) (*gearConn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	var nc net.Conn
	var err error
	switch {
	case strings.HasPrefix(addr, tlsScheme):
		td := tls.Dialer{NetDialer: &d, Config: tlsCfg}
		nc, err = td.DialContext(ctx, "tcp", strings.TrimPrefix(addr, tlsScheme))
	case strings.HasPrefix(addr, "unix:"):
		nc, err = d.DialContext(ctx, "unix", strings.TrimPrefix(addr, "unix:"))
	default:
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to gearman server %s: %w", addr, err)
	}
	c := &gearConn{addr: addr, nc: nc, packets: make(chan *protocol.Packet, 16), done: make(chan struct{}), closed: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

func (c *gearConn) readLoop() {
	defer close(c.done)
	r := protocol.NewResponseReader(c.nc, maxAssignSize)
	for {
		p, err := r.ReadPacket()
		if err != nil {
			c.err = fmt.Errorf("gearman server %s: %w", c.addr, err)
			return
		}
		select {
		case c.packets <- p:
		case <-c.closed:
			return
		}
	}
}

func (c *gearConn) send(typ protocol.Type, args ...[]byte) error {
	return c.write(typ, protocol.AppendRequest(nil, typ, args...))
}

// sendPair sends two argument-less packets in one write.
func (c *gearConn) sendPair(a, b protocol.Type) error {
	return c.write(a, protocol.AppendRequest(protocol.AppendRequest(nil, a), b))
}

// write sends encoded packets (typ names the first, for errors).
func (c *gearConn) write(typ protocol.Type, packets []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(gearWriteTimeout))
	if _, err := c.nc.Write(packets); err != nil {
		return fmt.Errorf("gearman server %s: send %s: %w", c.addr, typ, err)
	}
	return nil
}

func (c *gearConn) sendString(typ protocol.Type, args ...string) error {
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	return c.send(typ, b...)
}

func (c *gearConn) close() {
	c.once.Do(func() {
		close(c.closed)
		c.nc.Close()
	})
}

// next waits for the next packet, or for ctx.
func (c *gearConn) next(ctx context.Context) (*protocol.Packet, error) {
	select {
	case p := <-c.packets:
		return p, nil
	case <-c.done:
		// Drain what was read before the error.
		select {
		case p := <-c.packets:
			return p, nil
		default:
		}
		return nil, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

var errStopped = errors.New("worker stopped")

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serverError is the error for an ERROR packet from the Gearman server.
func serverError(p *protocol.Packet) error {
	return fmt.Errorf("gearman server sent ERROR %s: %s", p.Arg(0), p.Arg(1))
}
