package protocol

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// FrameSize reports the length of the first complete message at the start
// of buf: a binary packet (header and payload) or a text line with its
// "\n". It returns 0 when more bytes are needed, and an error that ends
// the connection when buf cannot start a valid message (bad magic or type,
// a payload over maxPacket, a line over maxLine). It reads the header
// before anything is allocated, as Reader does.
func FrameSize(buf []byte, maxPacket uint32, maxLine int) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	if buf[0] != 0 {
		i := bytes.IndexByte(buf, '\n')
		switch {
		case i >= 0 && i+1 <= maxLine:
			return i + 1, nil
		case i >= 0 || len(buf) > maxLine:
			return 0, ErrLineTooLong
		}
		return 0, nil
	}
	if len(buf) < HeaderSize {
		if len(buf) >= 4 && string(buf[:4]) != ReqMagic && string(buf[:4]) != ResMagic {
			return 0, fmt.Errorf("%w %q", ErrBadMagic, buf[:4])
		}
		return 0, nil
	}
	_, size, err := checkHeader(buf[:HeaderSize], maxPacket)
	if err != nil {
		return 0, err
	}
	if n := HeaderSize + int(size); len(buf) >= n {
		return n, nil
	}
	return 0, nil
}

// DecodeRequest decodes one complete frame from FrameSize, as a server
// reads it. The message owns its memory (frame is copied). A
// *ProtocolError means the frame is answered with ERROR and the stream is
// still in sync.
func DecodeRequest(frame []byte) (Message, error) {
	if frame[0] != 0 {
		line := bytes.TrimSuffix(frame[:len(frame)-1], []byte("\r"))
		return Message{Line: append([]byte{}, line...)}, nil
	}
	typ := Type(binary.BigEndian.Uint32(frame[4:8]))
	p, err := decode(string(frame[:4]), typ, append([]byte(nil), frame[HeaderSize:]...), ReqMagic)
	return Message{Packet: p}, err
}
