package store

import (
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gearbridge/gearbridge"
)

// commitHealth remembers whether the store can commit, for /readyz: a
// failed commit makes it unhealthy until a commit that writes a job (or a
// probe) succeeds. Removes and attempt counts alone do not count: they
// free space and may succeed where an Add cannot.
type commitHealth struct {
	mu      sync.Mutex
	err     error
	since   time.Time
	probing bool
}

// keyProbe is written and deleted by a probe; it never stays on disk.
var keyProbe = []byte("probe")

func (s *DB) commitFailed(err error) {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	if s.health.err == nil {
		s.health.since = time.Now()
	}
	s.health.err = err
	s.health.probing = false
}

func (s *DB) commitWorked(batch []op) {
	for i := range batch {
		if k := batch[i].kind; (k == opAdd || k == opBuildRef || k == opProbe) && batch[i].err == nil {
			s.health.mu.Lock()
			s.health.err, s.health.probing = nil, false
			s.health.mu.Unlock()
			return
		}
	}
}

// CommitError reports why the store cannot commit, or nil when its last
// commit that wrote a job succeeded. While it fails, each call queues one
// small probe commit, so that a store nobody writes to (a server taken out
// of service for not being ready gets no new jobs) still notices when the
// disk has room again.
func (s *DB) CommitError() error {
	s.health.mu.Lock()
	err, since := s.health.err, s.health.since
	probe := err != nil && !s.health.probing
	if probe {
		s.health.probing = true
	}
	s.health.mu.Unlock()
	if err == nil {
		return nil
	}
	if probe && !s.enqueue(op{kind: opProbe}) {
		return gearbridge.ErrStoreClosed
	}
	return fmt.Errorf("commits failing since %s: %w", since.UTC().Format(time.RFC3339), err)
}

// probeWrite writes a job-sized value and deletes it again: the
// transaction needs new pages, as an Add would. Deleting in the same
// transaction leaves nothing behind.
func probeWrite(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if err := meta.Put(keyProbe, make([]byte, 4096)); err != nil {
		return fmt.Errorf("probe write: %w", err)
	}
	return meta.Delete(keyProbe)
}
