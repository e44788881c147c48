package main

import (
	"bufio"
	"fmt"
	"net"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// conn is one Gearman connection speaking the binary protocol through our
// codec. Writes are buffered until flush, so a caller can batch requests.
type conn struct {
	nc  net.Conn
	r   *protocol.Reader
	w   *bufio.Writer
	buf []byte
}

func dial(addr string) (*conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &conn{
		nc: nc,
		r:  protocol.NewResponseReader(nc, 64<<20),
		w:  bufio.NewWriterSize(nc, 64<<10),
	}, nil
}

func (c *conn) close() { c.nc.Close() }

// send buffers one request packet.
func (c *conn) send(typ protocol.Type, args ...[]byte) error {
	c.buf = protocol.AppendRequest(c.buf[:0], typ, args...)
	_, err := c.w.Write(c.buf)
	return err
}

func (c *conn) flush() error { return c.w.Flush() }

// read returns the next packet; a server that stalls for replyTimeout
// fails the run instead of hanging it.
func (c *conn) read() (*protocol.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(replyTimeout))
	return c.r.ReadPacket()
}

// expect reads the next packet and fails unless it has type typ.
func (c *conn) expect(typ protocol.Type) (*protocol.Packet, error) {
	p, err := c.read()
	if err != nil {
		return nil, err
	}
	if p.Type != typ {
		return p, fmt.Errorf("got %s %q, want %s", p.Type, p.Args, typ)
	}
	return p, nil
}
