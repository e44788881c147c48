package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gearbridge/gearbridge"
	bolt "go.etcd.io/bbolt"
)

// A job record is the value stored under the job's 8-byte big-endian ID:
//
//	byte    record version (recordV1)
//	byte    flags (bit 0: background)
//	byte    priority
//	uint32  attempts, big-endian (fixed offset, patched in place by SetAttempts)
//	int64   epoch, big-endian
//	then five length-prefixed (uvarint) byte strings:
//	        handle, function, unique, reducer, payload
//
// The record version lets a later release change the layout record by record;
// the file-wide format version lives in the meta bucket (format.go).
const (
	recordV1 = 1

	flagBackground = 1 << 0

	offAttempts  = 3
	recordHeader = 3 + 4 + 8
)

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
		len(j.Handle) + len(j.Function) + len(j.Unique) + len(j.Reducer) + len(j.Payload)
	b := make([]byte, recordHeader, n)
	b[0] = recordV1
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
	return b
}

func appendBytes[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeJob decodes a record into a new Job that shares no memory with rec
// (bbolt values are only valid inside their transaction).
func decodeJob(id uint64, rec []byte) (*gearbridge.Job, error) {
	if len(rec) < recordHeader {
		return nil, fmt.Errorf("job %d: %w (%d bytes)", id, errShortRecord, len(rec))
	}
	if rec[0] != recordV1 {
		return nil, fmt.Errorf("job %d: unknown record version %d", id, rec[0])
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

// recordHandle returns the handle stored in a record without decoding the
// rest; Remove needs it to delete the job's build reference.
func recordHandle(rec []byte) (string, bool) {
	if len(rec) < recordHeader || rec[0] != recordV1 {
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
