package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// HeaderSize is the size of a binary packet header: magic, type, size.
const HeaderSize = 12

// Magic codes that open every binary packet.
const (
	ReqMagic = "\x00REQ"
	ResMagic = "\x00RES"
)

// Errors after which the connection must be closed: the stream can no
// longer be trusted to be in sync, or the peer is not speaking Gearman.
var (
	ErrBadMagic    = errors.New("bad packet magic")
	ErrBadType     = errors.New("unknown packet type")
	ErrTooLarge    = errors.New("packet larger than the limit")
	ErrLineTooLong = errors.New("admin line longer than the limit")
	ErrTruncated   = errors.New("connection closed inside a packet")
	errTooFewArgs  = errors.New("too few arguments")
	errNotARequest = errors.New("response magic in a request")
)

// Packet is one decoded binary packet. Args alias the packet's own buffer,
// which is never reused, so a handler may keep them.
type Packet struct {
	// Response is true for "\0RES" packets.
	Response bool
	Type     Type
	Args     [][]byte
	// Malformed is set when the payload has fewer NUL separators than the
	// type needs. Args is then nil. The stream itself is still in sync.
	Malformed bool
}

// Arg returns argument i, or nil when it is absent.
func (p *Packet) Arg(i int) []byte {
	if i < len(p.Args) {
		return p.Args[i]
	}
	return nil
}

// Message is what a Reader returns: a binary packet or one admin text line.
type Message struct {
	Packet *Packet
	// Line is a text admin line without its "\n" or "\r\n" (nil for packets).
	Line []byte
}

// Reader decodes binary packets and text lines from one connection. The
// first byte of each message decides its kind, as in gearmand: NUL starts a
// binary packet, anything else a text line.
type Reader struct {
	r          *bufio.Reader
	maxPacket  uint32
	maxLine    int
	wantMagics string // ReqMagic for a server, ResMagic for a client
	budget     Budget // nil: payloads are not accounted
}

// Budget accounts the memory a Reader holds for a packet it is still
// reading. Take fails when the memory may not be had; the Reader then
// returns the error, and the connection must be closed.
type Budget interface {
	Take(n int) error
	Give(n int)
}

// SetBudget makes the Reader account payload memory with b, and read a
// large payload in growing pieces as its bytes arrive, so that what a
// connection holds is what it has sent, not what its header declared.
func (r *Reader) SetBudget(b Budget) { r.budget = b }

// readInPieces is the payload size above which a budgeted Reader grows the
// payload's buffer as bytes arrive.
const readInPieces = 1 << 20

// NewReader returns a Reader for the server side of a connection. Packets
// with a payload above maxPacket and text lines above maxLine bytes are
// refused before anything is allocated for them.
func NewReader(r io.Reader, maxPacket uint32, maxLine int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), maxPacket: maxPacket, maxLine: maxLine, wantMagics: ReqMagic}
}

// NewResponseReader returns a Reader for the client or worker side: it
// expects "\0RES" packets and does not accept text lines as packets.
func NewResponseReader(r io.Reader, maxPacket uint32) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), maxPacket: maxPacket, maxLine: 1 << 20, wantMagics: ResMagic}
}

// Buffered reports how many bytes are already read from the connection and
// waiting, so a caller can batch the replies to pipelined requests.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// Ready reports whether the bytes already read from the connection hold a
// complete message, so that the next Read returns without reading from the
// connection. A server writes its pending replies when Ready is false:
// buffered bytes that only start the next message (Buffered > 0) do not
// make a Read return, and its replies must not wait for the rest.
func (r *Reader) Ready() bool {
	n := r.r.Buffered()
	if n == 0 {
		return false
	}
	buf, _ := r.r.Peek(n) // never reads: n bytes are buffered
	size, err := FrameSize(buf, r.maxPacket, r.maxLine)
	return size > 0 && err == nil
}

// ReadLine reads one text line (for admin clients reading replies).
func (r *Reader) ReadLine() ([]byte, error) { return r.readLine() }

// Read returns the next message. A *ProtocolError with Close false means the
// stream is still in sync and the caller should answer with an ERROR packet;
// any other error means the connection must be closed.
func (r *Reader) Read() (Message, error) {
	first, err := r.r.Peek(1)
	if err != nil {
		return Message{}, err
	}
	if first[0] != 0 {
		line, err := r.readLine()
		return Message{Line: line}, err
	}
	p, err := r.readPacket()
	return Message{Packet: p}, err
}

// ReadPacket reads one binary packet.
func (r *Reader) ReadPacket() (*Packet, error) { return r.readPacket() }

func (r *Reader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.r.ReadSlice('\n')
		if len(line)+len(chunk) > r.maxLine {
			return nil, ErrLineTooLong
		}
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(line) > 0 {
			return nil, ErrTruncated
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return line, nil
}

func (r *Reader) readPacket() (*Packet, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, ErrTruncated
		}
		return nil, err
	}
	typ, size, err := checkHeader(hdr[:], r.maxPacket)
	if err != nil {
		return nil, err
	}
	payload, err := r.readPayload(int(size))
	if err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, ErrTruncated
		}
		return nil, err
	}
	return decode(string(hdr[:4]), typ, payload, r.wantMagics)
}

