package store

import (
	"bytes"

	"errors"

	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"testing"

	"github.com/gearbridge/gearbridge"
)

// flipInFile flips one bit of the first occurrence of marker in the file,
// at offset off from it, in every copy bbolt left in the file.
func flipInFile(t *testing.T, path string, marker []byte, off int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt copies pages on write: damage every copy, the live one among them.
	n := 0
	for i := 0; ; n++ {
		j := bytes.Index(data[i:], marker)
		if j < 0 {
			break
		}
		data[i+j+off] ^= 0x02
		i += j + 1
	}
	if n == 0 {
		t.Fatalf("%q not found in the file", marker)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// openLogged opens the store at path with its log kept for the test.
func openLogged(t *testing.T, path string) (*DB, *bytes.Buffer) {
	t.Helper()
	var logged bytes.Buffer
	opts := testOptions
	opts.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, &logged
}

// A flipped bit in a job record is caught by its checksum: Check names the
// job, and a server never hands it to a worker (issue 14).
func TestChecksum_DamagedRecordsAreCaughtAndQuarantined(t *testing.T) {
	for _, tc := range []struct {
		name   string
		marker string // bytes of the victim's record to find in the file
		off    int    // which byte to damage, relative to marker
	}{
		{"a bit in the payload", `{"victim":"payload-xxxx"}`, 12},
		// The record header sits just before its handle: the priority byte
		// is 15 bytes before the handle's length prefix.
		{"a bit in the header", "H:test:victim", -1 - 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tempPath(t)
			s, err := Open(path, testOptions)
			if err != nil {
				t.Fatal(err)
			}
			victim := &gearbridge.Job{ID: 2, Handle: "H:test:victim", Function: "build:victim", Unique: "v",
				Payload: []byte(`{"victim":"payload-xxxx"}`), Priority: gearbridge.PriorityNormal}
			mustAdd(t, s, testJob(1), victim, testJob(3))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			flipInFile(t, path, []byte(tc.marker), tc.off)

			info, err := Check(path)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "H:test:victim") ||
				!strings.Contains(err.Error(), "build:victim") {
				t.Fatalf("Check = %v; want ErrCorrupt naming the handle and function", err)
			}
			if len(info.Damaged) != 1 || info.Damaged[0].ID != 2 || info.Jobs != 2 {
				t.Fatalf("Check found %+v", info)
			}

			s, logged := openLogged(t, path)
			got, last := restoreAll(t, s)
			if len(got) != 2 || got[0].ID != 1 || got[1].ID != 3 || last != 3 {
				t.Fatalf("restored %d jobs (last ID %d); want jobs 1 and 3", len(got), last)
			}
			if s.Stats().Quarantined != 1 {
				t.Errorf("quarantined %d", s.Stats().Quarantined)
			}
			if l := logged.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "H:test:victim") ||
				!strings.Contains(l, "build:victim") {
				t.Errorf("log: %s", l)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Quarantined once: listed, no longer an error, not served again.
			info, err = Check(path)
			if err != nil || len(info.Quarantined) != 1 || !strings.Contains(info.Quarantined[0].Handle, "H:test:victim") {
				t.Fatalf("Check after the quarantine = %+v, %v", info, err)
			}
			s = mustOpen(t, path, testOptions)
			if got, _ := restoreAll(t, s); len(got) != 2 {
				t.Errorf("restored %d jobs after the quarantine", len(got))
			}
		})
	}
}

