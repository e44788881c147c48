package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge"
)

// A file that held a large queue shrinks when compacted, and keeps its
// jobs, build references and handle counter.
func TestCompact_ShrinksAndKeepsEverything(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 4000)
	var jobs []*gearbridge.Job
	for id := uint64(1); id <= 2000; id++ {
		j := testJob(id)
		j.Payload = big
		jobs = append(jobs, j)
	}
	mustAdd(t, s, jobs...) // in group commits
	if err := s.SetBuildRef("H:test:1999", []byte(`{"master":"m"}`)); err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 1990; id++ {
		s.Remove(id)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}

	before, after, err := Compact(path, 0)
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("the compacted file's mode: %v %v, want 0640 as before", fi.Mode(), err)
	}
	if before.Jobs != 10 || after.Jobs != 10 || after.BuildRefs != 1 || after.LastID != 2000 {
		t.Fatalf("before %+v, after %+v", before, after)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != after.Size || after.Size*4 > before.Size {
		t.Fatalf("compacted file %d bytes (%v), was %d", after.Size, err, before.Size)
	}
	s = mustOpen(t, path, testOptions)
	got, last := restoreAll(t, s)
	if len(got) != 10 || got[0].ID != 1991 || last != 2000 || !bytes.Equal(got[0].Payload, big) {
		t.Fatalf("restored %d jobs, counter %d", len(got), last)
	}
	if ref, ok, err := s.BuildRef("H:test:1999"); err != nil || !ok || string(ref) != `{"master":"m"}` {
		t.Fatalf("build ref %q %v %v", ref, ok, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("beside the store: %v", entries) // no copy left behind
	}
}

// A store in use by a server is not compacted.
func TestCompact_RefusesAFileInUse(t *testing.T) {
	path := tempPath(t)
	mustOpen(t, path, testOptions)
	if _, _, err := Compact(path, testOptions.Timeout); !errors.Is(err, ErrInUse) {
		t.Fatalf("Compact of an open store: %v, want ErrInUse", err)
	}
}

// A server that starts while the file is being compacted waits for the
// lock on the file it opened. When the compacted copy is renamed into
// place, it must run on the copy, not on the replaced file, whose jobs
// would be gone at the next start.
func TestOpen_WaitingThroughAReplacementOpensTheNewFile(t *testing.T) {
	path := tempPath(t)
	s := mustOpen(t, path, testOptions)
	mustAdd(t, s, testJob(1))
	s.Close()
	replacement := filepath.Join(t.TempDir(), "new.db")
	s, err := Open(replacement, testOptions) // not mustOpen: it checks the path at the end
	if err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s, testJob(2))
	s.Close()

	// Hold the lock as Compact does, with a read-only open.
	holder, info, err := openChecked(path, testOptions.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if info.Jobs != 1 {
		t.Fatalf("%+v", info)
	}
	opts := testOptions
	opts.Timeout = 10 * time.Second
	opened := make(chan *DB, 1)
	go func() {
		s, err := Open(path, opts)
		if err != nil {
			t.Error(err)
		}
		opened <- s
	}()
	// Once the open holds the old file and waits for its lock, replace it.
	waitFor(t, "the open to wait for the lock", func() bool { return openCount(t, path) == 2 })
	if err := os.Rename(replacement, path); err != nil {
		t.Fatal(err)
	}
	holder.Close()
	s = <-opened
	if s == nil {
		t.FailNow()
	}
	defer s.Close()
	if got, _ := restoreAll(t, s); len(got) != 1 || got[0].ID != 2 {
		t.Fatalf("restored %v, want job 2 of the new file", got)
	}
}

// openCount is how many of this process's descriptors name path.
func openCount(t *testing.T, path string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, _ := os.Readlink("/proc/self/fd/" + fd.Name()); target == path {
			n++
		}
	}
	return n
}
