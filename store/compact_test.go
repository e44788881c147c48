package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

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
	grown := fileSize(t, path)

	before, after, err := Compact(path, 0)
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if before.Jobs != 10 || after.Jobs != 10 || after.BuildRefs != 1 || after.LastID != 2000 {
		t.Fatalf("before %+v, after %+v", before, after)
	}
	if size := fileSize(t, path); size*4 > grown {
		t.Fatalf("compacted file %d bytes, was %d", size, grown)
	}
	s = mustOpen(t, path, testOptions)
	got, last := restoreAll(t, s)
	if len(got) != 10 || got[0].ID != 1991 || last != 2000 || !bytes.Equal(got[0].Payload, big) {
		t.Fatalf("restored %d jobs (first %d), counter %d", len(got), got[0].ID, last)
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

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
