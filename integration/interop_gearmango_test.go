package integration

// Interop with the gearman-go client and worker (mikespook, pinned).
// Library caveats (reference/go-libs.md §2): one Client per goroutine,
// ResponseTimeout raised from 1 s, never Pool, and Status/Echo have no
// timeout of their own, so they run under withTimeout.

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gmclient "github.com/mikespook/gearman-go/client"
	gmworker "github.com/mikespook/gearman-go/worker"
)

func newGoClient(t *testing.T, s *Server) *gmclient.Client {
	t.Helper()
	c, err := gmclient.New("tcp", s.Addr)
	if err != nil {
		t.Fatalf("gearman-go client: %v", err)
	}
	c.ResponseTimeout = opTimeout
	c.ErrorHandler = safeLogger(t, "gearman-go client")
	// No c.Close(): it races with the library's own read loop (a data race
	// inside gearman-go). The client dies with the server at cleanup.
	return c
}

// safeLogger returns an error handler that logs to t until the test ends
// and drops errors after that (the library's goroutines outlive the test,
// and t.Logf after the end panics).
func safeLogger(t *testing.T, who string) func(error) {
	var mu sync.Mutex
	ended := false
	t.Cleanup(func() { mu.Lock(); ended = true; mu.Unlock() })
	return func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			t.Logf("%s: %v", who, err)
		}
	}
}

// newGoWorker starts a gearman-go worker with the given functions and waits
// until the server lists all of them with a worker.
func newGoWorker(t *testing.T, s *Server, funcs map[string]gmworker.JobFunc) {
	t.Helper()
	w := gmworker.New(gmworker.Unlimited)
	w.ErrorHandler = safeLogger(t, "gearman-go worker")
	if err := w.AddServer("tcp", s.Addr); err != nil {
		t.Fatal(err)
	}
	for fn, f := range funcs {
		if err := w.AddFunc(fn, f, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Ready(); err != nil {
		t.Fatalf("gearman-go worker Ready: %v", err)
	}
	// No w.Close(): it closes a channel the library's agents still send on
	// (a data race inside gearman-go). The worker stops when the server is
	// killed at cleanup.
	go w.Work()
	a := Dial(t, s.Addr)
	defer a.Close()
	eventually(t, opTimeout, "gearman-go worker to register", func() bool {
		st := a.Admin("status\n")
		for fn := range funcs {
			if statusOf(st, fn).workers < 1 {
				return false
			}
		}
		return true
	})
}

// withTimeout runs f and fails the test if it does not return within d.
func withTimeout(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// doAndWait submits a foreground job and waits for its final response.
func doAndWait(t *testing.T, c *gmclient.Client, fn string, data []byte) ([]byte, error) {
	t.Helper()
	type result struct {
		data []byte
		err  error
	}
	res := make(chan result, 1)
	_, err := c.Do(fn, data, gmclient.JobNormal, func(r *gmclient.Response) {
		// Decode here, on the library's goroutine: Result() writes to
		// the Response, which the library reads after this returns.
		d, err := r.Result()
		select {
		case res <- result{append([]byte(nil), d...), err}:
		default:
		}
	})
	if err != nil {
		t.Fatalf("Do(%s): %v", fn, err)
	}
	select {
	case r := <-res:
		return r.data, r.err
	case <-time.After(opTimeout):
		t.Fatalf("Do(%s): no result within %v", fn, opTimeout)
	}
	return nil, nil
}

func TestInterop_GearmanGoWorkerWithSeveralFunctions(t *testing.T) {
	forEachServer(t, func(t *testing.T, s *Server) {
		newGoWorker(t, s, map[string]gmworker.JobFunc{
			"upper": func(j gmworker.Job) ([]byte, error) { return bytes.ToUpper(j.Data()), nil },
			"rev": func(j gmworker.Job) ([]byte, error) {
				d := append([]byte(nil), j.Data()...)
				for i, k := 0, len(d)-1; i < k; i, k = i+1, k-1 {
					d[i], d[k] = d[k], d[i]
				}
				return d, nil
			},
			"fail": func(j gmworker.Job) ([]byte, error) { return nil, errors.New("no") },
		})
		c := newGoClient(t, s)
		if got, err := doAndWait(t, c, "upper", []byte("abc")); err != nil || string(got) != "ABC" {
			t.Errorf("upper: %q, %v", got, err)
		}
		if got, err := doAndWait(t, c, "rev", []byte("abc")); err != nil || string(got) != "cba" {
			t.Errorf("rev: %q, %v", got, err)
		}
		big := bytes.Repeat([]byte("x\x00y"), 5000)
		if got, err := doAndWait(t, c, "upper", big); err != nil || !bytes.Equal(got, bytes.ToUpper(big)) {
			t.Errorf("upper of %d bytes: %d bytes, %v", len(big), len(got), err)
		}
		if _, err := doAndWait(t, c, "fail", []byte("x")); !errors.Is(err, gmclient.ErrWorkFail) {
			t.Errorf("fail: err %v, want ErrWorkFail", err)
		}
	})
}

func TestInterop_GearmanGoBackgroundAndStatus(t *testing.T) {
	forEachServer(t, func(t *testing.T, s *Server) {
		c := newGoClient(t, s)
		h, err := c.DoBg("nobody", []byte("x"), gmclient.JobLow)
		if err != nil || !strings.HasPrefix(h, "H:") {
			t.Fatalf("DoBg: %q, %v", h, err)
		}
		var st *gmclient.Status
		withTimeout(t, opTimeout, "Status", func() { st, err = c.Status(h) })
		if err != nil || st.Handle != h || !st.Known || st.Running {
			t.Errorf("Status(%s): %+v, %v; want known, not running", h, st, err)
		}
		withTimeout(t, opTimeout, "Status", func() { st, err = c.Status("H:nosuch:1") })
		if err != nil || st.Known || st.Running {
			t.Errorf("Status(unknown): %+v, %v", st, err)
		}
		var echo []byte
		withTimeout(t, opTimeout, "Echo", func() { echo, err = c.Echo([]byte("ping\x00pong")) })
		if err != nil || string(echo) != "ping\x00pong" {
			t.Errorf("Echo: %q, %v", echo, err)
		}
	})
}

func TestInterop_GearmanGoDoWithIdCoalesces(t *testing.T) {
	forEachServer(t, func(t *testing.T, s *Server) {
		// One client per submitter: a Client runs one submit at a time.
		handles := make([]string, 3)
		for i, fn := range []string{"co", "co", "other"} {
			c := newGoClient(t, s)
			h, err := c.DoWithId(fn, []byte(fmt.Sprint(i)), gmclient.JobNormal, func(*gmclient.Response) {}, "same-id")
			if err != nil {
				t.Fatalf("DoWithId %d: %v", i, err)
			}
			handles[i] = h
		}
		if handles[0] != handles[1] {
			t.Errorf("same function and id: handles %q and %q", handles[0], handles[1])
		}
		if handles[2] == handles[0] {
			t.Errorf("same id, other function: coalesced onto %q", handles[0])
		}
	})
}
