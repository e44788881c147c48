package store

import (
	"sync"

	"github.com/gearbridge/gearbridge"
)

// Memory is a Store that keeps nothing across restarts, like gearmand's
// default builtin queue. It is what `--durability none` runs with, so that
// benchmarks measure the server rather than the disk.
type Memory struct {
	mu        sync.Mutex
	buildRefs map[string][]byte
	handles   map[uint64]string // job ID -> handle, only for jobs with a build ref
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{buildRefs: map[string][]byte{}, handles: map[uint64]string{}}
}

// Volatile marks the store as keeping nothing across restarts.
func (m *Memory) Volatile() {}

// Restore has nothing to restore.
func (m *Memory) Restore(func(*gearbridge.Job) error) (uint64, error) { return 0, nil }

// Add acknowledges at once: nothing is written anywhere.
func (m *Memory) Add(job *gearbridge.Job, done func(error)) { done(nil) }

// SetAttempts is a no-op: attempts only matter across restarts.
func (m *Memory) SetAttempts(uint64, uint32) {}

// Remove forgets the job's build reference, if any.
func (m *Memory) Remove(id uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.handles[id]; ok {
		delete(m.buildRefs, h)
		delete(m.handles, id)
	}
}

// SetBuildRef remembers ref for handle until the job is removed; an empty
// ref forgets it.
func (m *Memory) SetBuildRef(handle string, ref []byte) error {
	id, ok := handleID(handle)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(ref) == 0 {
		delete(m.buildRefs, handle)
		delete(m.handles, id)
		return nil
	}
	m.buildRefs[handle] = append([]byte(nil), ref...)
	if ok {
		m.handles[id] = handle
	}
	return nil
}

// BuildRef returns what SetBuildRef recorded.
func (m *Memory) BuildRef(handle string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ref, ok := m.buildRefs[handle]
	return append([]byte(nil), ref...), ok, nil
}

// Close does nothing.
func (m *Memory) Close() error { return nil }

var (
	_ gearbridge.Store    = (*Memory)(nil)
	_ gearbridge.Volatile = (*Memory)(nil)
)
