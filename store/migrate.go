package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/gearbridge/gearbridge"
)

// migrateV1 rewrites a format-1 file as format 2 in one transaction: every
// job record gets its checksum (record version 2), every build reference
// and the handle counter theirs, and the quarantine bucket is created. A
// crash in the middle leaves the file at format 1, to be migrated again.
// A record that does not decode is moved to the quarantine as it is.
func migrateV1(tx *bolt.Tx) (jobs, quarantined int, err error) {
	q, err := tx.CreateBucketIfNotExists(bucketQuarantine)
	if err != nil {
		return 0, 0, err
	}
	b := tx.Bucket(bucketJobs)
	type rewrite struct{ key, val []byte }
	var rewrites []rewrite
	var bad [][]byte
	err = walkJobs(tx, recordV1, func(j *gearbridge.Job) error {
		rewrites = append(rewrites, rewrite{jobKey(j.ID), encodeJob(j)})
		return nil
	}, func(k, _ []byte, _ error) error {
		bad = append(bad, append([]byte{}, k...))
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	// bbolt forbids changing a bucket while iterating over it.
	for _, r := range rewrites {
		if err := b.Put(r.key, r.val); err != nil {
			return 0, 0, fmt.Errorf("rewrite job %d: %w", keyID(r.key), err)
		}
	}
	for _, k := range bad {
		if err := q.Put(k, append([]byte{}, b.Get(k)...)); err != nil {
			return 0, 0, err
		}
		if err := b.Delete(k); err != nil {
			return 0, 0, err
		}
	}
	refs := tx.Bucket(bucketBuildRefs)
	var refRewrites []rewrite
	err = refs.ForEach(func(k, v []byte) error {
		refRewrites = append(refRewrites, rewrite{append([]byte{}, k...), appendChecksum(append([]byte{}, v...))})
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	for _, r := range refRewrites {
		if err := refs.Put(r.key, r.val); err != nil {
			return 0, 0, err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyLastID); len(v) == 8 {
		if err := meta.Put(keyLastID, lastIDRecord(keyID(v))); err != nil {
			return 0, 0, err
		}
	}
	if err := meta.Put(keyFormat, formatRecord(FormatVersion)); err != nil {
		return 0, 0, err
	}
	return len(rewrites), len(bad), nil
}
