package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gearbridge/gearbridge"
)

func TestOpen_InUse(t *testing.T) {
	path := tempPath(t)
	s := mustOpen(t, path, testOptions)
	mustAdd(t, s, testJob(1))

	start := time.Now()
	_, err := Open(path, testOptions)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("second Open took %s", el)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "in use") {
		t.Errorf("error %q should name the file and say it is in use", msg)
	}
	if _, err := Check(path); !errors.Is(err, ErrInUse) {
		t.Errorf("Check of a live store = %v, want ErrInUse", err)
	}
	// The first store is unaffected.
	mustAdd(t, s, testJob(2))
}

// mustStoreFile writes a store with n jobs and returns its path and bytes.
func mustStoreFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	path := tempPath(t)
	s, err := Open(path, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	for id := 1; id <= n; id++ {
		j := testJob(uint64(id))
		j.Payload = bytes.Repeat([]byte{'p'}, 200)
		s.Add(j, func(error) {})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data
}

// refuse asserts that Open and Check refuse the file with want, and that the
// file is left exactly as it was.
func refuse(t *testing.T, path string, want error) {
	t.Helper()
	before, _ := os.ReadFile(path)
	s, err := Open(path, testOptions)
	if err == nil {
		s.Close()
		t.Fatalf("Open accepted a bad file")
	}
	if !errors.Is(err, want) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open = %v, want %v naming the file", err, want)
	}
	if _, err := Check(path); !errors.Is(err, want) {
		t.Errorf("Check = %v, want %v", err, want)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Errorf("the refused file was modified")
	}
}

func TestOpen_RefusesBadFiles(t *testing.T) {
	_, good := mustStoreFile(t, 2000)
	pageSize := int(binary.NativeEndian.Uint32(good[pageHeaderSize+8:]))
	// bbolt grows files ahead of use; the last commit needs pgid pages.
	m0, _ := parseMeta(good)
	m1, _ := parseMeta(good[pageSize:])
	needed := int(max(m0.pgid, m1.pgid)) * pageSize
	if needed > len(good) || needed < len(good)/2 {
		t.Fatalf("high-water mark %d, file %d bytes", needed, len(good))
	}
	t.Run("unused tail cut", func(t *testing.T) {
		path := tempPath(t)
		if err := os.WriteFile(path, good[:needed], 0o600); err != nil {
			t.Fatal(err)
		}
		info, err := Check(path)
		if err != nil || info.Jobs != 2000 {
			t.Errorf("Check = %+v, %v; want 2000 jobs", info, err)
		}
	})
	for name, data := range map[string][]byte{
		"empty":            {},
		"garbage":          bytes.Repeat([]byte("not a database "), 1000),
		"short garbage":    []byte("x"),
		"truncated meta":   good[:100],
		"truncated 2pages": good[:2*pageSize],
		"truncated half":   good[:len(good)/2],
		"truncated -1page": good[:needed-pageSize],
	} {
		t.Run(name, func(t *testing.T) {
			path := tempPath(t)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			refuse(t, path, ErrCorrupt)
		})
	}
}

// boltFile writes a bbolt file shaped by fn, as another program might.
func boltFile(t *testing.T, fn func(tx *bolt.Tx) error) string {
	t.Helper()
	path := tempPath(t)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpen_RefusesForeignAndOtherVersions(t *testing.T) {
	t.Run("no buckets", func(t *testing.T) {
		refuse(t, boltFile(t, func(*bolt.Tx) error { return nil }), ErrCorrupt)
	})
	t.Run("foreign buckets", func(t *testing.T) {
		refuse(t, boltFile(t, func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("etcd"))
			return err
		}), ErrCorrupt)
	})
	t.Run("version 3", func(t *testing.T) {
		refuse(t, boltFile(t, func(tx *bolt.Tx) error {
			if err := initBuckets(tx); err != nil {
				return err
			}
			v := formatRecord(FormatVersion)
			binary.BigEndian.PutUint32(v[len(formatMagic):], FormatVersion+1)
			return tx.Bucket(bucketMeta).Put(keyFormat, v)
		}), ErrWrongVersion)
	})
	t.Run("missing jobs bucket", func(t *testing.T) {
		refuse(t, boltFile(t, func(tx *bolt.Tx) error {
			if err := initBuckets(tx); err != nil {
				return err
			}
			return tx.DeleteBucket(bucketJobs)
		}), ErrCorrupt)
	})
}

