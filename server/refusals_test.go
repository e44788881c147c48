package server

import (
	"bytes"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/protocol"
)

// failingStore refuses every job with an error that names a file.
type failingStore struct{ fakeStore }

var errDiskFull = errors.New("write /var/lib/gearbridge/gearbridge.db: no space left on device")

func (f *failingStore) Add(_ *gearbridge.Job, done func(error)) { go done(errDiskFull) }

// syncBuffer is a log destination that tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// On a full disk every client gets a plain QUEUE_ERROR, without the
// server's file path or OS error, and the log gets at most one line a
// second, which counts the refused jobs.
func TestStoreFailureIsPlainAndLoggedOnceASecond(t *testing.T) {
	var logged syncBuffer
	_, addr := startServer(t, Config{Store: &failingStore{}, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	c := dial(t, addr)
	const n = 40
	start := time.Now()
	for i := range n {
		c.send(protocol.SubmitJobBg, "f", "u"+strconv.Itoa(i), "x")
		got := c.recv(protocol.Error)
		if got[0] != "QUEUE_ERROR" || got[1] != "Job could not be stored" {
			t.Fatalf("submit %d: ERROR %q, want plain QUEUE_ERROR", i, got)
		}
	}
	elapsed := time.Since(start)
	count := regexp.MustCompile(`refused=(\d+)`)
	total := func() (lines, refused int) {
		for _, l := range strings.Split(logged.String(), "\n") {
			if !strings.Contains(l, "level=ERROR") {
				continue
			}
			lines++
			m := count.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("log line without a count: %s", l)
			}
			k, _ := strconv.Atoi(m[1])
			refused += k
		}
		return
	}
	waitFor(t, "every refusal counted in the log", func() bool { _, r := total(); return r == n })
	lines, _ := total()
	if max := int(elapsed/refusalInterval) + 2; lines > max {
		t.Errorf("%d log lines for %d refusals in %v (want at most %d):\n%s", lines, n, elapsed, max, logged.String())
	}
	if !strings.Contains(logged.String(), "no space left on device") {
		t.Errorf("the log lacks the store's error:\n%s", logged.String())
	}
}
