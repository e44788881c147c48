package jenkinstest

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"time"
)

// Fault is what InjectFault does to matching requests. Delay comes first;
// then Reset, or Status, or (neither) normal handling, whose reply
// LoseReply drops.
type Fault struct {
	// Status replies with this code (e.g. 500, 503) instead of handling
	// the request; nothing changes in the emulator.
	Status int
	Body   string
	// Delay holds the request for this long on the emulator's clock (with a
	// FakeClock, until the test advances it) or until the client gives up.
	Delay time.Duration
	// Reset closes the connection without a reply (TCP RST).
	Reset bool
	// LoseReply handles the request, then closes the connection without
	// the reply (TCP RST): it took effect, but the client cannot tell.
	LoseReply bool
	// Times limits the fault to the next n matching requests; 0 = no limit.
	Times int
}

type faultRule struct {
	re    *regexp.Regexp
	fault Fault
	used  int
}

// InjectFault applies f to requests whose "METHOD /path" (path unescaped,
// no query) matches the regular expression pattern anywhere, e.g.
// "POST .*/buildWithParameters$" or "^GET /queue/item/". The returned func
// removes the fault.
func (e *Emulator) InjectFault(pattern string, f Fault) (remove func(), err error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("jenkinstest: fault pattern %q: %w", pattern, err)
	}
	rule := &faultRule{re: re, fault: f}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = append(e.faults, rule)
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for i, r := range e.faults {
			if r == rule {
				e.faults = append(e.faults[:i], e.faults[i+1:]...)
				return
			}
		}
	}, nil
}

// ClearFaults removes all injected faults.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = nil
}

// faultFor returns the first matching fault and counts its use.
func (e *Emulator) faultFor(route string) (Fault, bool) {
	for i, r := range e.faults {
		if !r.re.MatchString(route) {
			continue
		}
		r.used++
		if r.fault.Times > 0 && r.used >= r.fault.Times {
			e.faults = append(e.faults[:i], e.faults[i+1:]...)
		}
		return r.fault, true
	}
	return Fault{}, false
}

// applyFault runs f and reports whether the request was fully handled.
func (e *Emulator) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if f.Delay > 0 {
		fired := make(chan struct{})
		t := e.Clock.AfterFunc(f.Delay, func() { close(fired) })
		select {
		case <-fired:
		case <-r.Context().Done():
			t.Stop()
			return true
		case <-e.done:
			t.Stop()
			return true
		}
	}
	switch {
	case f.Reset:
		resetConn(w)
		return true
	case f.Status != 0:
		http.Error(w, f.Body, f.Status)
		return true
	}
	return false
}

// resetConn drops the connection with SO_LINGER 0 so the client sees a reset.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// Request is one entry of the request log.
type Request struct {
	Time   time.Time
	Method string
	Path   string // unescaped
	Query  string
	User   string // "anonymous" when unauthenticated
	Status int    // 0 when the connection was reset or abandoned
	Fault  bool   // an injected fault applied
}

func (e *Emulator) logRequest(req Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.reqlog) >= e.opts.logLimit && e.opts.logLimit > 0 {
		drop := len(e.reqlog) / 2
		e.reqDropped += drop
		e.reqlog = append(e.reqlog[:0], e.reqlog[drop:]...)
	}
	e.reqlog = append(e.reqlog, req)
}

// Requests returns a copy of the request log, oldest first.
func (e *Emulator) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.reqlog...)
}

// CountRequests counts logged requests whose "METHOD /path" matches the
// regular expression pattern (as for InjectFault).
func (e *Emulator) CountRequests(pattern string) int {
	re := regexp.MustCompile(pattern)
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, r := range e.reqlog {
		if re.MatchString(r.Method + " " + r.Path) {
			n++
		}
	}
	return n
}

// ResetRequests empties the request log.
func (e *Emulator) ResetRequests() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reqlog, e.reqDropped = nil, 0
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return s.ResponseWriter.(http.Hijacker).Hijack()
}