// A record that does not decode is quarantined at Restore, never passed on
// and never fatal: the other jobs are served.
func TestRestore_BadRecord(t *testing.T) {
	path := boltFile(t, func(tx *bolt.Tx) error {
		if err := initBuckets(tx); err != nil {
			return err
		}
		jobs := tx.Bucket(bucketJobs)
		if err := jobs.Put(jobKey(1), encodeJob(testJob(1))); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keyLastID, lastIDRecord(2)); err != nil {
			return err
		}
		return jobs.Put(jobKey(2), []byte{2, 0, 0, 0, 0})
	})
	if _, err := Check(path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "job 2") {
		t.Errorf("Check = %v, want ErrCorrupt naming job 2", err)
	}
	s, err := Open(path, testOptions) // the format is fine...
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, last := restoreAll(t, s) // ...one record is not
	if len(got) != 1 || got[0].ID != 1 || last != 2 {
		t.Errorf("restored %d jobs, last ID %d; want job 1 alone, last ID 2", len(got), last)
	}
	if q := s.Stats().Quarantined; q != 1 {
		t.Errorf("quarantined %d records, want 1", q)
	}
	s.Close()
	info, err := Check(path)
	if err != nil || len(info.Quarantined) != 1 || info.Quarantined[0].ID != 2 {
		t.Errorf("Check after the quarantine = %+v, %v; want it listed, and no error", info, err)
	}
}

func TestRestore_DamagedPage(t *testing.T) {
	path, data := mustStoreFile(t, 3000)
	pageSize := int(binary.NativeEndian.Uint32(data[pageHeaderSize+8:]))
	// Overwrite a leaf page in the middle (past the meta and freelist pages)
	// with garbage: meta pages stay valid, so only reading the pages finds
	// it. It must be a page in use: how many pages the commits freed, and
	// where, depends on how the writes fell into batches.
	leaf := leafPageNear(t, path, len(data)/pageSize/2)
	mid := leaf * pageSize
	copy(data[mid:mid+pageSize], bytes.Repeat([]byte{0xA5}, pageSize))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(path); err == nil {
		t.Error("Check accepted a damaged page")
	} else {
		t.Logf("Check: %.300s", err)
	}
	s, err := Open(path, testOptions)
	if err != nil {
		t.Logf("Open: %v", err)
		return // refused at open: fine
	}
	defer s.Close()
	if _, err := s.Restore(func(*gearbridge.Job) error { return nil }); err == nil {
		t.Error("Restore read a damaged file without error")
	} else {
		t.Logf("Restore: %v", err)
	}
}

// leafPageNear returns the leaf page in use of the bbolt file at path
// that is the nearest to page want.
func leafPageNear(t *testing.T, path string, want int) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	best := -1
	err = db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return err
			}
			if info.Type == "leaf" && (best < 0 || abs(id-want) < abs(best-want)) {
				best = id
			}
		}
	})
	if err != nil || best < 0 {
		t.Fatalf("no leaf page in %s (%v)", path, err)
	}
	return best
}

func abs(n int) int { return max(n, -n) }

func TestDB_DiskFull(t *testing.T) {
	opts := testOptions
	opts.MaxSize = 1 << 20
	s := mustOpen(t, tempPath(t), opts)
	big := bytes.Repeat([]byte{'x'}, 16<<10)

	var id uint64
	var firstErr error
	for id = 1; id < 200 && firstErr == nil; id++ {
		j := testJob(id)
		j.Payload = big
		firstErr = addWait(s, j)
	}
	if firstErr == nil {
		t.Fatal("1 MiB store accepted 200 jobs of 16 KiB")
	}
	full := id - 1 // the job that failed
	t.Logf("job %d failed: %v", full, firstErr)

	// Nothing that failed may be restored: it was never acknowledged.
	got, _ := restoreAll(t, s)
	if uint64(len(got)) != full-1 || got[len(got)-1].ID != full-1 {
		t.Fatalf("restored %d jobs, want the %d acknowledged ones", len(got), full-1)
	}
	// The writer is not wedged: small jobs and removes still go through,
	// and once space is freed, big jobs fit again.
	for i := uint64(1); i < full; i++ {
		s.Remove(i)
	}
	j := testJob(full + 1)
	j.Payload = big
	if err := addWait(s, j); err != nil {
		t.Fatalf("Add after freeing space: %v", err)
	}
	if st := s.Stats(); st.FailedCommits == 0 {
		t.Errorf("FailedCommits = 0 after a failed commit")
	}
	got, last := restoreAll(t, s)
	if len(got) != 1 || got[0].ID != full+1 || last != full+1 {
		t.Errorf("after freeing space: %d jobs, last ID %d", len(got), last)
	}
}

