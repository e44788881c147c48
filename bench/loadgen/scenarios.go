package main

import (
	"bytes"
	"errors"
	"fmt"
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
				if _, err := c.expect(protocol.JobCreated); err != nil {
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
				p, err := c.read()
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
