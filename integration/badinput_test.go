package integration

// Bad input against the real gearbridge binary: every case must end in a
// gearmand-style ERROR or a closed connection, never a crash, and a fresh
// connection must get correct replies afterwards.

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	p "github.com/gearbridge/gearbridge/protocol"
)

// expectHealthy checks that the server still runs and that a fresh
// connection gets a well-formed `status` listing and an exact ECHO_RES.
func expectHealthy(t *testing.T, s *Server) {
	t.Helper()
	select {
	case <-s.Exited():
		t.Fatalf("%s exited", s.Kind)
	default:
	}
	c := Dial(t, s.Addr)
	defer c.Close()
	if st := c.Admin("status\n"); !strings.HasSuffix(st, ".\n") {
		t.Fatalf("status: %q", st)
	}
	c.Send(p.EchoReq, "still\x00alive")
	c.Expect(p.EchoRes, "still\x00alive")
}

// expectClosedMaybeAfterError requires the server to close c within
// opTimeout, tolerating ERROR packets (and nothing else) before the close.
func expectClosedMaybeAfterError(t *testing.T, c *Conn) {
	t.Helper()
	for {
		pk, err := c.ReadWithin(opTimeout)
		if err != nil {
			if isTimeout(err) {
				t.Fatalf("connection still open after %v", opTimeout)
			}
			return
		}
		if pk.Type != p.Error {
			t.Fatalf("before close: got %v, want nothing or ERROR", pk)
		}
	}
}

func TestBadInput_BrokenFramingClosesOnlyThatConnection(t *testing.T) {
	s := StartGearbridge(t, "--max-packet", "1024")
	bystander := Dial(t, s.Addr) // must survive every case below
	cases := []struct {
		name string
		raw  []byte
	}{
		{"wrong magic", rawPacket("\x00XYZ", uint32(p.EchoReq), []byte("x"))},
		{"type 0", rawPacket(p.ReqMagic, 0, nil)},
		{"type 43", rawPacket(p.ReqMagic, 43, nil)},
		{"type 2^32-1", rawPacket(p.ReqMagic, 1<<32-1, nil)},
		{"size over --max-packet", rawPacket(p.ReqMagic, uint32(p.EchoReq), make([]byte, 2048))},
		{"size 4 GiB-1, no payload", append(rawPacket(p.ReqMagic, uint32(p.EchoReq), nil)[:8], 0xff, 0xff, 0xff, 0xff)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Dial(t, s.Addr)
			c.SendRaw(tc.raw)
			expectClosedMaybeAfterError(t, c)
			expectHealthy(t, s)
		})
	}
	// A payload exactly at the limit is fine.
	c := Dial(t, s.Addr)
	c.Send(p.EchoReq, strings.Repeat("z", 1024))
	c.Expect(p.EchoRes, strings.Repeat("z", 1024))
	bystander.Barrier()
}

func TestBadInput_TruncatedPackets(t *testing.T) {
	s := StartGearbridge(t)
	full := echoRequest("0123456789")
	for _, cut := range []int{1, 6, 11, 12, 15} {
		// The peer half-closes mid-packet: the server must drop it.
		c := Dial(t, s.Addr)
		c.SendRaw(full[:cut])
		c.nc.(*net.TCPConn).CloseWrite()
		expectClosedMaybeAfterError(t, c)
	}
	// A peer that stalls mid-packet forever blocks nobody else.
	stalled := Dial(t, s.Addr)
	stalled.SendRaw(full[:15])
	expectHealthy(t, s)
	// And finishing the packet later still works (no idle read deadline).
	stalled.SendRaw(full[15:])
	stalled.Expect(p.EchoRes, "0123456789")
}

func echoRequest(data string) []byte {
	return p.AppendRequest(nil, p.EchoReq, []byte(data))
}

