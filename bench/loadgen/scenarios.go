package main

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// replyTimeout bounds every wait for a reply: a stalled server fails the
// run instead of hanging it.
const replyTimeout = 30 * time.Second

// firstError keeps the first error reported by any goroutine.
type firstError struct {
	once sync.Once
	err  error
}

func (f *firstError) set(err error) {
	if err != nil {
		f.once.Do(func() { f.err = err })
	}
}

func uniq(prefix string, client, i int) []byte {
	return []byte(prefix + "-" + strconv.Itoa(client) + "-" + strconv.Itoa(i))
}

// share splits n jobs over k goroutines.
func share(n, k, i int) int {
	s := n / k
	if i < n%k {
		s++
	}
	return s
}

// submitBg: clients each submit SUBMIT_JOB_BG and wait for JOB_CREATED.
func submitBg(cfg *config) (result, error) {
	fn := []byte(cfg.prefix + "-bg")
	payload := bytes.Repeat([]byte("p"), cfg.payload)
	var done atomic.Int64
	var ferr firstError
	var wg sync.WaitGroup
	conns, err := dialN(cfg.server, cfg.clients)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	deadline := start.Add(cfg.duration)
	for k, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.close()
			for i := 0; i < share(cfg.jobs, cfg.clients, k) && time.Now().Before(deadline); i++ {
				c.send(protocol.SubmitJobBg, fn, uniq(cfg.prefix, k, i), payload)
				if err := c.flush(); err != nil {
					ferr.set(err)
					return
				}
				if _, err := c.expect(protocol.JobCreated, replyTimeout); err != nil {
					ferr.set(err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return result{jobs: int(done.Load()), elapsed: time.Since(start)}, ferr.err
}

// submitPipelined: conns each stream SUBMIT_JOB_BG without waiting (up to
// window unacknowledged) while a reader counts JOB_CREATEDs.
func submitPipelined(cfg *config) (result, error) {
	conns, err := dialN(cfg.server, cfg.conns)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	n, err := pipeline(conns, cfg.prefix+"-pipe", cfg.prefix, cfg.jobs, cfg.payload, cfg.window, start.Add(cfg.duration))
	elapsed := time.Since(start)
	for _, c := range conns {
		c.close()
	}
	return result{jobs: n, elapsed: elapsed, extra: []string{"conns=" + strconv.Itoa(len(conns))}}, err
}

// pipeline submits jobs background jobs for fn over conns, with at most
// window of them unacknowledged, and returns how many were acknowledged. Each stream ends with an ECHO_REQ marker: replies
// come in request order, so its ECHO_RES means every submit was answered.
func pipeline(conns []*conn, fn, prefix string, jobs, payloadSize, window int, deadline time.Time) (int, error) {
	payload := bytes.Repeat([]byte("p"), payloadSize)
	var acked atomic.Int64
	var ferr firstError
	var wg sync.WaitGroup
	perConn := max(window/len(conns), 1) // window bounds the total in flight
	for k, c := range conns {
		sem := make(chan struct{}, perConn)
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			for i := 0; i < share(jobs, len(conns), k) && time.Now().Before(deadline); i++ {
				select {
				case sem <- struct{}{}:
				default:
					if err := c.flush(); err != nil {
						ferr.set(err)
						return
					}
					sem <- struct{}{}
				}
				c.send(protocol.SubmitJobBg, []byte(fn), uniq(prefix, k, i), payload)
			}
			c.send(protocol.EchoReq, []byte("end"))
			ferr.set(c.flush())
		}()
		go func() { // reader
			defer wg.Done()
			for {
				p, err := c.read(replyTimeout)
				if err != nil {
					ferr.set(err)
					return
				}
				switch p.Type {
				case protocol.JobCreated:
					acked.Add(1)
					<-sem
				case protocol.EchoRes:
					return
				default:
					ferr.set(fmt.Errorf("got %s %q, want JOB_CREATED", p.Type, p.Args))
					return
				}
			}
		}()
	}
	wg.Wait()
	return int(acked.Load()), ferr.err
}

// drain: preload jobs, then workers take and complete them all.
func drain(cfg *config) (result, error) {
	fn := cfg.prefix + "-drain"
	pre, err := dialN(cfg.server, 4)
	if err != nil {
		return result{}, err
	}
	n, err := pipeline(pre, fn, cfg.prefix, cfg.jobs, cfg.payload, cfg.window, time.Now().Add(cfg.duration))
	for _, c := range pre {
		c.close()
	}
	if err != nil {
		return result{}, fmt.Errorf("preload: %w", err)
	}
	ws, err := dialN(cfg.server, cfg.workers)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	var completed atomic.Int64
	all := make(chan struct{})
	pool := startWorkers(ws, func(int) []string { return []string{fn} }, func() {
		if completed.Add(1) == int64(n) {
			close(all)
		}
	})
	select {
	case <-all:
	case <-pool.failed:
	case <-time.After(cfg.duration):
	}
	elapsed := time.Since(start)
	err = pool.stop()
	return result{jobs: int(completed.Load()), elapsed: elapsed, extra: []string{"workers=" + strconv.Itoa(cfg.workers)}}, err
}

// roundtrip: clients submit foreground jobs and wait for WORK_COMPLETE
// from workers; reports latency percentiles.
func roundtrip(cfg *config) (result, error) {
	fn := cfg.prefix + "-rt"
	ws, err := dialN(cfg.server, cfg.workers)
	if err != nil {
		return result{}, err
	}
	pool := startWorkers(ws, func(int) []string { return []string{fn} }, func() {})
	lat, res, err := foreground(cfg, func(k, i int) string { return fn })
	if perr := pool.stop(); err == nil {
		err = perr
	}
	res.extra = append(latencyStats(lat), "clients="+strconv.Itoa(cfg.clients), "workers="+strconv.Itoa(cfg.workers))
	return res, err
}

// idleWorkers: many sleeping workers spread over many functions while
// clients submit foreground jobs round-robin over the functions. Counts the
// NOOPs the workers receive: one per job is ideal, gearmand wakes every
// sleeping worker of the function.
func idleWorkers(cfg *config) (result, error) {
	fns := make([]string, cfg.functions)
	for i := range fns {
		fns[i] = fmt.Sprintf("%s-idle-%d", cfg.prefix, i)
	}
	ws, err := dialN(cfg.server, cfg.idle)
	if err != nil {
		return result{}, err
	}
	pool := startWorkers(ws, func(i int) []string { return []string{fns[i%len(fns)]} }, func() {})
	// Wait until every worker went to sleep once (sent PRE_SLEEP).
	until := time.Now().Add(replyTimeout)
	for pool.sleeps.Load() < int64(cfg.idle) && time.Now().Before(until) {
		time.Sleep(10 * time.Millisecond)
	}
	pool.noops.Store(0)
	lat, res, err := foreground(cfg, func(k, i int) string { return fns[(k+i*cfg.clients)%len(fns)] })
	noops := pool.noops.Load()
	if perr := pool.stop(); err == nil {
		err = perr
	}
	res.extra = append(latencyStats(lat), fmt.Sprintf("noops=%d", noops),
		fmt.Sprintf("noops_per_job=%.2f", float64(noops)/float64(max(res.jobs, 1))),
		"idle_workers="+strconv.Itoa(cfg.idle), "functions="+strconv.Itoa(cfg.functions))
	return res, err
}

// foreground runs cfg.clients clients that each submit SUBMIT_JOB for
// fnFor(client, i), wait for JOB_CREATED and then WORK_COMPLETE, and returns
// the submit-to-complete latencies.
func foreground(cfg *config, fnFor func(k, i int) string) ([]time.Duration, result, error) {
	payload := bytes.Repeat([]byte("p"), cfg.payload)
	conns, err := dialN(cfg.server, cfg.clients)
	if err != nil {
		return nil, result{}, err
	}
	lats := make([][]time.Duration, cfg.clients)
	var ferr firstError
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(cfg.duration)
	for k, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.close()
			for i := 0; i < share(cfg.jobs, cfg.clients, k) && time.Now().Before(deadline); i++ {
				t0 := time.Now()
				c.send(protocol.SubmitJob, []byte(fnFor(k, i)), uniq(cfg.prefix, k, i), payload)
				if err := c.flush(); err != nil {
					ferr.set(err)
					return
				}
				if _, err := c.expect(protocol.JobCreated, replyTimeout); err != nil {
					ferr.set(err)
					return
				}
				if _, err := c.expect(protocol.WorkComplete, replyTimeout); err != nil {
					ferr.set(err)
					return
				}
				lats[k] = append(lats[k], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	all := slices.Concat(lats...)
	return all, result{jobs: len(all), elapsed: time.Since(start)}, ferr.err
}

func latencyStats(lat []time.Duration) []string {
	if len(lat) == 0 {
		return nil
	}
	slices.Sort(lat)
	pct := func(q float64) string {
		return fmt.Sprintf("%.3f", float64(lat[int(q*float64(len(lat)-1))])/float64(time.Millisecond))
	}
	return []string{"p50_ms=" + pct(0.50), "p99_ms=" + pct(0.99)}
}

// workerPool runs workers that behave like well-mannered libgearman
// workers: GRAB_JOB_UNIQ; on NO_JOB, PRE_SLEEP; on NOOP, grab again; a job
// is completed at once and the next grab is pipelined behind it.
type workerPool struct {
	conns    []*conn
	stopping atomic.Bool
	noops    atomic.Int64
	sleeps   atomic.Int64
	ferr     firstError
	failOnce sync.Once
	failed   chan struct{}
	wg       sync.WaitGroup
}

func startWorkers(conns []*conn, fnsFor func(i int) []string, onJob func()) *workerPool {
	p := &workerPool{conns: conns, failed: make(chan struct{})}
	for i, c := range conns {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := p.work(c, fnsFor(i), onJob); err != nil && !p.stopping.Load() {
				p.ferr.set(err)
				p.failOnce.Do(func() { close(p.failed) })
			}
		}()
	}
	return p
}

func (p *workerPool) work(c *conn, fns []string, onJob func()) error {
	for _, fn := range fns {
		c.send(protocol.CanDo, []byte(fn))
	}
	c.send(protocol.GrabJobUniq)
	if err := c.flush(); err != nil {
		return err
	}
	slept := false
	for {
		pk, err := c.read(0) // a sleeping worker may wait as long as the run
		if err != nil {
			return err
		}
		switch pk.Type {
		case protocol.JobAssignUniq:
			c.send(protocol.WorkComplete, pk.Args[0], []byte("ok"))
			c.send(protocol.GrabJobUniq)
			onJob()
		case protocol.NoJob:
			c.send(protocol.PreSleep)
			if !slept {
				slept = true
				p.sleeps.Add(1)
			}
		case protocol.Noop:
			p.noops.Add(1)
			c.send(protocol.GrabJobUniq)
		default:
			return fmt.Errorf("worker got %s %q", pk.Type, pk.Args)
		}
		if err := c.flush(); err != nil {
			return err
		}
	}
}

// stop closes every worker connection and waits for the workers.
func (p *workerPool) stop() error {
	p.stopping.Store(true)
	for _, c := range p.conns {
		c.close()
	}
	p.wg.Wait()
	return p.ferr.err
}

func dialN(addr string, n int) ([]*conn, error) {
	conns := make([]*conn, 0, n)
	for range n {
		c, err := dial(addr)
		if err != nil {
			for _, c := range conns {
				c.close()
			}
			return nil, errors.Join(fmt.Errorf("connection %d of %d", len(conns)+1, n), err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}