// readPayload reads size bytes. With a budget, a large payload's buffer
// doubles from readInPieces as bytes arrive, each size taken from the
// budget first; the budget gets it all back when the packet is complete
// (it becomes the request's own data) or the read fails.
func (r *Reader) readPayload(size int) ([]byte, error) {
	if r.budget == nil || size <= readInPieces {
		payload := make([]byte, size)
		_, err := io.ReadFull(r.r, payload)
		return payload, err
	}
	held := 0
	defer func() { r.budget.Give(held) }()
	var payload []byte
	for len(payload) < size {
		if len(payload) == cap(payload) {
			grown := min(size, max(readInPieces, 2*cap(payload)))
			if err := r.budget.Take(grown); err != nil {
				return nil, err
			}
			payload = append(make([]byte, 0, grown), payload...)
			r.budget.Give(held) // the old buffer is garbage now
			held = grown
		}
		n, err := r.r.Read(payload[len(payload):cap(payload)])
		payload = payload[:len(payload)+n]
		if err != nil && len(payload) < size {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return payload, nil
}

// checkHeader validates a packet header (magic, type, size limit) before
// anything is allocated for the payload.
func checkHeader(hdr []byte, maxPacket uint32) (Type, uint32, error) {
	magic := string(hdr[:4])
	typ := Type(binary.BigEndian.Uint32(hdr[4:8]))
	size := binary.BigEndian.Uint32(hdr[8:12])
	switch {
	case magic != ReqMagic && magic != ResMagic:
		return 0, 0, fmt.Errorf("%w %q", ErrBadMagic, magic)
	case !typ.Valid():
		return 0, 0, fmt.Errorf("%w %d", ErrBadType, uint32(typ))
	case size > maxPacket:
		return 0, 0, fmt.Errorf("%w: %s of %d bytes, limit %d", ErrTooLarge, typ, size, maxPacket)
	}
	return typ, size, nil
}

// decode builds the packet of a complete frame; payload becomes its args.
func decode(magic string, typ Type, payload []byte, want string) (*Packet, error) {
	// The packet and room for the arguments of common requests come in
	// one allocation.
	pa := &packetArgs{Packet: Packet{Response: magic == ResMagic, Type: typ}}
	p := &pa.Packet
	if magic != want {
		// gearmand answers a "\0RES" request with ERROR INVALID_MAGIC and
		// keeps the connection; the payload has been consumed, so we are
		// still in sync.
		return p, &ProtocolError{Code: "INVALID_MAGIC", Text: "Request magic expected", cause: errNotARequest}
	}
	args, ok := splitArgs(pa.argv[:0], payload, typ.NumArgs())
	if !ok {
		p.Malformed = true
		return p, &ProtocolError{Code: "INVALID_PACKET", Text: "Packet has too few arguments", cause: errTooFewArgs}
	}
	p.Args = args
	return p, nil
}

// packetArgs is a Packet with room for the arguments of a submit, a
// WORK_* packet or a GRAB; packets with more arguments get a slice of
// their own from splitArgs.
type packetArgs struct {
	Packet
	argv [3][]byte
}

// SplitArgs splits a payload into n arguments at the first n-1 NULs; the
// last argument is the rest of the payload. It reports false when there are
// fewer than n-1 NULs.
func SplitArgs(payload []byte, n int) ([][]byte, bool) {
	return splitArgs(make([][]byte, 0, n), payload, n)
}

// splitArgs is SplitArgs appending to args.
func splitArgs(args [][]byte, payload []byte, n int) ([][]byte, bool) {
	if n == 0 {
		return nil, true
	}
	if cap(args) < n {
		args = make([][]byte, 0, n)
	}
	for i := 0; i < n-1; i++ {
		j := bytes.IndexByte(payload, 0)
		if j < 0 {
			return nil, false
		}
		args = append(args, payload[:j:j])
		payload = payload[j+1:]
	}
	return append(args, payload), true
}

// ProtocolError is a request the server must answer with an ERROR packet
// (Code and Text) while keeping the connection open.
type ProtocolError struct {
	Code, Text string
	cause      error
}

func (e *ProtocolError) Error() string { return e.Code + ": " + e.Text }
func (e *ProtocolError) Unwrap() error { return e.cause }

// AppendPacket appends one binary packet to dst: magic, type, and args
// joined by NULs.
func AppendPacket(dst []byte, magic string, typ Type, args ...[]byte) []byte {
	size := 0
	for i, a := range args {
		if i > 0 {
			size++
		}
		size += len(a)
	}
	dst = slices.Grow(dst, HeaderSize+size) // one allocation per packet
	dst = append(dst, magic...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(typ))
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	for i, a := range args {
		if i > 0 {
			dst = append(dst, 0)
		}
		dst = append(dst, a...)
	}
	return dst
}

// AppendResponse appends a "\0RES" packet.
func AppendResponse(dst []byte, typ Type, args ...[]byte) []byte {
	return AppendPacket(dst, ResMagic, typ, args...)
}

// AppendRequest appends a "\0REQ" packet.
func AppendRequest(dst []byte, typ Type, args ...[]byte) []byte {
	return AppendPacket(dst, ReqMagic, typ, args...)
}

// AppendError appends an ERROR packet with gearmand's code and text.
func AppendError(dst []byte, code, text string) []byte {
	return AppendResponse(dst, Error, []byte(code), []byte(text))
}
