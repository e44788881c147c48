// Command restorebench measures start-up with a large queue: it fills a
// store with N background jobs, then, in a fresh child process (so the fill
// does not inflate the figures), opens the store, replays every job keeping
// it in memory as the server does, and reports the time taken and the
// resident memory from /proc/self/status.
//
//	go run ./store/cmd/restorebench -jobs 1000000 -payload 256
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/store"
)

func main() {
	jobs := flag.Int("jobs", 1_000_000, "jobs to store")
	payload := flag.Int("payload", 256, "payload bytes per job")
	db := flag.String("db", "", "store file (default: a new temporary file, removed afterwards)")
	restore := flag.Bool("restore", false, "only measure the restore of an existing -db (used by the parent)")
	flag.Parse()
	log.SetFlags(0)

	if *restore {
		if err := measureRestore(*db); err != nil {
			log.Fatal(err)
		}
		return
	}
	path := *db
	if path == "" {
		dir, err := os.MkdirTemp("", "restorebench")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "gearbridge.db")
	}
	start := time.Now()
	if err := fill(path, *jobs, *payload); err != nil {
		log.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("fill: %d jobs with %d-byte payloads in %.1fs, file %.1f MiB\n",
		*jobs, *payload, time.Since(start).Seconds(), float64(fi.Size())/(1<<20))

	cmd := exec.Command(os.Args[0], "-restore", "-db", path)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatal(err)
	}
}

// fill adds jobs through the store's normal write path, pipelined.
func fill(path string, n, size int) error {
	s, err := store.Open(path, store.Options{})
	if err != nil {
		return err
	}
	p := bytes.Repeat([]byte{'p'}, size)
	var failed atomic.Value
	for i := 1; i <= n; i++ {
		s.Add(&gearbridge.Job{
			ID:         uint64(i),
			Handle:     fmt.Sprintf("H:restorebench:%d", i),
			Function:   fmt.Sprintf("build:project-%d", i%100),
			Unique:     fmt.Sprintf("%016x", i),
			Payload:    p,
			Priority:   gearbridge.PriorityNormal,
			Background: true,
		}, func(err error) {
			if err != nil {
				failed.Store(err)
			}
		})
	}
	if err := s.Close(); err != nil {
		return err
	}
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	return nil
}

func measureRestore(path string) error {
	start := time.Now()
	s, err := store.Open(path, store.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	opened := time.Since(start)
	var kept []*gearbridge.Job // what the server would hold
	last, err := s.Restore(func(j *gearbridge.Job) error {
		kept = append(kept, j)
		return nil
	})
	if err != nil {
		return err
	}
	total := time.Since(start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("restore: %d jobs (last ID %d): open %.3fs, open+replay %.2fs (%.2f µs/job)\n",
		len(kept), last, opened.Seconds(), total.Seconds(), float64(total.Microseconds())/float64(max(len(kept), 1)))
	fmt.Printf("memory: %s; Go heap in use %.0f MiB\n", procStatus(), float64(ms.HeapInuse)/(1<<20))
	runtime.KeepAlive(kept)
	return nil
}

// procStatus returns the resident-memory lines of /proc/self/status.
func procStatus() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, k := range []string{"VmHWM", "VmRSS", "RssAnon", "RssFile"} {
			if strings.HasPrefix(line, k+":") {
				out = append(out, k+" "+strings.Join(strings.Fields(line)[1:], " "))
			}
		}
	}
	return strings.Join(out, ", ")
}
