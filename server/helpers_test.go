package server

import (
	"bufio"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/protocol"
)

// startServer runs a server on a free loopback port for the test.
func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if os.Getenv("GB_TEST_EVENT_LOOP") == "1" {
		cfg.EventLoop = true
		cfg.BusyPoll = 100 * time.Microsecond
	}
	return serveOn(t, cfg, (*Server).Serve)
}

// serveOn runs a server with serve on a free loopback port, and closes it
// when the test ends.
func serveOn(t *testing.T, cfg Config, serve func(*Server, net.Listener) error) (*Server, string) {
	t.Helper()
	if cfg.HandlePrefix == "" {
		cfg.HandlePrefix = "H:test"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(s, ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("serving: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// client is a raw protocol connection for tests.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *protocol.Reader
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: protocol.NewResponseReader(nc, 1<<26)}
}

func (c *client) send(typ protocol.Type, args ...string) {
	c.t.Helper()
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	if _, err := c.nc.Write(protocol.AppendRequest(nil, typ, bs...)); err != nil {
		c.t.Fatalf("send %s: %v", typ, err)
	}
}

// recv reads the next packet and checks its type.
func (c *client) recv(want protocol.Type) []string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := c.r.ReadPacket()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", want, err)
	}
	args := make([]string, len(p.Args))
	for i, a := range p.Args {
		args[i] = string(a)
	}
	if p.Type != want {
		c.t.Fatalf("got %s %q, want %s", p.Type, args, want)
	}
	return args
}

// expectNothing checks that no packet arrives within a short window. It is
// used only after a round trip on the same connection proved that anything
// the server would have sent is already on its way.
func (c *client) expectNothing() {
	c.t.Helper()
	c.send(protocol.EchoReq, "sync")
	c.recv(protocol.EchoRes)
}

// admin sends a text command and reads the reply: one line, or a listing
// up to ".".
func (c *client) admin(cmd string) string {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(cmd + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	for {
		line, err := c.r.ReadLine()
		if err != nil {
			c.t.Fatalf("admin %q: %v (so far %q)", cmd, err, b.String())
		}
		b.Write(line)
		b.WriteByte('\n')
		s := string(line)
		if s == "." || strings.HasPrefix(s, "OK") || strings.HasPrefix(s, "ERR") {
			return b.String()
		}
	}
}

func (c *client) submit(typ protocol.Type, fn, unique, data string) string {
	c.t.Helper()
	c.send(typ, fn, unique, data)
	return c.recv(protocol.JobCreated)[0]
}

// worker registers fns and returns the connection.
func worker(t *testing.T, addr string, fns ...string) *client {
	w := dial(t, addr)
	for _, fn := range fns {
		w.send(protocol.CanDo, fn)
	}
	return w
}

// grab sends GRAB_JOB_UNIQ and returns handle, function, unique, data.
func (c *client) grab() []string {
	c.t.Helper()
	c.send(protocol.GrabJobUniq)
	return c.recv(protocol.JobAssignUniq)
}

// fakeStore is a Store whose commits the test releases by hand.
type fakeStore struct {
	mu      sync.Mutex
	held    []func()
	fail    error
	removed []uint64
	jobs    []*gearbridge.Job
	lastID  uint64
	added   chan struct{}
}

func newFakeStore() *fakeStore { return &fakeStore{added: make(chan struct{}, 100)} }

func (f *fakeStore) Restore(fn func(*gearbridge.Job) error) (uint64, error) {
	for _, j := range f.jobs {
		if err := fn(j); err != nil {
			return 0, err
		}
	}
	return f.lastID, nil
}

func (f *fakeStore) Add(j *gearbridge.Job, done func(error)) {
	f.mu.Lock()
	err := f.fail
	f.held = append(f.held, func() { done(err) })
	f.mu.Unlock()
	f.added <- struct{}{}
}

// release completes every held commit.
func (f *fakeStore) release() {
	f.mu.Lock()
	held := f.held
	f.held = nil
	f.mu.Unlock()
	for _, done := range held {
		done()
	}
}

func (f *fakeStore) SetAttempts(uint64, uint32) {}
func (f *fakeStore) Remove(id uint64) {
	f.mu.Lock()
	f.removed = append(f.removed, id)
	f.mu.Unlock()
}
func (f *fakeStore) SetBuildRef(string, []byte) error      { return nil }
func (f *fakeStore) BuildRef(string) ([]byte, bool, error) { return nil, false, nil }
func (f *fakeStore) Close() error                          { return nil }

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