// fillUntilFull adds 16 KiB jobs until one fails, and returns the IDs of
// those that were stored.
func fillUntilFull(s *DB) []uint64 {
	big := bytes.Repeat([]byte{'x'}, 16<<10)
	var ids []uint64
	for id := uint64(1); ; id++ {
		j := testJob(id)
		j.Payload = big
		if addWait(s, j) != nil {
			return ids
		}
		ids = append(ids, id)
	}
}

func TestDB_DiskFull_RemovesRetried(t *testing.T) {
	opts := testOptions
	opts.MaxSize = 1 << 20
	s := mustOpen(t, tempPath(t), opts)
	ids := fillUntilFull(s)
	// Removes queued together with an Add that cannot fit: the batch fails,
	// the removes are committed on their own.
	done := make(chan error, 1)
	for _, id := range ids {
		s.Remove(id)
	}
	huge := testJob(1000)
	huge.Payload = bytes.Repeat([]byte{'y'}, 2<<20)
	s.Add(huge, func(err error) { done <- err })
	if err := <-done; err == nil {
		t.Fatal("a 2 MiB job fit in a 1 MiB store")
	}
	waitFor(t, "the removes", func() bool { return s.Stats().JobsRemoved == uint64(len(ids)) })
	if got, _ := restoreAll(t, s); len(got) != 0 {
		t.Errorf("%d jobs left after removing all", len(got))
	}
}

// TestOpen_RandomDamage flips bytes in random pages of a store: opening,
// checking, restoring and writing must report errors, never crash.
func TestOpen_RandomDamage(t *testing.T) {
	_, good := mustStoreFile(t, 1000)
	pageSize := int(binary.NativeEndian.Uint32(good[pageHeaderSize+8:]))
	seed, _ := strconv.ParseUint(os.Getenv("STORE_DAMAGE_SEED"), 10, 64) // to explore more
	rng := rand.New(rand.NewPCG(seed, 2))
	iterations := 60
	if testing.Short() {
		iterations = 10
	}
	var refused, checkFailed, restoreFailed int
	for i := range iterations {
		data := bytes.Clone(good)
		for range 1 + rng.IntN(4) {
			page := rng.IntN(len(data) / pageSize)
			off := page*pageSize + rng.IntN(pageSize)
			n := 1 + rng.IntN(64)
			for k := off; k < min(off+n, len(data)); k++ {
				data[k] = byte(rng.Uint32())
			}
		}
		path := tempPath(t)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, checkErr := Check(path)
		if checkErr != nil {
			checkFailed++
		}
		s, err := Open(path, testOptions)
		if err != nil {
			refused++
			continue
		}
		_, restoreErr := s.Restore(func(*gearbridge.Job) error { return nil })
		if restoreErr != nil {
			restoreFailed++
		}
		if checkErr == nil && restoreErr != nil {
			t.Errorf("iteration %d: Check passed but Restore failed: %v", i, restoreErr)
		}
		_ = addWait(s, testJob(5000)) // may fail; must not crash
		s.Remove(3)
		if err := s.Close(); err != nil {
			t.Logf("iteration %d: Close: %v", i, err)
		}
	}
	t.Logf("%d damaged files: %d refused by Open, %d by Check, %d by Restore",
		iterations, refused, checkFailed, restoreFailed)
}

// CommitError says the store cannot commit while Adds fail, and clears
// once a probe commit succeeds again, with no job submitted meanwhile.
func TestDB_CommitErrorWhileFull(t *testing.T) {
	opts := testOptions
	opts.MaxSize = 1 << 20
	s := mustOpen(t, tempPath(t), opts)
	if err := s.CommitError(); err != nil {
		t.Fatalf("fresh store: CommitError = %v", err)
	}
	ids := fillUntilFull(s)
	if err := s.CommitError(); err == nil || !strings.Contains(err.Error(), "commits failing since") {
		t.Fatalf("full store: CommitError = %v", err)
	}
	for _, id := range ids {
		s.Remove(id)
	}
	waitFor(t, "a probe to find the store writable", func() bool { return s.CommitError() == nil })
}
