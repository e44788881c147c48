package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/gearbridge/gearbridge"
	bolt "go.etcd.io/bbolt"
)

// A job record is the value stored under the job's 8-byte big-endian ID:
//
//	byte    record version (recordV2; recordV1 in format-1 files)
//	byte    flags (bit 0: background)
//	byte    priority
//	uint32  attempts, big-endian (fixed offset, patched in place by SetAttempts)
//	int64   epoch, big-endian
//	then five length-prefixed (uvarint) byte strings:
//	        handle, function, unique, reducer, payload
//	uint32  CRC-32C (Castagnoli) of everything before it, big-endian (v2 only)
//
// The record version lets a later release change the layout record by record;
// the file-wide format version lives in the meta bucket (format.go). bbolt
// checks its meta pages but not the values in its pages: the checksum is
// what catches a flipped bit in a job's payload or header.
const (
	recordV1 = 1 // format 1: no checksum
	recordV2 = 2

	flagBackground = 1 << 0

	offAttempts  = 3
	recordHeader = 3 + 4 + 8
	checksumLen  = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendChecksum appends the CRC-32C of b to b.
func appendChecksum(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// splitChecksum verifies the trailing CRC-32C of v and returns what it covers.
func splitChecksum(v []byte) ([]byte, error) {
	if len(v) < checksumLen {
		return nil, errChecksum
	}
	body := v[:len(v)-checksumLen]
	if binary.BigEndian.Uint32(v[len(body):]) != crc32.Checksum(body, castagnoli) {
		return nil, errChecksum
	}
	return body, nil
}

// errChecksum is wrapped by decode errors for records whose bytes changed
// after they were written.
var errChecksum = errors.New("checksum mismatch (the record was damaged on disk)")

// errShortRecord is wrapped by decode errors for records that end early.
var errShortRecord = errors.New("record ends early")

// jobKey returns the key of the job with the given ID: key order is ID order.
func jobKey(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

// encodeJob returns the record of job (without its ID, which is the key).
func encodeJob(j *gearbridge.Job) []byte {
	n := recordHeader + 5*binary.MaxVarintLen32 +
		len(j.Handle) + len(j.Function) + len(j.Unique) + len(j.Reducer) + len(j.Payload) + checksumLen
	b := make([]byte, recordHeader, n)
	b[0] = recordV2
	if j.Background {
		b[1] |= flagBackground
	}
	b[2] = byte(j.Priority)
	binary.BigEndian.PutUint32(b[offAttempts:], j.Attempts)
	binary.BigEndian.PutUint64(b[7:], uint64(j.Epoch))
	b = appendBytes(b, j.Handle)
	b = appendBytes(b, j.Function)
	b = appendBytes(b, j.Unique)
	b = appendBytes(b, j.Reducer)
	b = appendBytes(b, j.Payload)
	return appendChecksum(b)
}

// withAttempts returns a copy of rec with its attempt count set (and, in a
// v2 record, its checksum recomputed).
func withAttempts(rec []byte, attempts uint32) []byte {
	v := append([]byte(nil), rec...)
	binary.BigEndian.PutUint32(v[offAttempts:], attempts)
	if v[0] == recordV2 && len(v) >= recordHeader+checksumLen {
		v = appendChecksum(v[:len(v)-checksumLen])
	}
	return v
}

func appendBytes[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeJob decodes a record of a format-2 file into a new Job that shares
// no memory with rec (bbolt values are only valid inside their
// transaction). A record whose checksum does not match is an error.
func decodeJob(id uint64, rec []byte) (*gearbridge.Job, error) {
	return decodeRecord(id, rec, recordV2)
}

// decodeRecord decodes a record that must have version want: recordV2 in
// format-2 files, recordV1 in format-1 files (before their migration).
func decodeRecord(id uint64, rec []byte, want byte) (*gearbridge.Job, error) {
	if len(rec) < recordHeader {
		return nil, fmt.Errorf("job %d: %w (%d bytes)", id, errShortRecord, len(rec))
	}
	if rec[0] != want {
		return nil, fmt.Errorf("job %d: record version %d in a file of version-%d records", id, rec[0], want)
	}
	if want == recordV2 {
		body, err := splitChecksum(rec)
		if err != nil {
			return nil, fmt.Errorf("job %d: %w", id, err)
		}
		rec = body
	}
	return parseRecord(id, rec)
}

// parseRecord reads the fields of a record without its checksum.
func parseRecord(id uint64, rec []byte) (*gearbridge.Job, error) {
	if len(rec) < recordHeader {
		return nil, fmt.Errorf("job %d: %w (%d bytes)", id, errShortRecord, len(rec))
	}
	if rec[1]&^flagBackground != 0 {
		return nil, fmt.Errorf("job %d: unknown flags %#x", id, rec[1])
	}
	if rec[2] >= gearbridge.NumPriorities {
		return nil, fmt.Errorf("job %d: bad priority %d", id, rec[2])
	}
	j := &gearbridge.Job{
		ID:         id,
		Background: rec[1]&flagBackground != 0,
		Priority:   gearbridge.Priority(rec[2]),
		Attempts:   binary.BigEndian.Uint32(rec[offAttempts:]),
		Epoch:      int64(binary.BigEndian.Uint64(rec[7:])),
	}
	var fields [5][]byte
	rest := rec[recordHeader:]
	for i := range fields {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return nil, fmt.Errorf("job %d: field %d: %w", id, i, errShortRecord)
		}
		fields[i] = rest[w : w+int(n)]
		rest = rest[w+int(n):]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("job %d: %d trailing bytes", id, len(rest))
	}
	j.Handle = string(fields[0])
	j.Function = string(fields[1])
	j.Unique = string(fields[2])
	j.Reducer = string(fields[3])
	j.Payload = append([]byte{}, fields[4]...)
	return j, nil
}

// describeDamaged reads what it can of a damaged record, for the operator:
// its handle, function and unique as far as they still parse.
func describeDamaged(rec []byte) (handle, function, unique string) {
	if len(rec) < recordHeader {
		return "?", "?", "?"
	}
	rest := rec[recordHeader:]
	out := []string{"?", "?", "?"}
	for i := range out {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) || n > 1024 {
			break
		}
		out[i] = strconv.QuoteToASCII(string(rest[w : w+int(n)]))
		rest = rest[w+int(n):]
	}
	return out[0], out[1], out[2]
}

// recordHandle returns the handle stored in a record without decoding the
// rest; Remove needs it to delete the job's build reference.
func recordHandle(rec []byte) (string, bool) {
	if len(rec) < recordHeader || (rec[0] != recordV1 && rec[0] != recordV2) {
		return "", false
	}
	rest := rec[recordHeader:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || n > uint64(len(rest)-w) {
		return "", false
	}
	return string(rest[w : w+int(n)]), true
}

// jobHasHandle reports whether jobs holds a job whose handle is handle: a
// build reference may only name a stored job.
func jobHasHandle(jobs *bolt.Bucket, handle string) bool {
	id, ok := handleID(handle)
	if !ok {
		return false
	}
	h, ok := recordHandle(jobs.Get(jobKey(id)))
	return ok && h == handle
}
