package store

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge"
)

// testOptions keep lock waits short in tests.
var testOptions = Options{
	Timeout:         300 * time.Millisecond,
	InitialMmapSize: 1 << 20,
	Logger:          slog.New(slog.DiscardHandler),
}

// mustOpen opens a store and, on cleanup, closes it and checks the file
// offline (bbolt consistency, version record, every record decodes, the
// counter covers every job, every build ref has a job).
func mustOpen(tb testing.TB, path string, opts Options) *DB {
	tb.Helper()
	s, err := Open(path, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		if _, err := Check(path); err != nil {
			tb.Errorf("Check after test: %v", err)
		}
	})
	return s
}

func tempPath(tb testing.TB) string {
	return filepath.Join(tb.TempDir(), "gearbridge.db")
}

func testJob(id uint64) *gearbridge.Job {
	return &gearbridge.Job{
		ID:         id,
		Handle:     fmt.Sprintf("H:test:%d", id),
		Function:   "build:project",
		Unique:     fmt.Sprintf("u-%d", id),
		Payload:    fmt.Appendf(nil, `{"n":%d}`, id),
		Priority:   gearbridge.Priority(id % gearbridge.NumPriorities),
		Background: id%2 == 0,
		Epoch:      int64(id * 1000),
		Attempts:   uint32(id % 5),
		Reducer:    "",
	}
}

// mustAdd adds jobs and waits for every done; it fails on any error.
func mustAdd(tb testing.TB, s *DB, jobs ...*gearbridge.Job) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		wg.Add(1)
		s.Add(j, func(err error) { errs[i] = err; wg.Done() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("Add job %d: %v", jobs[i].ID, err)
		}
	}
}

// addWait adds one job and returns done's error.
func addWait(s *DB, j *gearbridge.Job) error {
	ch := make(chan error, 1)
	s.Add(j, func(err error) { ch <- err })
	return <-ch
}

// restoreAll returns every stored job in Restore order.
func restoreAll(tb testing.TB, s *DB) ([]*gearbridge.Job, uint64) {
	tb.Helper()
	var got []*gearbridge.Job
	last, err := s.Restore(func(j *gearbridge.Job) error { got = append(got, j); return nil })
	if err != nil {
		tb.Fatalf("Restore: %v", err)
	}
	return got, last
}

// reopen closes s (without the cleanup's check, which runs later) and opens
// the same file again.
func reopen(tb testing.TB, s *DB) *DB {
	tb.Helper()
	if err := s.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	return mustOpen(tb, s.Path(), testOptions)
}

func sameJob(a, b *gearbridge.Job) bool {
	x, y := *a, *b
	if len(x.Payload) == 0 && len(y.Payload) == 0 {
		x.Payload, y.Payload = nil, nil
	}
	return reflect.DeepEqual(x, y)
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
