// Command bridgebench measures the Jenkins bridge against emulated masters:
// builds per second through the bridge, the latency from a submit to the
// trigger request when an executor is idle, and Jenkins requests per build
// and per poll, at two sizes to show that polling does not grow with the
// number of executors, and the time from a build's start to its WORK_DATA
// for builds that waited in Jenkins' queue (Zuul can stop a build only
// once WORK_DATA has brought its number). Everything runs in this process
// on loopback.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
	"github.com/gearbridge/gearbridge/server"
	"github.com/gearbridge/gearbridge/store"
)

func main() {
	builds := flag.Int("builds", 2000, "builds in the throughput run")
	inflight := flag.Int("inflight", 40, "jobs kept in flight by the clients")
	latencySamples := flag.Int("latency-samples", 200, "serial submits for the latency run")
	poll := flag.Duration("poll", time.Second, "the bridge's poll interval")
	windowSamples := flag.Int("window-samples", 48, "builds in the start→WORK_DATA run")
	windowPoll := flag.Duration("window-poll", 5*time.Second, "the bridge's poll interval in the start→WORK_DATA run")
	flag.Parse()

	fmt.Println("bridge benchmark: in-process gearbridge, emulated Jenkins masters, zero-length builds")
	r := newRig(2, 5, 4, *poll) // 2 masters × 5 nodes × 4 executors = 40
	lat := r.latency(*latencySamples)
	fmt.Printf("submit→trigger latency, idle executors (%d serial builds): p50 %.2f ms  p99 %.2f ms   target p50 < 50 ms\n",
		len(lat), ms(pct(lat, 50)), ms(pct(lat, 99)))
	r.resetCounts()
	start := time.Now()
	r.throughput(*builds, *inflight)
	took := time.Since(start)
	reqs, polls := r.counts()
	fmt.Printf("throughput, 2 masters × 20 executors: %d builds in %.2fs = %.0f builds/s   target ≥ 100 builds/s\n",
		*builds, took.Seconds(), float64(*builds)/took.Seconds())
	fmt.Printf("Jenkins requests per build: %.2f (besides polling)\n", float64(reqs-3*polls)/float64(*builds))
	r.close()

	r = newRig(1, 1, 8, *windowPoll)
	win, reads := r.startWindow(*windowSamples)
	fmt.Printf("start→WORK_DATA, builds that waited in Jenkins' queue (%d builds, poll_interval %v): p50 %.0f ms  p99 %.0f ms  max %.0f ms   target p99 < 1000 ms\n",
		len(win), *windowPoll, ms(pct(win, 50)), ms(pct(win, 99)), ms(win[len(win)-1]))
	fmt.Printf("queue item reads per build that waited in Jenkins' queue: %.1f (%.1f per second waited)\n", reads[0], reads[1])
	r.close()

	for _, size := range [][3]int{{2, 5, 4}, {2, 50, 4}} {
		r := newRig(size[0], size[1], size[2], *poll)
		r.waitFunction("build:bench")
		r.resetCounts()
		time.Sleep(5 * *poll) // idle: only polling traffic
		reqs, polls := r.counts()
		fmt.Printf("polling at %3d executors: %d polls, %.2f requests per poll, %.2f ms per poll\n",
			size[0]*size[1]*size[2], polls, float64(reqs)/float64(max(polls, 1)), ms(r.pollTime()))
		r.close()
	}
}

type rig struct {
	emus     []*jenkinstest.Emulator
	https    []*httptest.Server
	srv      *server.Server
	addr     string
	cancel   context.CancelFunc
	done     chan struct{}
	bridge   *bridge.Bridge
	execs    int
	pollTook []time.Duration
}