func TestBadInput_OverlongFieldsGetErrors(t *testing.T) {
	s := StartGearbridge(t)
	c := Dial(t, s.Addr)
	long := strings.Repeat("f", 600) // over GEARMAN_FUNCTION_MAX_SIZE (512)

	c.Send(p.SubmitJobBg, "fn", strings.Repeat("u", 10000), "x")
	c.Expect(p.Error, "ARGUMENT_TOO_LARGE", "Unique value too large")
	c.Send(p.SubmitJob, long, "u", "x")
	expectError(t, c.Read(), "ARGUMENT_TOO_LARGE")
	c.Send(p.CanDo, long)
	expectError(t, c.Read(), "ARGUMENT_TOO_LARGE")
	c.Send(p.SubmitReduceJob, "fn", "u", long, "", "x")
	expectError(t, c.Read(), "ARGUMENT_TOO_LARGE")
	c.Send(p.WorkFail, "H:"+strings.Repeat("x", 100))
	c.Expect(p.Error, "ARGUMENT_TOO_LARGE", "Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf")
	c.Send(p.WorkComplete, "H:"+strings.Repeat("x", 100), "d")
	c.Expect(p.Error, "JOB_NOT_FOUND", "Job given in work result not found")
	h := "H:" + strings.Repeat("x", 1000)
	c.Send(p.GetStatus, h)
	c.Expect(p.StatusRes, h, "0", "0", "0", "0")
	c.Send(p.OptionReq, strings.Repeat("exceptions", 10))
	c.Expect(p.Error, "UNKNOWN_OPTION", "Server does not recognize given option")

	// A client id is cut to 127 bytes, as in gearmand.
	c.Send(p.SetClientID, strings.Repeat("i", 10000))
	c.Barrier()
	if w := c.Admin("workers\n"); !strings.Contains(w, " "+strings.Repeat("i", 127)+" :") || strings.Contains(w, strings.Repeat("i", 128)) {
		t.Errorf("workers: client id not cut to 127 bytes: %.300q", w)
	}
	expectHealthy(t, s)
}

func TestBadInput_TooFewArgumentsGetAnErrorAndKeepTheConnection(t *testing.T) {
	s := StartGearbridge(t)
	c := Dial(t, s.Addr)
	for _, tc := range []struct {
		name string
		typ  p.Type
		data string
	}{
		// PROTOCOL's 3-argument SUBMIT_REDUCE_JOB (libgearman sends 4);
		// gearmand 1.1.20 drops the connection on it.
		{"3-arg SUBMIT_REDUCE_JOB", p.SubmitReduceJob, "fn\x00u\x00reducer\x00data"},
		{"SUBMIT_JOB without NULs", p.SubmitJob, "fnonly"},
		{"SUBMIT_JOB_EPOCH with 2 args", p.SubmitJobEpoch, "fn\x00u\x00"},
		{"WORK_STATUS with 1 arg", p.WorkStatus, "H:x:1"},
		{"CAN_DO_TIMEOUT with 1 arg", p.CanDoTimeout, "fn"},
	} {
		c.SendRaw(rawPacket(p.ReqMagic, uint32(tc.typ), []byte(tc.data)))
		if got := c.Read(); got.Type != p.Error {
			t.Errorf("%s: got %v, want ERROR", tc.name, got)
		}
		c.Barrier()
	}
	// None of them created a job.
	if st := c.Admin("show jobs\n"); st != ".\n" {
		t.Errorf("show jobs: %q", st)
	}
}

func expectError(t *testing.T, got Pkt, code string) {
	t.Helper()
	if got.Type != p.Error || !bytes.HasPrefix(got.Data, []byte(code+"\x00")) {
		t.Errorf("got %v, want ERROR %s", got, code)
	}
}

func TestBadInput_GarbageTextLines(t *testing.T) {
	s := StartGearbridge(t)
	c := Dial(t, s.Addr)
	for _, line := range []string{"\x01\x02garbage\xff\n", "   \n", "\t\r\n", "status status status\n", "SHOW\n", "workers extra args\n"} {
		c.SendRaw([]byte(line))
		reply := c.ReadAdminReply()
		if !strings.HasPrefix(reply, "ERR ") && !strings.HasSuffix(reply, ".\n") {
			t.Errorf("%q: got %q, want ERR or a listing", line, reply)
		}
	}
	if got, want := c.Admin("\x01\x02garbage\xff\n"), "ERR UNKNOWN_COMMAND Unknown+server+command\x01\x02garbage\xff\r\n"; got != want {
		t.Errorf("garbage: got %q, want %q (gearmand's bytes)", got, want)
	}
	c.Barrier()
	expectHealthy(t, s)
}

