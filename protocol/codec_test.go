package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func header(magic string, typ, size uint32) []byte {
	b := []byte(magic)
	b = binary.BigEndian.AppendUint32(b, typ)
	return binary.BigEndian.AppendUint32(b, size)
}

func TestRoundTripEveryType(t *testing.T) {
	for typ := CanDo; typ <= MaxType; typ++ {
		args := make([][]byte, typ.NumArgs())
		for i := range args {
			args[i] = []byte{'a' + byte(i)}
		}
		if len(args) > 0 {
			args[len(args)-1] = []byte("last\x00with\x00nuls")
		}
		wire := AppendRequest(nil, typ, args...)
		p, err := NewReader(bytes.NewReader(wire), 1<<20, 1024).ReadPacket()
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if p.Type != typ || p.Response {
			t.Fatalf("%s: got type %s response=%v", typ, p.Type, p.Response)
		}
		if len(p.Args) != len(args) {
			t.Fatalf("%s: %d args, want %d", typ, len(p.Args), len(args))
		}
		for i := range args {
			if !bytes.Equal(p.Args[i], args[i]) {
				t.Fatalf("%s arg %d: %q, want %q", typ, i, p.Args[i], args[i])
			}
		}
	}
}

func TestWorkedExampleBytes(t *testing.T) {
	// PROTOCOL's worked example: SUBMIT_JOB "reverse\0\0test" is 13 bytes.
	got := AppendRequest(nil, SubmitJob, []byte("reverse"), nil, []byte("test"))
	want := append(header(ReqMagic, 7, 13), "reverse\x00\x00test"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	got = AppendResponse(nil, Noop)
	if !bytes.Equal(got, header(ResMagic, 6, 0)) {
		t.Fatalf("NOOP: got %q", got)
	}
}

func TestReaderRejects(t *testing.T) {
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"bad magic", header("\x00XYZ", 1, 0), ErrBadMagic},
		{"type 0", header(ReqMagic, 0, 0), ErrBadType},
		{"type 43", header(ReqMagic, 43, 0), ErrBadType},
		{"too large", header(ReqMagic, 7, 1<<30), ErrTooLarge},
		{"truncated header", []byte("\x00REQ\x00\x00"), ErrTruncated},
		{"truncated payload", append(header(ReqMagic, 1, 10), "abc"...), ErrTruncated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(c.input), 1<<20, 1024).Read()
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestReaderKeepsSyncAfterProtocolErrors(t *testing.T) {
	var in []byte
	in = AppendResponse(in, EchoReq, []byte("x"))              // wrong magic: ERROR, stays open
	in = append(in, header(ReqMagic, uint32(SubmitJob), 2)...) // too few NULs
	in = append(in, "fn"...)
	in = AppendRequest(in, EchoReq, []byte("ok"))
	r := NewReader(bytes.NewReader(in), 1<<20, 1024)

	var perr *ProtocolError
	if _, err := r.Read(); !errors.As(err, &perr) || perr.Code != "INVALID_MAGIC" {
		t.Fatalf("want INVALID_MAGIC, got %v", err)
	}
	m, err := r.Read()
	if !errors.As(err, &perr) || perr.Code != "INVALID_PACKET" || !m.Packet.Malformed {
		t.Fatalf("want INVALID_PACKET, got %v", err)
	}
	m, err = r.Read()
	if err != nil || m.Packet.Type != EchoReq || string(m.Packet.Arg(0)) != "ok" {
		t.Fatalf("stream out of sync: %+v %v", m.Packet, err)
	}
}

func TestTextLinesAndMixedModes(t *testing.T) {
	in := []byte("status\r\n")
	in = AppendRequest(in, EchoReq, []byte("e"))
	in = append(in, "workers\n"...)
	r := NewReader(bytes.NewReader(in), 1<<20, 1024)
	want := []string{"status", "", "workers"}
	for _, w := range want {
		m, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		if w == "" {
			if m.Packet == nil || m.Packet.Type != EchoReq {
				t.Fatalf("want ECHO_REQ, got %+v", m)
			}
			continue
		}
		if string(m.Line) != w {
			t.Fatalf("line %q, want %q", m.Line, w)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestLineLimits(t *testing.T) {
	long := append(bytes.Repeat([]byte("x"), 5000), '\n')
	if _, err := NewReader(bytes.NewReader(long), 1<<20, 1024).Read(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("want ErrLineTooLong, got %v", err)
	}
	if _, err := NewReader(bytes.NewReader([]byte("stat")), 1<<20, 1024).Read(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("want ErrTruncated, got %v", err)
	}
}

func TestAdminFields(t *testing.T) {
	got := AdminFields([]byte("  cancel   job  H:x:1 "))
	if len(got) != 3 || got[0] != "cancel" || got[1] != "job" || got[2] != "H:x:1" {
		t.Fatalf("got %q", got)
	}
	if AdminFields(nil) != nil {
		t.Fatal("empty line should have no fields")
	}
}

// FuzzReader feeds arbitrary bytes to the server-side reader: it must never
// panic, never allocate past the limit, and every packet it returns must
// re-encode and decode to the same type and arguments.
func FuzzReader(f *testing.F) {
	for typ := Type(0); typ <= MaxType+1; typ++ {
		args := make([][]byte, typ.NumArgs())
		for i := range args {
			args[i] = []byte("arg")
		}
		f.Add(AppendRequest(nil, typ, args...))
		f.Add(AppendResponse(nil, typ, args...))
	}
	f.Add([]byte("status\r\nworkers\n"))
	f.Add(append(header(ReqMagic, 7, 3), "a\x00b"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		r := NewReader(bytes.NewReader(data), limit, 4096)
		for {
			m, err := r.Read()
			var perr *ProtocolError
			if err != nil && !errors.As(err, &perr) {
				return
			}
			if m.Packet == nil {
				continue
			}
			if m.Packet.Malformed || m.Packet.Response {
				continue
			}
			wire := AppendRequest(nil, m.Packet.Type, m.Packet.Args...)
			p2, err := NewReader(bytes.NewReader(wire), limit, 4096).ReadPacket()
			if err != nil || p2.Type != m.Packet.Type || len(p2.Args) != len(m.Packet.Args) {
				t.Fatalf("re-encode of %s failed: %v", m.Packet.Type, err)
			}
		}
	})
}

// oneRead hands out its data in one Read, and fails the test if it is
// read again.
type oneRead struct {
	t    *testing.T
	data []byte
	done bool
}

func (o *oneRead) Read(p []byte) (int, error) {
	if o.done {
		o.t.Fatal("read from the connection again")
	}
	o.done = true
	return copy(p, o.data), nil
}

// Ready says whether the next Read can return without reading from the
// connection: after the first message, the rest of the bytes of the
// same read hold a complete message or only the start of one.
func TestReadyOnlyForACompleteBufferedMessage(t *testing.T) {
	echo := AppendRequest(nil, EchoReq, []byte("x"))
	cases := []struct {
		name  string
		rest  []byte
		ready bool
	}{
		{"nothing", nil, false},
		{"one byte of a header", echo[:1], false},
		{"5 bytes of a header", echo[:5], false},
		{"a header without its payload", echo[:HeaderSize], false},
		{"a packet", echo, true},
		{"a packet and part of another", append(append([]byte{}, echo...), echo[:5]...), true},
		{"an empty packet", AppendRequest(nil, EchoReq), true},
		{"part of a line", []byte("st"), false},
		{"a line without its newline", []byte("status\r"), false},
		{"a line", []byte("status\n"), true},
		{"a bad magic", []byte("\x00XXXXXXXXXXX"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := append(append([]byte{}, echo...), tc.rest...)
			r := NewReader(&oneRead{t: t, data: data}, 1<<20, 1024)
			if _, err := r.Read(); err != nil {
				t.Fatal(err)
			}
			if got := r.Ready(); got != tc.ready {
				t.Fatalf("Ready() = %v with %q buffered, want %v", got, tc.rest, tc.ready)
			}
			if tc.ready {
				if _, err := r.Read(); err != nil { // must not read again
					t.Fatal(err)
				}
			}
		})
	}
}
