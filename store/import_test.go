package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gearbridge/gearbridge"
)

func importJob(n int) ImportJob {
	return ImportJob{
		Job: gearbridge.Job{
			Function: "fn", Unique: fmt.Sprintf("u%d", n), Payload: fmt.Appendf(nil, "p%d", n),
			Priority: gearbridge.Priority(n % 3), Background: true, Epoch: int64(n * 100),
		},
		Marker: fmt.Appendf(nil, "m%d", n),
	}
}

func mustImporter(t *testing.T, path string) *Importer {
	t.Helper()
	im, err := OpenImporter(path, "H:imp", testOptions.Timeout, nil)
	if err != nil {
		t.Fatalf("OpenImporter: %v", err)
	}
	return im
}

// Imported jobs continue the file's handle counter after the jobs already
// there, keep their fields, and a second import of the same markers adds
// nothing, even after the first import's jobs have run and left the store.
func TestImport_ContinuesTheCounterAndIsIdempotent(t *testing.T) {
	path := tempPath(t)
	s := mustOpen(t, path, testOptions)
	mustAdd(t, s, testJob(1), testJob(2))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	im := mustImporter(t, path)
	batch := []ImportJob{importJob(1), importJob(2), importJob(3)}
	batch[2].MarkOnly = true
	res, err := im.Import(batch)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res) != fmt.Sprint([]ImportResult{Added, Added, Marked}) {
		t.Fatalf("results %v", res)
	}
	if batch[0].Job.Handle != "H:imp:3" || batch[1].Job.Handle != "H:imp:4" || im.LastID() != 4 {
		t.Fatalf("handles %q %q, counter %d", batch[0].Job.Handle, batch[1].Job.Handle, im.LastID())
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, path, testOptions)
	got, last := restoreAll(t, s)
	if len(got) != 4 || last != 4 {
		t.Fatalf("restored %d jobs, counter %d", len(got), last)
	}
	for i, want := range []gearbridge.Job{batch[0].Job, batch[1].Job} {
		if !sameJob(got[2+i], &want) {
			t.Errorf("restored %+v, want %+v", got[2+i], want)
		}
	}
	// The imported jobs run and are removed.
	s.Remove(3)
	s.Remove(4)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	im = mustImporter(t, path)
	again := []ImportJob{importJob(1), importJob(2), importJob(3), importJob(4)}
	res, err = im.Import(again)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res) != fmt.Sprint([]ImportResult{AlreadyImported, AlreadyImported, AlreadyImported, Added}) {
		t.Fatalf("second import: %v", res)
	}
	if again[3].Job.ID != 5 {
		t.Fatalf("new job got ID %d, want 5", again[3].Job.ID)
	}
	var stored []string
	if err := im.Stored(func(j *gearbridge.Job) { stored = append(stored, j.Handle) }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(stored) != "[H:test:1 H:test:2 H:imp:5]" {
		t.Fatalf("stored %v", stored)
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	if info, err := Check(path); err != nil || info.LastID != 5 || info.Jobs != 3 || info.Imported != 4 {
		t.Fatalf("check: %+v %v", info, err)
	}
}

// The import is offline: a store that a server holds is refused, and the
// importer holds the file so that no server starts meanwhile.
func TestImport_RefusesAFileInUse(t *testing.T) {
	path := tempPath(t)
	s := mustOpen(t, path, testOptions)
	if _, err := OpenImporter(path, "H:x", testOptions.Timeout, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("OpenImporter on an open store: %v, want ErrInUse", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	im := mustImporter(t, path)
	defer im.Close()
	if _, err := Open(path, testOptions); !errors.Is(err, ErrInUse) {
		t.Fatalf("Open during an import: %v, want ErrInUse", err)
	}
}

// A new file is created, as serve would.
func TestImport_CreatesAMissingStore(t *testing.T) {
	path := tempPath(t)
	im := mustImporter(t, path)
	if _, err := im.Import([]ImportJob{importJob(7)}); err != nil {
		t.Fatal(err)
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	if info, err := Check(path); err != nil || info.Jobs != 1 || info.LastID != 1 {
		t.Fatalf("check: %+v %v", info, err)
	}
}
