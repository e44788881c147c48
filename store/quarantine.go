package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A job record that fails its checksum or does not decode is never handed
// to a worker: at start-up it is moved, bytes unchanged, to the quarantine
// bucket, logged at ERROR with what can still be read of it, and counted.
// `gearbridge check` lists the quarantine; an operator can resubmit the
// jobs from there by hand.

// Damaged is a job record that failed its checks, as far as it can be read.
type Damaged struct {
	ID       uint64
	Handle   string // quoted as read; "?" when unreadable
	Function string
	Unique   string
	Err      error
}

func (d Damaged) String() string {
	return fmt.Sprintf("job %d (handle %s, function %s): %v", d.ID, d.Handle, d.Function, d.Err)
}

func damagedRecord(k, v []byte, err error) Damaged {
	d := Damaged{Err: err}
	if len(k) == 8 {
		d.ID = keyID(k)
	}
	d.Handle, d.Function, d.Unique = describeDamaged(v)
	return d
}

// quarantine moves the records with these keys from the jobs bucket to the
// quarantine bucket, and their build references with them.
func (s *DB) quarantine(keys [][]byte, found []Damaged) error {
	err := safely(func() error {
		return s.bolt.Update(func(tx *bolt.Tx) error {
			jobs, q := tx.Bucket(bucketJobs), tx.Bucket(bucketQuarantine)
			for _, k := range keys {
				v := jobs.Get(k)
				if v == nil {
					continue
				}
				if err := q.Put(k, append([]byte{}, v...)); err != nil {
					return err
				}
				if h, ok := recordHandle(v); ok {
					if err := tx.Bucket(bucketBuildRefs).Delete([]byte(h)); err != nil {
						return err
					}
				}
				if err := jobs.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("quarantine damaged records in %s: %w", s.path, err)
	}
	for _, d := range found {
		s.log.Error("damaged job record moved to quarantine; it will not run (gearbridge check lists it)",
			"job", d.ID, "handle", d.Handle, "function", d.Function, "unique", d.Unique, "err", d.Err)
	}
	s.stats.quarantined.Add(uint64(len(found)))
	return nil
}

// quarantined lists the quarantine bucket.
func quarantined(tx *bolt.Tx) []Damaged {
	q := tx.Bucket(bucketQuarantine)
	if q == nil {
		return nil
	}
	var out []Damaged
	q.ForEach(func(k, v []byte) error {
		out = append(out, damagedRecord(k, v, nil))
		return nil
	})
	return out
}