// Admin lines that break gearmand 1.1.20: an empty function name with a
// bare \n kills it, and six or more words close the connection. Stray
// spaces around the words count as empty words there; here they are
// ignored. gearbridge answers each and goes on serving.
func TestBadInput_AdminLinesThatBreakGearmand(t *testing.T) {
	s := StartGearbridge(t)
	c := Dial(t, s.Addr)
	for _, tc := range []struct{ line, want string }{
		{"create function \n", "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+create\r\n"},
		{"create function \r\n", "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+create\r\n"},
		{"status 1 2 3 4 5\r\n", ".\n"},
		{"cancel job H:nope:1 \r\n", "ERR UNKNOWN_JOB\r\n"},
		{" status\r\n", ".\n"},
		{"show jobs \r\n", ".\n"},
	} {
		if got := c.Admin(tc.line); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
		}
	}
	c.Barrier()
	expectHealthy(t, s)
}

func TestBadInput_VeryLongLineWithoutNewlineIsCutOff(t *testing.T) {
	s := StartGearbridge(t)
	c := Dial(t, s.Addr)
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	// Write up to 64 MiB; the server must close long before.
	var werr error
	for i := 0; i < 1024 && werr == nil; i++ {
		c.nc.SetWriteDeadline(time.Now().Add(opTimeout))
		_, werr = c.nc.Write(chunk)
	}
	if werr == nil {
		expectClosedMaybeAfterError(t, c)
	} else if isTimeout(werr) {
		t.Fatalf("server stopped reading an endless line without closing the connection: %v", werr)
	}
	expectHealthy(t, s)
}

// slowReaderBound is how long a client that never reads may stay
// connected. gearbridge's read loop flushes replies itself, so once the
// socket is full it stops reading (back-pressure) and the output cap is
// never reached; the cut-off then comes from its 60 s write timeout.
const slowReaderBound = 90 * time.Second

func TestBadInput_ClientThatNeverReadsIsCutOff(t *testing.T) {
	t.Parallel() // mostly waiting; overlaps with the other parallel tests
	// The output cap is 64 MiB + --max-packet; a 1 MiB limit keeps the
	// flood short if the cap is what triggers.
	s := StartGearbridge(t, "--max-packet", "1048576")
	flood := Dial(t, s.Addr)
	req := echoRequest(strings.Repeat("e", 1<<20-100))
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		// Never read; stop at the first write error (the server closed us)
		// or after 1 GiB.
		for i := 0; i < 1024; i++ {
			flood.nc.SetWriteDeadline(start.Add(slowReaderBound + 5*time.Second))
			if _, err := flood.nc.Write(req); err != nil {
				done <- err
				return
			}
		}
		done <- errors.New("wrote 1 GiB of ECHO_REQ and the server never cut the connection")
	}()
	// Others keep being served while the flood runs.
	for {
		t0 := time.Now()
		expectHealthy(t, s)
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("health check took %v during the flood", d)
		}
		select {
		case err := <-done:
			if isTimeout(err) || strings.Contains(err.Error(), "never cut") {
				t.Fatalf("slow reader not cut off: %v", err)
			}
			t.Logf("slow reader cut off after %v (%v)", time.Since(start).Round(time.Second), err)
			expectHealthy(t, s)
			return
		case <-time.After(500 * time.Millisecond):
		}
		if time.Since(start) > slowReaderBound {
			t.Fatalf("slow reader still connected after %v", slowReaderBound)
		}
	}
}

func TestBadInput_TenThousandConnectionsAtOnce(t *testing.T) {
	const n = 10000
	raiseNoFile(t, n+1000)
	s := StartGearbridge(t)
	conns := make([]net.Conn, n)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += 50 {
				c, err := net.DialTimeout("tcp", s.Addr, 10*time.Second)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				conns[i] = c
			}
		}(g)
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	if firstErr != nil {
		t.Fatalf("opening %d connections: %v", n, firstErr)
	}
	expectHealthy(t, s)
	// Every 500th connection is served too, and `workers` lists them all.
	for i := 0; i < n; i += 500 {
		c := wrapConn(t, conns[i])
		c.Barrier()
	}
	a := Dial(t, s.Addr)
	if lines := strings.Count(a.Admin("workers\n"), "\n"); lines < n+2 {
		t.Errorf("workers lists %d lines, want at least %d", lines, n+2)
	}
	for _, c := range conns {
		c.Close()
	}
	expectHealthy(t, s)
}

// raiseNoFile raises this process's open-file limit to at least n (up to
// the hard limit), skipping (failing under CI) when that is not enough.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	old := lim
	lim.Cur = min(max(n, lim.Cur), lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	if lim.Cur < n {
		skipOrFail(t, "RLIMIT_NOFILE hard limit %d is below %d", lim.Max, n)
	}
}
