package integration

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// Pkt is one binary packet as received, kept as raw bytes so tests can
// compare servers byte for byte.
type Pkt struct {
	Magic string
	Type  protocol.Type
	Data  []byte
}

func (p Pkt) String() string {
	if p.Magic != protocol.ResMagic {
		return fmt.Sprintf("%q %s %q", p.Magic, p.Type, p.Data)
	}
	return fmt.Sprintf("%s %q", p.Type, p.Data)
}

// Args splits the payload into the packet type's arguments.
func (p Pkt) Args() []string {
	parts, ok := protocol.SplitArgs(p.Data, p.Type.NumArgs())
	if !ok {
		return []string{string(p.Data)}
	}
	out := make([]string, len(parts))
	for i, a := range parts {
		out[i] = string(a)
	}
	return out
}

// Conn is a raw Gearman connection for tests: it writes request packets and
// admin lines and reads binary packets or text replies, every read bounded
// by opTimeout. Failures end the test.
type Conn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

var echoSeq atomic.Uint64

// Dial connects to addr.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, opTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c := wrapConn(t, nc)
	t.Cleanup(func() { nc.Close() })
	return c
}

// wrapConn makes a Conn of an open connection.
func wrapConn(t testing.TB, nc net.Conn) *Conn {
	return &Conn{t: t, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
}

// Close closes the connection.
func (c *Conn) Close() { c.nc.Close() }

// Send writes one request packet; args are joined by NULs.
func (c *Conn) Send(typ protocol.Type, args ...string) {
	c.t.Helper()
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	c.SendRaw(protocol.AppendRequest(nil, typ, bs...))
}

// SendRaw writes bytes as they are.
func (c *Conn) SendRaw(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(opTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Read returns the next binary packet, failing the test after opTimeout or
// if a text line arrives instead.
func (c *Conn) Read() Pkt {
	c.t.Helper()
	p, err := c.ReadWithin(opTimeout)
	if err != nil {
		c.t.Fatalf("read packet: %v", err)
	}
	return p
}

// ReadWithin returns the next binary packet or an error (a net.Error with
// Timeout() for no packet within d, io.EOF for a closed connection).
func (c *Conn) ReadWithin(d time.Duration) (Pkt, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	first, err := c.br.Peek(1)
	if err != nil {
		return Pkt{}, err
	}
	if first[0] != 0 {
		line, _ := c.br.ReadBytes('\n')
		return Pkt{}, fmt.Errorf("text %q where a packet was expected", line)
	}
	var hdr [protocol.HeaderSize]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return Pkt{}, err
	}
	p := Pkt{Magic: string(hdr[:4]), Type: protocol.Type(binary.BigEndian.Uint32(hdr[4:8]))}
	p.Data = make([]byte, binary.BigEndian.Uint32(hdr[8:12]))
	if _, err := io.ReadFull(c.br, p.Data); err != nil {
		return Pkt{}, err
	}
	return p, nil
}

// Expect reads the next packet and fails unless it is typ with exactly
// args joined by NULs.
func (c *Conn) Expect(typ protocol.Type, args ...string) Pkt {
	c.t.Helper()
	p := c.Read()
	want := Pkt{Magic: protocol.ResMagic, Type: typ, Data: joinArgs(args)}
	if p.Magic != want.Magic || p.Type != want.Type || !bytes.Equal(p.Data, want.Data) {
		c.t.Fatalf("got %v, want %v", p, want)
	}
	return p
}

// Barrier sends ECHO_REQ with a fresh token and requires the very next
// packet to be its ECHO_RES: nothing else was queued for this connection
// before the server handled the echo.
func (c *Conn) Barrier() {
	c.t.Helper()
	tok := "barrier-" + strconv.FormatUint(echoSeq.Add(1), 10)
	c.Send(protocol.EchoReq, tok)
	c.Expect(protocol.EchoRes, tok)
}

// WaitClosed waits up to d for the server to close the connection and
// reports an error if it sent data or stayed open.
func (c *Conn) WaitClosed(d time.Duration) error {
	c.nc.SetReadDeadline(time.Now().Add(d))
	b, err := c.br.ReadByte()
	switch {
	case err == nil:
		rest, _ := c.br.Peek(c.br.Buffered())
		return fmt.Errorf("want close, got data %q", append([]byte{b}, rest...))
	case isTimeout(err):
		return fmt.Errorf("connection still open after %v", d)
	}
	return nil // EOF or reset
}

// Admin sends line (include its "\n" or "\r\n") and returns the raw reply:
// one line if it starts with OK or ERR, otherwise every line up to and
// including the ".\n" terminator.
func (c *Conn) Admin(line string) string {
	c.t.Helper()
	c.SendRaw([]byte(line))
	return c.ReadAdminReply()
}

// ReadAdminReply reads one admin reply (see Admin).
func (c *Conn) ReadAdminReply() string {
	c.t.Helper()
	var out []byte
	for {
		c.nc.SetReadDeadline(time.Now().Add(opTimeout))
		l, err := c.br.ReadBytes('\n')
		out = append(out, l...)
		if err != nil {
			c.t.Fatalf("admin reply after %q: %v", out, err)
		}
		if len(out) == len(l) && (bytes.HasPrefix(l, []byte("OK")) || bytes.HasPrefix(l, []byte("ERR"))) {
			return string(out)
		}
		if string(l) == ".\n" {
			return string(out)
		}
	}
}

// AdminOnce opens a connection, runs one admin command and closes it.
func AdminOnce(t testing.TB, addr, line string) string {
	t.Helper()
	c := Dial(t, addr)
	defer c.Close()
	return c.Admin(line)
}

func joinArgs(args []string) []byte {
	var b []byte
	for i, a := range args {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, a...)
	}
	return b
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rawPacket builds a packet with an arbitrary magic, type and payload, for
// bad-input tests.
func rawPacket(magic string, typ uint32, payload []byte) []byte {
	b := append([]byte(magic), 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[4:8], typ)
	binary.BigEndian.PutUint32(b[8:12], uint32(len(payload)))
	return append(b, payload...)
}
