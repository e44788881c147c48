package store

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gearbridge/gearbridge"
)

func benchJob(id uint64, payload []byte) *gearbridge.Job {
	return &gearbridge.Job{
		ID:         id,
		Handle:     fmt.Sprintf("H:bench:%d", id),
		Function:   "build:project",
		Payload:    payload,
		Priority:   gearbridge.PriorityNormal,
		Background: true,
	}
}

// reportCommits adds commits/op and fsyncs/op (bbolt: two per commit).
func reportCommits(b *testing.B, s *DB, before Stats) {
	st := s.Stats()
	b.ReportMetric(float64(st.Commits-before.Commits)/float64(b.N), "commits/op")
	b.ReportMetric(float64(st.Syncs-before.Syncs)/float64(b.N), "fsyncs/op")
}

// BenchmarkDB_Add: g submitters, each waiting for its job to be durable
// before submitting the next (a client waiting for JOB_CREATED).
func BenchmarkDB_Add(b *testing.B) {
	payload := bytes.Repeat([]byte{'p'}, 256)
	for _, g := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			s := mustOpen(b, tempPath(b), Options{})
			before := s.Stats()
			var next atomic.Uint64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range g {
				wg.Add(1)
				go func() {
					defer wg.Done()
					done := make(chan error, 1)
					for {
						id := next.Add(1)
						if id > uint64(b.N) {
							return
						}
						s.Add(benchJob(id, payload), func(err error) { done <- err })
						if err := <-done; err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			reportCommits(b, s, before)
		})
	}
}

// BenchmarkDB_AddPipelined: one submitter keeping up to 1000 Adds in flight
// (a pipelining client).
func BenchmarkDB_AddPipelined(b *testing.B) {
	payload := bytes.Repeat([]byte{'p'}, 256)
	s := mustOpen(b, tempPath(b), Options{})
	before := s.Stats()
	window := make(chan struct{}, 1000)
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range b.N {
		window <- struct{}{}
		wg.Add(1)
		s.Add(benchJob(uint64(i+1), payload), func(err error) {
			if err != nil {
				b.Error(err)
			}
			<-window
			wg.Done()
		})
	}
	wg.Wait()
	b.StopTimer()
	reportCommits(b, s, before)
}

// BenchmarkDB_Restore: replay n stored jobs with 256-byte payloads.
func BenchmarkDB_Restore(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			path := tempPath(b)
			fill(b, path, n, 256)
			s := mustOpen(b, path, Options{})
			b.ResetTimer()
			for range b.N {
				count := 0
				if _, err := s.Restore(func(*gearbridge.Job) error { count++; return nil }); err != nil {
					b.Fatal(err)
				}
				if count != n {
					b.Fatalf("restored %d jobs, want %d", count, n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/job")
		})
	}
}

// fill writes n background jobs with payloadSize-byte payloads into a new
// store at path, pipelining the Adds so that they share few commits.
func fill(tb testing.TB, path string, n, payloadSize int) {
	tb.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	payload := bytes.Repeat([]byte{'p'}, payloadSize)
	var failed atomic.Value
	for i := range n {
		s.Add(benchJob(uint64(i+1), payload), func(err error) {
			if err != nil {
				failed.Store(err)
			}
		})
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatal(err)
	}
}
