package protocol

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FrameSize and DecodeRequest, fed byte by byte, must see exactly the
// messages a Reader sees.
func TestFramesMatchTheReader(t *testing.T) {
	var in []byte
	in = AppendRequest(in, SubmitJob, []byte("fn"), []byte("u"), []byte("da\x00ta"))
	in = append(in, "status\r\n"...)
	in = AppendRequest(in, GrabJobUniq)
	in = AppendResponse(in, EchoReq, []byte("x"))
	in = append(in, "workers\n"...)

	r := NewReader(bytes.NewReader(in), 1<<20, 1024)
	var want []string
	for {
		m, err := r.Read()
		if err == io.EOF {
			break
		}
		want = append(want, describe(m, err))
	}
	var got []string
	var buf []byte
	for _, b := range in {
		buf = append(buf, b)
		for {
			n, err := FrameSize(buf, 1<<20, 1024)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			m, err := DecodeRequest(buf[:n])
			got = append(got, describe(m, err))
			buf = buf[n:]
		}
	}
	if len(buf) != 0 || len(got) != len(want) {
		t.Fatalf("got %q (left %q), want %q", got, buf, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: %s, want %s", i, got[i], want[i])
		}
	}
}

func describe(m Message, err error) string {
	if m.Packet == nil {
		return "line " + string(m.Line)
	}
	s := m.Packet.Type.String()
	for _, a := range m.Packet.Args {
		s += " " + string(a)
	}
	if err != nil {
		s += " err " + err.Error()
	}
	return s
}

func TestFrameSizeRefusesEarly(t *testing.T) {
	if _, err := FrameSize(header("\x00XYZ", 1, 0)[:4], 1<<20, 1024); !errors.Is(err, ErrBadMagic) {
		t.Errorf("bad magic: %v", err)
	}
	if _, err := FrameSize(header(ReqMagic, 43, 0), 1<<20, 1024); !errors.Is(err, ErrBadType) {
		t.Errorf("type 43: %v", err)
	}
	if _, err := FrameSize(header(ReqMagic, 7, 1<<30), 1<<20, 1024); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	if _, err := FrameSize(bytes.Repeat([]byte("x"), 2000), 1<<20, 1024); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("long line: %v", err)
	}
	if n, err := FrameSize([]byte("statu"), 1<<20, 1024); n != 0 || err != nil {
		t.Errorf("partial line: %d %v", n, err)
	}
}

// FuzzFrames feeds arbitrary bytes, split at an arbitrary point, through
// FrameSize and DecodeRequest: no panic, no frame past the input, and the
// same messages a Reader returns for the same bytes.
func FuzzFrames(f *testing.F) {
	for typ := Type(0); typ <= MaxType+1; typ++ {
		args := make([][]byte, typ.NumArgs())
		for i := range args {
			args[i] = []byte("arg")
		}
		f.Add(AppendRequest(nil, typ, args...), uint8(5))
	}
	f.Add([]byte("status\r\nworkers\n"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		const maxPacket, maxLine = 1 << 16, 4096
		var want []string
		r := NewReader(bytes.NewReader(data), maxPacket, maxLine)
		for {
			m, err := r.Read()
			var perr *ProtocolError
			if err != nil && !errors.As(err, &perr) {
				break
			}
			want = append(want, describe(m, err))
		}
		var got []string
		split := min(int(cut), len(data))
		var buf []byte
		for _, part := range [][]byte{data[:split], data[split:]} {
			buf = append(buf, part...)
			for {
				n, err := FrameSize(buf, maxPacket, maxLine)
				if err != nil || n == 0 {
					break
				}
				if n > len(buf) {
					t.Fatalf("frame of %d bytes in %d", n, len(buf))
				}
				m, err := DecodeRequest(buf[:n])
				got = append(got, describe(m, err))
				buf = buf[n:]
			}
		}
		if len(got) != len(want) {
			t.Fatalf("frames %q, reader %q", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("message %d: %s, reader %s", i, got[i], want[i])
			}
		}
	})
}