// A damaged build reference is an error, never a silently different build.
func TestChecksum_DamagedBuildRef(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s, testJob(1))
	if err := s.SetBuildRef("H:test:1", []byte(`{"queue_id":123456}`)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	flipInFile(t, path, []byte(`{"queue_id":123456}`), 14)
	if _, err := Check(path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "build ref") {
		t.Errorf("Check = %v", err)
	}
	s, err = Open(path, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ref, ok, err := s.BuildRef("H:test:1"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("BuildRef = %q, %v, %v; want ErrCorrupt", ref, ok, err)
	}
}

// A file written by the release before checksums (format 1, the fixture
// was made with that release's code) is migrated on first open, with every
// job, build reference and the handle counter.
func TestMigrate_FormatV1File(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gearbridge.db")
	src, err := os.ReadFile(filepath.Join("testdata", "format-v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := Check(path)
	if err != nil || info.FormatVersion != 1 || info.Jobs != 4 || info.BuildRefs != 1 || info.LastID != 6 {
		t.Fatalf("Check of the format-1 file = %+v, %v", info, err)
	}

	s, logged := openLogged(t, path)
	got, last := restoreAll(t, s)
	want := []gearbridge.Job{
		{ID: 1, Handle: "H:fixture:1", Function: "build:unit", Unique: "zuul-1", Payload: []byte(`{"ZUUL_UUID":"zuul-1"}`), Priority: gearbridge.PriorityNormal},
		{ID: 2, Handle: "H:fixture:2", Function: "bg", Payload: []byte("background payload"), Priority: gearbridge.PriorityLow, Background: true, Attempts: 2},
		{ID: 3, Handle: "H:fixture:3", Function: "high", Unique: "u3", Payload: []byte("x"), Priority: gearbridge.PriorityHigh, Background: true, Epoch: 4102444800, Reducer: "r"},
		{ID: 5, Handle: "H:fixture:5", Function: "build:unit", Unique: "zuul-5", Priority: gearbridge.PriorityNormal},
	}
	if len(got) != len(want) || last != 6 {
		t.Fatalf("restored %d jobs, last ID %d", len(got), last)
	}
	for i := range want {
		if !sameJob(got[i], &want[i]) {
			t.Errorf("job %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if ref, ok, err := s.BuildRef("H:fixture:1"); !ok || err != nil || !strings.Contains(string(ref), `"queue_id":7`) {
		t.Errorf("build ref: %q, %v, %v", ref, ok, err)
	}
	if !strings.Contains(logged.String(), "migrated") {
		t.Errorf("no migration logged: %s", logged.String())
	}
	mustAdd(t, s, testJob(7))
	s.SetAttempts(1, 9)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	info, err = Check(path)
	if err != nil || info.FormatVersion != FormatVersion || info.Jobs != 5 || info.LastID != 7 {
		t.Fatalf("Check after the migration = %+v, %v", info, err)
	}
	s = mustOpen(t, path, testOptions)
	got, _ = restoreAll(t, s)
	if got[0].Attempts != 9 {
		t.Errorf("attempts after SetAttempts on a migrated record: %d", got[0].Attempts)
	}
}

// newestMeta returns the offset of the bbolt meta page with the higher
// transaction number.
func newestMeta(t *testing.T, data []byte) int {
	t.Helper()
	m0, ok0 := parseMeta(data)
	if !ok0 {
		t.Fatal("meta page 0 invalid")
	}
	m1, ok1 := parseMeta(data[m0.pageSize:])
	if !ok1 {
		t.Fatal("meta page 1 invalid")
	}
	if m1.txid > m0.txid {
		return int(m0.pageSize)
	}
	return 0
}

// A damaged newest meta page makes bbolt open the file at the commit
// before: Check and Open say so, and handles jump ahead so that none the
// lost commit issued is issued again (issue 14).
func TestMetaFallback_IsReportedAndHandlesNeverRepeat(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s, testJob(1))
	mustAdd(t, s, testJob(2)) // the last commit: its job and handle are lost below
	s.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := newestMeta(t, data)
	data[off+pageHeaderSize+20] ^= 0x01 // inside the checksummed meta, not the txid
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := Check(path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("Check = %v; want ErrCorrupt reporting the rollback", err)
	}
	s, logged := openLogged(t, path)
	got, last := restoreAll(t, s)
	if len(got) != 1 {
		t.Logf("restored %d jobs (the rollback lost the second)", len(got))
	}
	if last < handleSkip {
		t.Errorf("handle counter %d after a rollback; handle 2 may be issued twice", last)
	}
	if l := logged.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "rolled back") {
		t.Errorf("log: %s", l)
	}
	if s.MetaDamage() == "" {
		t.Error("MetaDamage is empty")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The jump is on disk: a second start continues from it.
	s = mustOpen(t, path, testOptions)
	if _, again := restoreAll(t, s); again != last {
		t.Errorf("counter after a second start %d, want %d", again, last)
	}
}

// --db naming a directory gets a message of its own.
func TestOpen_Directory(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir, testOptions)
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("Open(dir) = %v", err)
	}
}
