package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
	"github.com/gearbridge/gearbridge/server"
	"github.com/gearbridge/gearbridge/store"
	"github.com/prometheus/client_golang/prometheus"
)

// bridgeRig is an in-process gearbridge (job server and bridge) in front
// of emulated Jenkins masters.
type bridgeRig struct {
	t       *testing.T
	addr    string // the job server
	srv     *server.Server
	store   gearbridge.Store
	masters map[string]*jenkinstest.Emulator
	cancel  context.CancelFunc
	done    chan struct{}
	reg     *prometheus.Registry // the running bridge's metrics
	bridge  *bridge.Bridge       // the running bridge
	logs    lockedBuffer         // the bridge's warnings and errors
}

type rigMaster struct {
	name string
	emu  *jenkinstest.Emulator
	// extra YAML lines for the master's config entry
	extra string
	// badToken configures a wrong API token.
	badToken bool
	// password authenticates with the user's password instead of an API
	// token, so that every POST needs a crumb.
	password bool
}

// startBridgeRig starts a job server (with st as its store, or memory) and
// a bridge configured for masters.
func startBridgeRig(t *testing.T, st gearbridge.Store, masters ...rigMaster) *bridgeRig {
	t.Helper()
	if st == nil {
		st = store.NewMemory()
	}
	// As the binary runs it: GRABs held for 10ms.
	srv, err := server.New(server.Config{Store: st, HandlePrefix: "H:rig", GrabHold: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	r := &bridgeRig{t: t, addr: ln.Addr().String(), srv: srv, store: st, masters: map[string]*jenkinstest.Emulator{}}
	t.Cleanup(func() { srv.Close() })
	r.startBridge(masters...)
	return r
}

func (r *bridgeRig) startBridge(masters ...rigMaster) {
	t := r.t
	var cfg strings.Builder
	cfg.WriteString("masters:\n")
	for _, m := range masters {
		user := "gearbridge"
		token := m.emu.AddUser(user, "secret")
		if m.badToken {
			token = "not-the-token"
		}
		if m.password {
			token = "secret"
		}
		env := "GEARBRIDGE_TEST_TOKEN_" + strings.ToUpper(m.name)
		t.Setenv(env, token)
		poll := "    poll_interval: 200ms\n"
		if strings.Contains(m.extra, "poll_interval:") {
			poll = "" // the test's own
		}
		fmt.Fprintf(&cfg, "  - name: %s\n    url: %s\n    user: %s\n    token_env: %s\n%s    request_timeout: 2s\n%s",
			m.name, m.emu.URL, user, env, poll, m.extra)
		r.masters[m.name] = m.emu
	}
	bc, err := bridge.ParseConfig([]byte(cfg.String()), "test")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(&r.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if os.Getenv("BRIDGE_DEBUG") != "" {
		logger = slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, &r.logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r.reg = prometheus.NewRegistry()
	b := bridge.New(bc, bridge.Options{Embedded: r.addr, Refs: r.store, Logger: logger, Registry: r.reg})
	r.bridge = b
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		b.Run(ctx)
	}()
	t.Cleanup(r.stopBridge)
}

// stopBridge stops the bridge as a shutdown does.
func (r *bridgeRig) stopBridge() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.t.Error("bridge did not stop within 10s")
	}
}

// waitRegistered waits until the admin status lists fn with n workers.
func (r *bridgeRig) waitRegistered(fn string, n int) {
	r.t.Helper()
	eventually(r.t, 10*time.Second, fmt.Sprintf("%s registered by %d workers", fn, n), func() bool {
		return r.workers(fn) == n
	})
}

// workers returns the worker count of fn in `status` (-1 if not listed).
func (r *bridgeRig) workers(fn string) int {
	for _, f := range r.srv.Snapshot().Functions {
		if f.Name == fn {
			return f.Workers
		}
	}
	return -1
}

// zuulClient submits build jobs and collects their packets as Zuul does.
type zuulClient struct {
	*Conn
}

// client connects with the exceptions option on, so that a job that could
// not run shows its reason (without it the server sends WORK_FAIL).
func (r *bridgeRig) client() *zuulClient {
	c := &zuulClient{Dial(r.t, r.addr)}
	c.Send(protocol.OptionReq, "exceptions")
	c.Expect(protocol.OptionRes, "exceptions")
	return c
}

// rigJob is one submitted job on its own connection, so that the packets
// of concurrent jobs never interleave in a test.
type rigJob struct {
	c      *zuulClient
	handle string
}

func (r *bridgeRig) submit(typ protocol.Type, fn, unique string, params map[string]string) *rigJob {
	r.t.Helper()
	c := r.client()
	return &rigJob{c: c, handle: c.submit(typ, fn, unique, params)}
}

func (j *rigJob) started(within time.Duration) map[string]any {
	j.c.t.Helper()
	return j.c.started(j.handle, within)
}

func (j *rigJob) wait(within time.Duration) buildResult {
	j.c.t.Helper()
	return j.c.wait(j.handle, within)
}

// submit sends a build job with JSON parameters and returns its handle.
func (c *zuulClient) submit(typ protocol.Type, fn, unique string, params map[string]string) string {
	c.t.Helper()
	b, _ := json.Marshal(params)
	c.Send(typ, fn, unique, string(b))
	p := c.Read()
	if p.Type != protocol.JobCreated {
		c.t.Fatalf("submit %s: got %v", fn, p)
	}
	return p.Args()[0]
}

// buildResult is what a job reported, in order.
type buildResult struct {
	packets []protocol.Type
	data    map[string]any // the last JSON payload (WORK_DATA or WORK_COMPLETE)
	status  [][2]string
	final   protocol.Type
	reason  string // WORK_EXCEPTION text
}

// wait reads packets for handle until the job ends.
func (c *zuulClient) wait(handle string, within time.Duration) buildResult {
	c.t.Helper()
	var res buildResult
	deadline := time.Now().Add(within)
	for {
		p, err := c.ReadWithin(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("job %s: no end within %v (got %v): %v", handle, within, res.packets, err)
		}
		args := p.Args()
		if args[0] != handle {
			c.t.Fatalf("packet %v for another job", p)
		}
		res.packets = append(res.packets, p.Type)
		switch p.Type {
		case protocol.WorkData, protocol.WorkComplete:
			if len(args) > 1 && args[1] != "" {
				res.data = map[string]any{}
				if err := json.Unmarshal([]byte(args[1]), &res.data); err != nil {
					c.t.Fatalf("job %s: %v is not JSON: %v", handle, p, err)
				}
			}
		case protocol.WorkStatus:
			res.status = append(res.status, [2]string{args[1], args[2]})
		case protocol.WorkException:
			res.reason = args[1]
		}
		if p.Type == protocol.WorkComplete || p.Type == protocol.WorkFail || p.Type == protocol.WorkException {
			res.final = p.Type
			return res
		}
	}
}

// started reads packets of handle until its WORK_DATA and returns the JSON.
func (c *zuulClient) started(handle string, within time.Duration) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		p, err := c.ReadWithin(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("job %s: no WORK_DATA within %v: %v", handle, within, err)
		}
		args := p.Args()
		if args[0] != handle {
			c.t.Fatalf("packet %v for another job", p)
		}
		switch p.Type {
		case protocol.WorkData:
			data := map[string]any{}
			if err := json.Unmarshal([]byte(args[1]), &data); err != nil {
				c.t.Fatalf("WORK_DATA %q: %v", args[1], err)
			}
			return data
		case protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
			c.t.Fatalf("job %s ended before it started: %v", handle, p)
		}
	}
}