func newRig(masters, nodes, executors int, poll time.Duration) *rig {
	r := &rig{execs: masters * nodes * executors}
	var cfg strings.Builder
	cfg.WriteString("masters:\n")
	for m := 0; m < masters; m++ {
		e := jenkinstest.NewEmulator(jenkinstest.WithRequestLogLimit(2_000_000))
		hs := httptest.NewServer(e)
		e.SetRootURL(hs.URL + "/")
		e.ConfigureBuiltIn(0, jenkinstest.Normal)
		for n := 0; n < nodes; n++ {
			e.AddNode(jenkinstest.NodeSpec{Name: fmt.Sprintf("node-%d", n), Labels: []string{"bench"}, Executors: executors})
		}
		e.AddJob(jenkinstest.JobSpec{Name: "bench", Label: "bench", Concurrent: true, Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}, {Name: "NODE", Type: jenkinstest.NodeParam}}})
		token := e.AddUser("bench", "secret")
		env := "BRIDGEBENCH_TOKEN_" + strconv.Itoa(m)
		os.Setenv(env, token)
		fmt.Fprintf(&cfg, "  - name: m%d\n    url: %s\n    user: bench\n    token_env: %s\n    poll_interval: %s\n", m, hs.URL, env, poll)
		r.emus, r.https = append(r.emus, e), append(r.https, hs)
	}
	srv, err := server.New(server.Config{Store: store.NewMemory()})
	check(err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go srv.Serve(ln)
	r.srv, r.addr = srv, ln.Addr().String()
	bc, err := bridge.ParseConfig([]byte(cfg.String()), "bench")
	check(err)
	r.bridge = bridge.New(bc, bridge.Options{Embedded: r.addr, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() { defer close(r.done); r.bridge.Run(ctx) }()
	return r
}

func (r *rig) close() {
	r.cancel()
	<-r.done
	r.srv.Close()
	for i, e := range r.emus {
		e.Close()
		r.https[i].Close()
	}
}

func (r *rig) resetCounts() {
	for _, e := range r.emus {
		e.ResetRequests()
	}
}

// counts returns all requests and polls (computer reads) since the reset.
func (r *rig) counts() (reqs, polls int) {
	for _, e := range r.emus {
		reqs += len(e.Requests())
		polls += e.CountRequests("^GET /computer/api/json")
	}
	return reqs, polls
}

// pollTime is the mean time of the node reads in the request log, from
// one request to the next of the same poll.
func (r *rig) pollTime() time.Duration {
	var total time.Duration
	n := 0
	for _, e := range r.emus {
		reqs := e.Requests()
		for i := 0; i+2 < len(reqs); i++ {
			if reqs[i].Path == "/api/json" && strings.HasPrefix(reqs[i+2].Path, "/label/") {
				total += reqs[i+2].Time.Sub(reqs[i].Time)
				n++
			}
		}
	}
	return total / time.Duration(max(n, 1))
}

// latency submits one job at a time and measures the time from the submit
// to the moment Jenkins queued the build.
func (r *rig) latency(n int) []time.Duration {
	r.waitFunction("build:bench")
	c := dial(r.addr)
	defer c.Close()
	var out []time.Duration
	for i := 0; i < n; i++ {
		uuid := fmt.Sprintf("lat-%d", i)
		sent := time.Now()
		handle := c.submitTo("build:bench", uuid)
		c.waitEnd(handle)
		enq := r.enqueued(uuid)
		out = append(out, enq.Sub(sent))
	}
	slices.Sort(out)
	return out
}

func (r *rig) enqueued(uuid string) time.Time {
	for _, e := range r.emus {
		for _, it := range e.QueueHistory() {
			if it.Params["ZUUL_UUID"] == uuid {
				return it.Enqueued
			}
		}
	}
	panic("no queue item for " + uuid)
}

// throughput keeps inflight jobs running until n have completed.
func (r *rig) throughput(n, inflight int) {
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < inflight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(r.addr)
			defer c.Close()
			for i := range jobs {
				c.waitEnd(c.submitTo("build:bench", fmt.Sprintf("tp-%d", i)))
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

type conn struct {
	net.Conn
	r *protocol.Reader
}

func dial(addr string) *conn {
	nc, err := net.Dial("tcp", addr)
	check(err)
	return &conn{Conn: nc, r: protocol.NewResponseReader(nc, 1<<20)}
}

func (c *conn) read() *protocol.Packet {
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	p, err := c.r.ReadPacket()
	check(err)
	return p
}

// waitEnd reads until the job's WORK_COMPLETE (anything else is an error).
func (c *conn) waitEnd(handle string) {
	for {
		p := c.read()
		switch p.Type {
		case protocol.WorkComplete:
			return
		case protocol.WorkFail, protocol.WorkException:
			panic("job " + handle + " failed: " + string(p.Arg(1)))
		}
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, len(d)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bridgebench:", err)
		os.Exit(1)
	}
}

// startWindow runs n builds of a project that is not concurrent, eight at
// a time, so that each waits in Jenkins' queue for the ones before it (0.2
// to 1 s each: some 4 s in all, long enough for polls to space out), and
// measures the time from each build's start to the
// arrival of its WORK_DATA. It also returns the reads of queue items per
// build and per second that builds spent waiting in the queue.
func (r *rig) startWindow(n int) ([]time.Duration, [2]float64) {
	e := r.emus[0]
	outcomes := make([]jenkinstest.Outcome, n)
	for i := range outcomes {
		outcomes[i] = jenkinstest.Outcome{Duration: time.Duration(200+(i*7919)%800) * time.Millisecond}
	}
	e.AddJob(jenkinstest.JobSpec{Name: "serial", Label: "bench", Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}, {Name: "NODE", Type: jenkinstest.NodeParam}}, Outcomes: outcomes})
	r.waitFunction("build:serial")
	e.ResetRequests()
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(r.addr)
			defer c.Close()
			for i := range jobs {
				uuid := fmt.Sprintf("win-%d", i)
				at := c.waitData(c.submitTo("build:serial", uuid))
				mu.Lock()
				arrived[uuid] = at
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	var out []time.Duration
	for _, b := range e.Builds("serial") {
		if at, ok := arrived[b.Params["ZUUL_UUID"]]; ok {
			out = append(out, at.Sub(b.Start))
		}
	}
	var waited time.Duration
	for _, it := range e.QueueHistory() {
		if it.Job == "serial" && !it.Started.IsZero() {
			waited += it.Started.Sub(it.Enqueued)
		}
	}
	slices.Sort(out)
	reads := float64(e.CountRequests("^GET /queue/item/"))
	return out, [2]float64{reads / float64(len(out)), reads / max(waited.Seconds(), 0.001)}
}

// waitFunction waits until every executor has registered fn.
func (r *rig) waitFunction(fn string) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, f := range r.srv.Snapshot().Functions {
			if f.Name == fn && f.Workers == r.execs {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	panic("workers did not register " + fn)
}

func (c *conn) submitTo(fn, uuid string) string {
	payload, _ := json.Marshal(map[string]string{"ZUUL_UUID": uuid})
	_, err := c.Write(protocol.AppendRequest(nil, protocol.SubmitJob, []byte(fn), []byte(uuid), payload))
	check(err)
	p := c.read()
	if p.Type != protocol.JobCreated {
		panic("submit: " + p.Type.String())
	}
	return string(p.Args[0])
}

// waitData reads the job's packets to its end and returns when its
// WORK_DATA arrived.
func (c *conn) waitData(handle string) time.Time {
	var at time.Time
	for {
		p := c.read()
		switch p.Type {
		case protocol.WorkData:
			if at.IsZero() {
				at = time.Now()
			}
		case protocol.WorkComplete:
			return at
		case protocol.WorkFail, protocol.WorkException:
			panic("job " + handle + " failed: " + string(p.Arg(1)))
		}
	}
}
