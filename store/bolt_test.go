package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge"
)

func TestDB_Add_RestoreAfterReopen(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	var want []*gearbridge.Job
	for id := uint64(1); id <= 50; id++ {
		want = append(want, testJob(id))
	}
	want[3].Payload = nil
	want[4].Reducer = "sum"
	want[5].Payload = bytes.Repeat([]byte{0, 0xff}, 40000) // overflow pages
	mustAdd(t, s, want...)

	s = reopen(t, s)
	got, last := restoreAll(t, s)
	if last != 50 {
		t.Errorf("lastID = %d, want 50", last)
	}
	if len(got) != len(want) {
		t.Fatalf("restored %d jobs, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameJob(got[i], want[i]) {
			t.Errorf("job %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestDB_Restore_SubmitOrder(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	// IDs cross byte boundaries: big-endian keys must sort numerically.
	ids := []uint64{300, 1, 256, 255, 65536, 2, 1 << 40}
	for _, id := range ids {
		mustAdd(t, s, testJob(id))
	}
	got, last := restoreAll(t, reopen(t, s))
	want := []uint64{1, 2, 255, 256, 300, 65536, 1 << 40}
	if len(got) != len(want) {
		t.Fatalf("restored %d jobs, want %d", len(got), len(want))
	}
	for i, j := range got {
		if j.ID != want[i] {
			t.Errorf("restore[%d] = job %d, want %d", i, j.ID, want[i])
		}
	}
	if last != 1<<40 {
		t.Errorf("lastID = %d, want %d", last, uint64(1<<40))
	}
}

func TestDB_Counter_SurvivesRemoves(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	for id := uint64(1); id <= 10; id++ {
		mustAdd(t, s, testJob(id))
	}
	// A lower ID committed later must not lower the counter.
	mustAdd(t, s, testJob(7000), testJob(5))
	for _, id := range []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 7000} {
		s.Remove(id)
	}
	s = reopen(t, s)
	got, last := restoreAll(t, s)
	if len(got) != 0 {
		t.Errorf("restored %d jobs after removing all, want 0", len(got))
	}
	if last != 7000 {
		t.Errorf("lastID = %d, want 7000 (handles must never be reused)", last)
	}
}

func TestDB_Add_DoneFIFO(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	const perConn, conns = 500, 8
	var wg sync.WaitGroup
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One "connection" pipelines its Adds; done must come back in
			// the order of the Add calls.
			var mu sync.Mutex
			var order []uint64
			var pending sync.WaitGroup
			for i := range perConn {
				id := uint64(c*perConn + i + 1)
				pending.Add(1)
				s.Add(testJob(id), func(err error) {
					if err != nil {
						t.Errorf("job %d: %v", id, err)
					}
					mu.Lock()
					order = append(order, id)
					mu.Unlock()
					pending.Done()
				})
			}
			pending.Wait()
			for i, id := range order {
				if want := uint64(c*perConn + i + 1); id != want {
					t.Errorf("conn %d: done #%d for job %d, want %d", c, i, id, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.JobsAdded != perConn*conns {
		t.Errorf("JobsAdded = %d, want %d", st.JobsAdded, perConn*conns)
	}
	if st.Commits >= perConn*conns {
		t.Errorf("%d commits for %d concurrent adds: no group commit", st.Commits, perConn*conns)
	}
	got, _ := restoreAll(t, s)
	if len(got) != perConn*conns {
		t.Errorf("restored %d jobs, want %d", len(got), perConn*conns)
	}
}

func TestDB_Add_DoneMayCallTheStore(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	nested := make(chan error, 1)
	if err := addWait(s, testJob(1)); err != nil {
		t.Fatal(err)
	}
	s.Add(testJob(2), func(err error) {
		// done runs with no store lock held: calling back in must not block.
		_ = s.Stats()
		s.SetAttempts(2, 1)
		s.Remove(1)
		s.Add(testJob(3), func(err error) { nested <- err })
	})
	select {
	case err := <-nested:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Add from inside done did not complete")
	}
	got, _ := restoreAll(t, reopen(t, s))
	if len(got) != 2 || got[0].ID != 2 || got[0].Attempts != 1 || got[1].ID != 3 {
		t.Errorf("restored %+v", got)
	}
}

func TestDB_Add_Invalid(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	bad := testJob(0)
	if err := addWait(s, bad); err == nil {
		t.Error("Add of job ID 0 succeeded")
	}
	bad = testJob(3)
	bad.Priority = 7
	if err := addWait(s, bad); err == nil {
		t.Error("Add with priority 7 succeeded")
	}
	if got, _ := restoreAll(t, s); len(got) != 0 {
		t.Errorf("restored %d jobs, want 0", len(got))
	}
}

func TestDB_SetAttempts(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	mustAdd(t, s, testJob(1), testJob(2))
	s.SetAttempts(1, 9)
	s.SetAttempts(2, 3)
	s.SetAttempts(2, 4)  // the later one wins
	s.SetAttempts(99, 1) // no such job: ignored
	s = reopen(t, s)
	got, _ := restoreAll(t, s)
	if len(got) != 2 || got[0].Attempts != 9 || got[1].Attempts != 4 {
		t.Fatalf("attempts after reopen: %+v", got)
	}
	if want := testJob(1); got[0].Payload == nil || string(got[0].Payload) != string(want.Payload) {
		t.Errorf("SetAttempts damaged the record: %+v", got[0])
	}
}

func TestDB_SetAttempts_CommittedWithoutOtherWrites(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	mustAdd(t, s, testJob(1))
	before := s.Stats().AttemptWrites
	s.SetAttempts(1, 2)
	waitFor(t, "the lazy attempt count to be committed", func() bool {
		return s.Stats().AttemptWrites > before
	})
}

func TestDB_Remove(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	mustAdd(t, s, testJob(1), testJob(2), testJob(3))
	s.Remove(2)
	s.Remove(42) // unknown: ignored
	s = reopen(t, s)
	got, _ := restoreAll(t, s)
	if len(got) != 2 || got[0].ID != 1 || got[1].ID != 3 {
		t.Fatalf("after Remove(2): %v jobs", len(got))
	}
}

func TestDB_Remove_WhileAddPending(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	done := make(chan error, 100)
	for id := uint64(1); id <= 100; id++ {
		s.Add(testJob(id), func(err error) { done <- err })
		s.SetAttempts(id, 1)
		if id%2 == 0 {
			s.Remove(id) // queued right behind its Add
		}
	}
	for range 100 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	s = reopen(t, s)
	got, _ := restoreAll(t, s)
	if len(got) != 50 {
		t.Fatalf("restored %d jobs, want 50", len(got))
	}
	for _, j := range got {
		if j.ID%2 == 0 || j.Attempts != 1 {
			t.Errorf("unexpected job %d attempts %d", j.ID, j.Attempts)
		}
	}
}

func TestDB_BuildRef(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	mustAdd(t, s, testJob(1), testJob(2))
	if err := s.SetBuildRef("H:test:1", []byte(`{"master":"j1","queue":5}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBuildRef("H:test:2", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBuildRef("H:test:1", []byte(`{"master":"j1","build":7}`)); err != nil {
		t.Fatal(err) // overwrite
	}
	s = reopen(t, s)
	ref, ok, err := s.BuildRef("H:test:1")
	if err != nil || !ok || string(ref) != `{"master":"j1","build":7}` {
		t.Fatalf("BuildRef after reopen = %q, %v, %v", ref, ok, err)
	}
	s.Remove(1)
	mustAdd(t, s, testJob(3)) // the Remove rides on this commit at the latest
	if _, ok, _ := s.BuildRef("H:test:1"); ok {
		t.Error("build ref survived its job's Remove")
	}
	if ref, ok, _ := s.BuildRef("H:test:2"); !ok || string(ref) != "two" {
		t.Errorf("other job's ref = %q, %v", ref, ok)
	}
}

func TestDB_SetBuildRef_EmptyDeletes(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	mustAdd(t, s, testJob(1))
	if err := s.SetBuildRef("H:test:1", []byte("build 7")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBuildRef("H:test:1", nil); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	if ref, ok, err := s.BuildRef("H:test:1"); ok || err != nil {
		t.Errorf("after deleting: BuildRef = %q, %v, %v", ref, ok, err)
	}
	if got, _ := restoreAll(t, s); len(got) != 1 {
		t.Errorf("deleting the ref touched the job: %d jobs", len(got))
	}
	// Deleting what is not there (or for a job already gone) is no error.
	s.Remove(1)
	if err := s.SetBuildRef("H:test:1", nil); err != nil {
		t.Errorf("deleting the ref of a removed job: %v", err)
	}
}

func TestMemory_SetBuildRef_EmptyDeletes(t *testing.T) {
	m := NewMemory()
	if err := m.SetBuildRef("H:test:1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	m.SetBuildRef("H:test:1", nil)
	if _, ok, _ := m.BuildRef("H:test:1"); ok {
		t.Error("Memory kept a deleted ref")
	}
	m.SetBuildRef("H:test:2", []byte("y"))
	m.Remove(2)
	if _, ok, _ := m.BuildRef("H:test:2"); ok {
		t.Error("Memory kept the ref of a removed job")
	}
}

func TestDB_SetBuildRef_ErrUnknownJob(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	mustAdd(t, s, testJob(1))
	for _, h := range []string{"H:test:2", "H:other:1", "nonsense", ""} {
		if err := s.SetBuildRef(h, []byte("x")); !errors.Is(err, ErrUnknownJob) {
			t.Errorf("SetBuildRef(%q) = %v, want ErrUnknownJob", h, err)
		}
	}
	s.Remove(1)
	if err := s.SetBuildRef("H:test:1", []byte("x")); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("SetBuildRef after Remove = %v, want ErrUnknownJob", err)
	}
}

func TestDB_Close(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	var acked sync.WaitGroup
	for id := uint64(1); id <= 200; id++ {
		acked.Add(1)
		s.Add(testJob(id), func(err error) {
			if err != nil {
				t.Errorf("job %d: %v", id, err)
			}
			acked.Done()
		})
	}
	s.Remove(1)
	if err := s.Close(); err != nil { // flushes what is pending
		t.Fatal(err)
	}
	acked.Wait()
	if err := addWait(s, testJob(500)); !errors.Is(err, gearbridge.ErrStoreClosed) {
		t.Errorf("Add after Close = %v, want ErrStoreClosed", err)
	}
	if err := s.SetBuildRef("H:test:2", nil); !errors.Is(err, gearbridge.ErrStoreClosed) {
		t.Errorf("SetBuildRef after Close = %v, want ErrStoreClosed", err)
	}
	s.Remove(2) // must not panic or block
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	info, err := Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Jobs != 199 || info.LastID != 200 {
		t.Errorf("after Close: %+v, want 199 jobs, last ID 200", info)
	}
}

func TestDB_Backup_WhileAdding(t *testing.T) {
	s := mustOpen(t, tempPath(t), testOptions)
	mustAdd(t, s, testJob(1), testJob(2))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []uint64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := uint64(1000*(g+1)) + 1; ; id++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := addWait(s, testJob(id)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	waitFor(t, "some adds", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) > 50 })
	mu.Lock()
	before := append([]uint64{1, 2}, acked...)
	mu.Unlock()
	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("Backup returned %d, wrote %d bytes", n, buf.Len())
	}

	copyPath := tempPath(t)
	if err := os.WriteFile(copyPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := Check(copyPath)
	if err != nil {
		t.Fatalf("Check of the backup: %v", err)
	}
	c := mustOpen(t, copyPath, testOptions)
	got, _ := restoreAll(t, c)
	have := map[uint64]bool{}
	for _, j := range got {
		have[j.ID] = true
	}
	for _, id := range before {
		if !have[id] {
			t.Errorf("job %d acknowledged before the backup began is missing from it", id)
		}
	}
	if info.Jobs != len(got) {
		t.Errorf("Check counted %d jobs, Restore %d", info.Jobs, len(got))
	}
}

func TestRecord_RoundTrip(t *testing.T) {
	j := testJob(77)
	j.Reducer = "r"
	j.Epoch = -5
	j.Attempts = 1<<32 - 1
	got, err := decodeJob(77, encodeJob(j))
	if err != nil {
		t.Fatal(err)
	}
	if !sameJob(got, j) {
		t.Errorf("got %+v, want %+v", got, j)
	}
	if h, ok := recordHandle(encodeJob(j)); !ok || h != j.Handle {
		t.Errorf("recordHandle = %q, %v", h, ok)
	}
}

func FuzzDecodeJob(f *testing.F) {
	f.Add(encodeJob(testJob(1)))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80})
	f.Fuzz(func(t *testing.T, rec []byte) {
		j, err := decodeJob(1, rec)
		if err != nil {
			return
		}
		again, err := decodeJob(1, encodeJob(j))
		if err != nil || !sameJob(j, again) {
			t.Errorf("re-encoding %x: %v", rec, err)
		}
		recordHandle(rec)
	})
}

// FuzzParseRecord feeds the field parser directly (random bytes rarely pass
// a checksum), and what an operator is told about a damaged record.
func FuzzParseRecord(f *testing.F) {
	f.Add(encodeJob(testJob(1)))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80})
	f.Fuzz(func(t *testing.T, rec []byte) {
		if j, err := parseRecord(1, rec); err == nil {
			again, err := decodeJob(1, encodeJob(j))
			if err != nil || !sameJob(j, again) {
				t.Errorf("re-encoding %x: %v", rec, err)
			}
		}
		describeDamaged(rec)
		withAttempts(append(rec, make([]byte, recordHeader)...), 3)
	})
}

func ExampleDB_Add() {
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	s, err := Open(dir+"/example.db", Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	done := make(chan error, 1)
	s.Add(&gearbridge.Job{ID: 1, Handle: "H:host:1", Function: "reverse", Payload: []byte("hi"), Priority: gearbridge.PriorityNormal}, func(err error) { done <- err })
	fmt.Println("durable:", <-done == nil)
	// Output: durable: true
}