// meta runs a stop: or set_description: job and returns its end packet.
func (c *zuulClient) meta(fn string, args map[string]any) Pkt {
	c.t.Helper()
	b, _ := json.Marshal(args)
	c.Send(protocol.SubmitJobHigh, fn, fmt.Sprintf("meta-%d", echoSeq.Add(1)), string(b))
	created := c.Read()
	if created.Type != protocol.JobCreated {
		c.t.Fatalf("submit %s: %v", fn, created)
	}
	for {
		p := c.Read()
		switch p.Type {
		case protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
			return p
		}
	}
}

// polls counts the snapshots the bridge has read from a master so far.
func polls(e *jenkinstest.Emulator) int { return e.CountRequests("^GET /computer/api/json") }

// waitPolls waits until the bridge has read n more snapshots of e: a
// barrier after which the bridge has seen every change made before it.
func waitPolls(t *testing.T, e *jenkinstest.Emulator, n int) {
	t.Helper()
	target := polls(e) + n
	eventually(t, 10*time.Second, "bridge polls", func() bool { return polls(e) >= target })
}

// statusFunctions parses `status` as Zuul does: split on whitespace, first
// field of every line but ".".
func statusFunctions(t *testing.T, addr string) map[string][]string {
	t.Helper()
	c := Dial(t, addr)
	defer c.Close()
	out := map[string][]string{}
	for _, line := range strings.Split(c.Admin("status\n"), "\n") {
		parts := strings.Fields(line)
		if len(parts) == 0 || parts[0] == "." {
			continue
		}
		out[parts[0]] = parts[1:]
	}
	return out
}

// registrations returns every connection's functions by client ID.
func (r *bridgeRig) registrations() map[string][]string {
	out := map[string][]string{}
	for _, w := range r.srv.Snapshot().Workers {
		fns := append([]string{}, w.Functions...)
		sort.Strings(fns)
		out[w.ClientID] = fns
	}
	return out
}

// lockedBuffer collects the bridge's log lines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many log lines contain every one of parts.
func (b *lockedBuffer) count(parts ...string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, line := range strings.Split(b.buf.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
