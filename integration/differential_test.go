package integration

// Differential tests: every scenario runs against C gearmand 1.1.20 and
// against gearbridge, and the normalised replies must match byte for byte,
// except where a step is marked Differs (a gearmand bug gearbridge does not
// copy, or a decision recorded in DESIGN.md).

import (
	"strconv"
	"strings"
	"testing"
	"time"

	p "github.com/gearbridge/gearbridge/protocol"
)

func pkt(typ p.Type, args ...string) Pkt {
	return Pkt{Magic: p.ResMagic, Type: typ, Data: joinArgs(args)}
}

// grabAsWorker grabs like a libgearman worker: on NO_JOB it sleeps
// (PRE_SLEEP) until a NOOP and grabs again. gearmand may send the NOOP for
// a requeue from an I/O thread a moment before the job is grabbable.
func grabAsWorker(w *Conn, grab p.Type) Pkt {
	w.t.Helper()
	for i := 0; ; i++ {
		w.Send(grab)
		got := w.Read()
		if got.Type != p.NoJob || i == 5 {
			return got
		}
		w.Send(p.PreSleep)
		w.Expect(p.Noop)
	}
}

func TestDifferential_UnexpectedCommandsGetInvalidCommand(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c := r.Dial()
		// Each packet carries the arguments its type declares, so that only
		// the type (not a short payload) can be the reason for the error.
		cases := []struct {
			typ  p.Type
			args []string
		}{
			{5, nil},
			{p.Noop, nil},
			{p.JobCreated, []string{"H:x:1"}},
			{p.NoJob, nil},
			{p.JobAssign, []string{"H:x:1", "fn", "data"}},
			{p.EchoRes, []string{"x"}},
			{p.Error, []string{"CODE", "text"}},
			{p.StatusRes, []string{"H:x:1", "0", "0", "0", "0"}},
			{p.AllYours, nil},
			{p.OptionRes, []string{"exceptions"}},
			{p.JobAssignUniq, []string{"H:x:1", "fn", "u", "data"}},
			{p.SubmitJobSched, []string{"fn", "u", "1", "2", "3", "4", "5", "data"}},
			{p.JobAssignAll, []string{"H:x:1", "fn", "u", "red", "data"}},
			{p.StatusResUnique, []string{"u", "0", "0", "0", "0", "0"}},
		}
		for _, tc := range cases {
			c.Send(tc.typ, tc.args...)
			r.WantPkt(tc.typ.String(), c.Read(), pkt(p.Error, "INVALID_COMMAND", "Command not expected"))
		}
		c.Barrier() // ERROR never closes the connection
	})
}

func TestDifferential_ResponseMagicGetsInvalidMagic(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c := r.Dial()
		c.SendRaw(rawPacket(p.ResMagic, uint32(p.EchoReq), []byte("x")))
		r.WantPkt("RES magic", c.Read(), pkt(p.Error, "INVALID_MAGIC", "Request magic expected"))
		c.Barrier()
	})
}

func TestDifferential_BadMagicAndTypeCloseTheConnection(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		for _, tc := range []struct {
			name string
			raw  []byte
		}{
			{"magic XYZ", rawPacket("\x00XYZ", uint32(p.EchoReq), []byte("x"))},
			{"type 0", rawPacket(p.ReqMagic, 0, nil)},
			{"type 43", rawPacket(p.ReqMagic, 43, nil)},
		} {
			c := r.Dial()
			c.SendRaw(tc.raw)
			if err := c.WaitClosed(opTimeout); err != nil {
				r.T.Errorf("%s: %v", tc.name, err)
			}
			r.Note(tc.name, "closed")
		}
	})
}

func TestDifferential_EchoReturnsPayloadVerbatim(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c := r.Dial()
		for _, data := range []string{"a\x00b\x00\x00c\x00", "", strings.Repeat("\x00z", 5000)} {
			c.Send(p.EchoReq, data)
			r.WantPkt("echo", c.Read(), pkt(p.EchoRes, data))
		}
	})
}

func TestDifferential_OptionReq(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c := r.Dial()
		c.Send(p.OptionReq, "exceptions")
		r.WantPkt("exceptions", c.Read(), pkt(p.OptionRes, "exceptions"))
		// Matched case-insensitively; the reply echoes the request bytes.
		c.Send(p.OptionReq, "EXCEPTIONS")
		r.WantPkt("EXCEPTIONS", c.Read(), pkt(p.OptionRes, "EXCEPTIONS"))
		c.Send(p.OptionReq, "nosuchoption")
		r.WantPkt("unknown", c.Read(), pkt(p.Error, "UNKNOWN_OPTION", "Server does not recognize given option"))
		c.Barrier()
	})
}

func TestDifferential_GetStatusKnownUnknownRunning(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w := r.Dial(), r.Dial()
		c.Send(p.GetStatus, "H:doesnotexist:99")
		r.WantPkt("unknown", c.Read(), pkt(p.StatusRes, "H:doesnotexist:99", "0", "0", "0", "0"))

		c.Send(p.SubmitJobBg, "st", "u1", "data")
		h := string(r.Read(c, "created").Data)
		c.Send(p.GetStatus, h)
		r.WantPkt("queued", c.Read(), pkt(p.StatusRes, h, "1", "0", "0", "0"))
		// The handle and the unique are C strings: a NUL ends them.
		c.Send(p.GetStatus, h, "junk")
		r.WantPkt("handle with a NUL", c.Read(), pkt(p.StatusRes, h, "1", "0", "0", "0"))
		c.Send(p.GetStatusUnique, "u1", "junk")
		r.WantPkt("unique with a NUL", c.Read(), pkt(p.StatusResUnique, "u1", "1", "0", "0", "0", "0"))

		w.Send(p.CanDo, "st")
		w.Send(p.GrabJob)
		r.WantPkt("assign", w.Read(), pkt(p.JobAssign, h, "st", "data"))
		c.Send(p.GetStatus, h)
		r.WantPkt("running", c.Read(), pkt(p.StatusRes, h, "1", "1", "0", "0"))

		w.Send(p.WorkStatus, h, "3", "10")
		w.Barrier() // a background job's status goes to nobody
		c.Send(p.GetStatus, h)
		r.WantPkt("running 3/10", c.Read(), pkt(p.StatusRes, h, "1", "1", "3", "10"))
		c.Send(p.GetStatusUnique, "u1")
		r.WantPkt("unique running", c.Read(), pkt(p.StatusResUnique, "u1", "1", "1", "3", "10", "0"))
		c.Send(p.GetStatusUnique, "nope")
		r.WantPkt("unique unknown", c.Read(), pkt(p.StatusResUnique, "nope", "0", "0", "0", "0", "0"))

		w.Send(p.WorkComplete, h, "done")
		w.Barrier()
		c.Send(p.GetStatus, h)
		r.WantPkt("finished", c.Read(), pkt(p.StatusRes, h, "0", "0", "0", "0"))
		c.Barrier()
	})
}

func TestDifferential_GetStatusUniqueCountsAttachedClients(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c1, c2, c3, w := r.Dial(), r.Dial(), r.Dial(), r.Dial()
		c1.Send(p.SubmitJob, "gsu", "u1", "x")
		h := string(r.Read(c1, "c1 created").Data)
		c2.Send(p.SubmitJob, "gsu", "u1", "y")
		r.WantPkt("c2 coalesced", c2.Read(), pkt(p.JobCreated, h))
		w.Send(p.CanDo, "gsu")
		w.Send(p.GrabJobUniq)
		r.WantPkt("assign", w.Read(), pkt(p.JobAssignUniq, h, "gsu", "u1", "x"))
		c3.Send(p.GetStatusUnique, "u1")
		r.WantPkt("status unique", c3.Read(), pkt(p.StatusResUnique, "u1", "1", "1", "0", "0", "2"))
	})
}

func TestDifferential_CoalescingByFunctionAndUnique(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		cs := make([]*Conn, 8)
		for i := range cs {
			cs[i] = r.Dial()
		}
		submit := func(i int, fn, uniq, data string) string {
			cs[i].Send(p.SubmitJob, fn, uniq, data)
			return string(r.Read(cs[i], "c"+strconv.Itoa(i)+" "+fn+"/"+uniq).Data)
		}
		h1 := submit(0, "co", "u", "first")
		if h := submit(1, "co", "u", "second"); h != h1 {
			r.T.Errorf("same function and unique: handle %q, want %q", h, h1)
		}
		if h := submit(2, "co2", "u", "x"); h == h1 {
			r.T.Errorf("same unique, other function: coalesced onto %q", h)
		}
		if a, b := submit(3, "co", "", "x"), submit(4, "co", "", "x"); a == b {
			r.T.Errorf("empty unique coalesced: %q", a)
		}
		// Unique "-" coalesces by payload.
		if a, b := submit(5, "co", "-", "same"), submit(6, "co", "-", "same"); a != b {
			r.T.Errorf("unique '-' with equal payloads: %q and %q", a, b)
		}

		w := r.Dial()
		w.Send(p.CanDo, "co")
		w.Send(p.GrabJobUniq)
		// The first submitter's payload wins.
		r.WantPkt("assign", w.Read(), pkt(p.JobAssignUniq, h1, "co", "u", "first"))
		w.Send(p.WorkComplete, h1, "result")
		r.WantPkt("c0 complete", cs[0].Read(), pkt(p.WorkComplete, h1, "result"))
		r.WantPkt("c1 complete", cs[1].Read(), pkt(p.WorkComplete, h1, "result"))
		// Once the job is done the unique is free again.
		if h := submit(7, "co", "u", "again"); h == h1 {
			r.T.Errorf("unique reused after completion gave the old handle %q", h)
		}
	})
}

func TestDifferential_GrabVariantsAndNoJob(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w := r.Dial(), r.Dial()
		w.Send(p.CanDo, "gv")
		for _, g := range []p.Type{p.GrabJob, p.GrabJobUniq, p.GrabJobAll} {
			w.Send(g)
			r.WantPkt("empty "+g.String(), w.Read(), pkt(p.NoJob))
		}
		var hs []string
		for i := 1; i <= 3; i++ {
			c.Send(p.SubmitJobBg, "gv", "u"+strconv.Itoa(i), "d"+strconv.Itoa(i))
			hs = append(hs, string(r.Read(c, "created").Data))
		}
		w.Send(p.GrabJob)
		r.WantPkt("GRAB_JOB", w.Read(), pkt(p.JobAssign, hs[0], "gv", "d1"))
		w.Send(p.GrabJobUniq)
		r.WantPkt("GRAB_JOB_UNIQ", w.Read(), pkt(p.JobAssignUniq, hs[1], "gv", "u2", "d2"))
		// Without a reducer, GRAB_JOB_ALL gets JOB_ASSIGN_UNIQ.
		w.Send(p.GrabJobAll)
		r.WantPkt("GRAB_JOB_ALL", w.Read(), pkt(p.JobAssignUniq, hs[2], "gv", "u3", "d3"))
		w.Send(p.GrabJobAll)
		r.WantPkt("drained", w.Read(), pkt(p.NoJob))
	})
}

func TestDifferential_WorkPacketsReachEveryAttachedClient(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c1, c2, w := r.Dial(), r.Dial(), r.Dial()
		c1.Send(p.SubmitJob, "fw", "u", "in")
		h := string(r.Read(c1, "c1 created").Data)
		c2.Send(p.SubmitJob, "fw", "u", "in")
		r.Read(c2, "c2 created")
		w.Send(p.CanDo, "fw")
		w.Send(p.GrabJob)
		r.Read(w, "assign")
		steps := []Pkt{
			pkt(p.WorkStatus, h, "1", "2"),
			pkt(p.WorkData, h, "d\x00d"),
			pkt(p.WorkWarning, h, "warn"),
			pkt(p.WorkComplete, h, "out\x00put"),
		}
		for _, s := range steps {
			w.SendRaw(requestBytes(s))
			for i, c := range []*Conn{c1, c2} {
				r.WantPkt("c"+strconv.Itoa(i+1)+" "+s.Type.String(), c.Read(), s)
			}
		}
		w.Barrier()

		// WORK_FAIL ends a job with a bare handle.
		c1.Send(p.SubmitJob, "fw", "u2", "x")
		h2 := string(r.Read(c1, "c1 created 2").Data)
		w.Send(p.GrabJob)
		r.Read(w, "assign 2")
		w.Send(p.WorkFail, h2)
		r.WantPkt("c1 fail", c1.Read(), pkt(p.WorkFail, h2))
		c1.Barrier()
		c2.Barrier()
	})
}

func requestBytes(s Pkt) []byte { return rawPacket(p.ReqMagic, uint32(s.Type), s.Data) }

func TestDifferential_WorkExceptionWithAndWithoutOption(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c1, c2, w := r.Dial(), r.Dial(), r.Dial()
		c1.Send(p.OptionReq, "exceptions")
		r.Read(c1, "option")
		c1.Send(p.SubmitJob, "ex", "u", "x")
		h := string(r.Read(c1, "c1 created").Data)
		c2.Send(p.SubmitJob, "ex", "u", "x")
		r.Read(c2, "c2 created")
		w.Send(p.CanDo, "ex")
		w.Send(p.GrabJob)
		r.Read(w, "assign")
		w.Send(p.WorkException, h, "boom")
		r.WantPkt("c1 exception", c1.Read(), pkt(p.WorkException, h, "boom"))
		// gearmand leaks its internal argument size: the substitute
		// WORK_FAIL carries a trailing NUL. gearbridge sends the bare
		// handle, as a real WORK_FAIL does.
		got := c2.Read()
		r.Differs("c2 without option", got.String(), pkt(p.WorkFail, h+"\x00").String(), pkt(p.WorkFail, h).String())
		c1.Barrier() // the exception ended the job: no WORK_FAIL after it
		c2.Barrier()
		w.Barrier()
	})
}

func TestDifferential_JobNotFoundTexts(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		w := r.Dial()
		const given = "Job given in work result not found"
		cases := []struct {
			typ  p.Type
			args []string
			text string
		}{
			{p.WorkComplete, []string{"H:nope:1", "x"}, given},
			{p.WorkFail, []string{"H:nope:1"}, given},
			{p.WorkStatus, []string{"H:nope:1", "1", "2"}, given},
			{p.WorkData, []string{"H:nope:1", "x"}, "Job does not exist on server"},
			{p.WorkWarning, []string{"H:nope:1", "x"}, "Job does not exist on server"},
			{p.WorkException, []string{"H:nope:1", "x"}, "An exception was received for a job that does not exist"},
		}
		for _, tc := range cases {
			w.Send(tc.typ, tc.args...)
			r.WantPkt(tc.typ.String(), w.Read(), pkt(p.Error, "JOB_NOT_FOUND", tc.text))
		}

		// A job held by another worker, or still queued, is not ours.
		c, w1, w2 := r.Dial(), r.Dial(), r.Dial()
		c.Send(p.SubmitJob, "nf", "u1", "x")
		h1 := string(r.Read(c, "created 1").Data)
		c.Send(p.SubmitJob, "nf", "u2", "x")
		h2 := string(r.Read(c, "created 2").Data)
		w1.Send(p.CanDo, "nf")
		w1.Send(p.GrabJob)
		r.Read(w1, "w1 assign")
		w2.Send(p.WorkComplete, h1, "stolen")
		r.WantPkt("foreign", w2.Read(), pkt(p.Error, "JOB_NOT_FOUND", given))
		w2.Send(p.WorkComplete, h2, "queued")
		r.WantPkt("queued", w2.Read(), pkt(p.Error, "JOB_NOT_FOUND", given))
		c.Barrier()
	})
}

func TestDifferential_ReduceJobAndGrabJobAll(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w := r.Dial(), r.Dial()
		// libgearman's layout: fn, unique, reducer, aggregator (empty), data.
		c.Send(p.SubmitReduceJob, "mapfn", "ru", "reducefn", "", "DATA")
		h := string(r.Read(c, "created").Data)
		c.Send(p.SubmitReduceJobBackground, "mapfn", "rb", "reducefn", "", "BG")
		h2 := string(r.Read(c, "created bg").Data)
		w.Send(p.CanDo, "mapfn")
		w.Send(p.GrabJobAll)
		r.WantPkt("assign all", w.Read(), pkt(p.JobAssignAll, h, "mapfn", "ru", "reducefn", "DATA"))
		// GRAB_JOB_UNIQ hands a reduce job out without its reducer.
		w.Send(p.GrabJobUniq)
		r.WantPkt("assign uniq", w.Read(), pkt(p.JobAssignUniq, h2, "mapfn", "rb", "BG"))
		w.Send(p.WorkComplete, h, "reduced")
		r.WantPkt("complete", c.Read(), pkt(p.WorkComplete, h, "reduced"))
	})
}

func TestDifferential_EpochJobs(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w := r.Dial(), r.Dial()
		w.Send(p.CanDo, "ep")
		// A past epoch, and garbage (which parses as 0), run at once.
		c.Send(p.SubmitJobEpoch, "ep", "past", "1", "p")
		h1 := string(r.Read(c, "past").Data)
		c.Send(p.SubmitJobEpoch, "ep", "garbage", "abc", "g")
		h2 := string(r.Read(c, "garbage").Data)
		c.Send(p.SubmitJobEpoch, "ep", "future", strconv.FormatInt(time.Now().Unix()+3600, 10), "f")
		r.Read(c, "future")
		w.Send(p.GrabJob)
		r.WantPkt("grab past", w.Read(), pkt(p.JobAssign, h1, "ep", "p"))
		w.Send(p.GrabJob)
		r.WantPkt("grab garbage", w.Read(), pkt(p.JobAssign, h2, "ep", "g"))
		w.Send(p.GrabJob)
		r.WantPkt("future not handed out", w.Read(), pkt(p.NoJob))
		a := r.Dial()
		r.AdminSet(a, "status", "status\n")
		// Epoch jobs are background jobs: 1 in column 4 of `show jobs`,
		// running or waiting.
		r.AdminSet(a, "show jobs", "show jobs\n")
		// Epoch jobs are background jobs: their WORK_COMPLETE goes nowhere.
		w.Send(p.WorkComplete, h1, "")
		w.Barrier()
		c.Barrier()
	})
}

func TestDifferential_CantDoRequeuesRunningJob(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w1, w2, a := r.Dial(), r.Dial(), r.Dial(), r.Dial()
		c.Send(p.SubmitJob, "cd", "u", "x")
		h := string(r.Read(c, "created").Data)
		w1.Send(p.CanDo, "cd")
		w1.Send(p.GrabJob)
		r.Read(w1, "w1 assign")
		w1.Send(p.CantDo, "cd")
		w1.Barrier()
		w2.Send(p.CanDo, "cd")
		w2.Send(p.GrabJob)
		r.WantPkt("w2 gets the same job", w2.Read(), pkt(p.JobAssign, h, "cd", "x"))
		r.AdminSet(a, "show jobs", "show jobs\n")
		c.Barrier() // the client is not told about the requeue
	})
}

func TestDifferential_DisconnectRequeuesAndWakesSleepers(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w1, w2 := r.Dial(), r.Dial(), r.Dial()
		c.Send(p.SubmitJob, "dr", "u", "x")
		h := string(r.Read(c, "created").Data)
		w1.Send(p.CanDo, "dr")
		w1.Send(p.GrabJob)
		r.Read(w1, "w1 assign")
		w2.Send(p.CanDo, "dr")
		w2.Send(p.PreSleep)
		w2.Barrier()
		w1.Close()
		r.WantPkt("w2 woken", w2.Read(), pkt(p.Noop))
		w2.Send(p.GrabJobUniq)
		r.WantPkt("w2 assign", w2.Read(), pkt(p.JobAssignUniq, h, "dr", "u", "x"))
		w2.Send(p.WorkComplete, h, "ok")
		r.WantPkt("complete", c.Read(), pkt(p.WorkComplete, h, "ok"))
	})
}

func TestDifferential_JobRetriesDropsWithWorkFail(t *testing.T) {
	Differential(t, []string{"--job-retries", "2"}, []string{"--job-retries=2"}, func(r *Transcript) {
		c := r.Dial()
		c.Send(p.SubmitJob, "jr", "u", "x")
		h := string(r.Read(c, "created").Data)
		w := r.Dial()
		w.Send(p.CanDo, "jr")
		w.Send(p.GrabJob)
		r.Read(w, "assign 1")
		// The next worker sleeps first, so the requeue's NOOP tells us the
		// disconnect has been handled.
		w2 := r.Dial()
		w2.Send(p.CanDo, "jr")
		w2.Send(p.PreSleep)
		w2.Barrier()
		w.Close()
		r.WantPkt("woken", w2.Read(), pkt(p.Noop))
		w2.Send(p.GrabJob)
		r.WantPkt("assign 2", w2.Read(), pkt(p.JobAssign, h, "jr", "x"))
		w2.Close() // second hand-out lost: the job is dropped
		r.WantPkt("client fail", c.Read(), pkt(p.WorkFail, h))
		c.Send(p.GetStatus, h)
		r.WantPkt("gone", c.Read(), pkt(p.StatusRes, h, "0", "0", "0", "0"))
	})
}

func TestDifferential_PriorityWithinAFunction(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w, a := r.Dial(), r.Dial(), r.Dial()
		w.Send(p.CanDo, "pr")
		for _, s := range []struct {
			typ  p.Type
			name string
		}{{p.SubmitJobLowBg, "low"}, {p.SubmitJobBg, "normal"}, {p.SubmitJobHighBg, "high"}, {p.SubmitJobLow, "low-fg"}, {p.SubmitJobHigh, "high-fg"}, {p.SubmitJob, "normal-fg"}} {
			c.Send(s.typ, "pr", s.name, s.name)
			r.Read(c, s.name)
		}
		r.AdminSet(a, "prioritystatus", "prioritystatus\n")
		for _, want := range []string{"high", "high-fg", "normal", "normal-fg", "low", "low-fg"} {
			w.Send(p.GrabJobUniq)
			got := w.Read()
			if args := got.Args(); len(args) < 3 || args[2] != want {
				r.T.Errorf("grab: got %v, want unique %q", got, want)
			}
			r.add("grab", got.String())
		}
	})
}

func TestDifferential_PriorityAcrossFunctions(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w := r.Dial(), r.Dial()
		w.Send(p.CanDo, "b")
		w.Send(p.CanDo, "a")
		c.Send(p.SubmitJobBg, "a", "a-normal", "")
		r.Read(c, "a-normal")
		c.Send(p.SubmitJobHighBg, "b", "b-high", "")
		r.Read(c, "b-high")
		w.Send(p.GrabJobUniq)
		got := w.Read()
		// gearmand 1.1.20 scans the worker's functions most recent first,
		// so priority is per function; gearbridge (like gearmand HEAD)
		// hands out HIGH before NORMAL across all of them.
		r.Differs("first grab", got.Args()[2], "a-normal", "b-high")
	})
}

func TestDifferential_OneNoopPerSleep(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w := r.Dial(), r.Dial()
		w.Send(p.CanDo, "nz")
		w.Send(p.PreSleep)
		w.Barrier()
		c.Send(p.SubmitJobBg, "nz", "1", "")
		r.Read(c, "created 1")
		r.WantPkt("noop", w.Read(), pkt(p.Noop))
		c.Send(p.SubmitJobBg, "nz", "2", "")
		r.Read(c, "created 2")
		w.Barrier() // no second NOOP for the same sleep
		w.Send(p.GrabJob)
		r.Read(w, "grab 1")
		// PRE_SLEEP with a job still queued is answered at once.
		w.Send(p.PreSleep)
		r.WantPkt("noop at once", w.Read(), pkt(p.Noop))
		w.Send(p.GrabJob)
		r.Read(w, "grab 2")
		w.Send(p.PreSleep)
		w.Barrier() // nothing queued: stays asleep
	})
}

func TestDifferential_DuplicateCanDo(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		w, a := r.Dial(), r.Dial()
		w.Send(p.CanDo, "dup")
		w.Send(p.CanDo, "dup")
		w.Barrier()
		// gearmand keeps both registrations; gearbridge counts a function
		// once per connection.
		r.Differs("status", a.Admin("status\n"), "dup\t0\t0\t2\n.\n", "dup\t0\t0\t1\n.\n")
	})
}

func TestDifferential_CanDoTimeoutRequeues(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w1, w2 := r.Dial(), r.Dial(), r.Dial()
		// gearmand reads "2" as milliseconds (raised to its 1000 ms
		// minimum); gearbridge reads seconds, as the Perl and gearman-go
		// workers that send it mean.
		w1.Send(p.CanDoTimeout, "to", "2")
		c.Send(p.SubmitJob, "to", "u", "x")
		h := string(r.Read(c, "created").Data)
		w1.Send(p.GrabJob)
		r.Read(w1, "w1 assign")
		start := time.Now()
		w2.Send(p.CanDo, "to")
		w2.Send(p.PreSleep)
		r.WantPkt("w2 woken by requeue", w2.Read(), pkt(p.Noop))
		after := time.Since(start)
		unit := "seconds"
		if after < 1800*time.Millisecond {
			unit = "milliseconds"
		}
		if after < 500*time.Millisecond || after > 4*time.Second {
			r.T.Errorf("requeued after %v, want about 1 s (gearmand) or 2 s (gearbridge)", after)
		}
		r.Differs("timeout unit", unit, "milliseconds", "seconds")
		r.WantPkt("w2 assign", grabAsWorker(w2, p.GrabJob), pkt(p.JobAssign, h, "to", "x"))
		w1.Send(p.WorkComplete, h, "late")
		w1.Send(p.EchoReq, "sync")
		late := "dropped"
		if got := w1.Read(); got.Type == p.Error {
			late = "ERROR " + strings.Join(got.Args(), " ")
			w1.Read() // the echo
		}
		// gearmand's ERROR kills Perl's Gearman::Worker; gearbridge drops a
		// late result from the worker whose job timed out.
		r.Differs("late result", late, "ERROR JOB_NOT_FOUND Job given in work result not found", "dropped")
		w2.Send(p.WorkComplete, h, "ok")
		r.WantPkt("complete", c.Read(), pkt(p.WorkComplete, h, "ok"))
	})
}

func TestDifferential_EpochJobWakesSleepingWorkerWhenDue(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w := r.Dial(), r.Dial()
		w.Send(p.CanDo, "due")
		w.Send(p.PreSleep)
		w.Barrier()
		due := time.Now().Add(2 * time.Second).Unix()
		c.Send(p.SubmitJobEpoch, "due", "u", strconv.FormatInt(due, 10), "x")
		h := string(r.Read(c, "created").Data)
		// gearmand may send a NOOP at submit time (its only one); a
		// worker then finds nothing and sleeps again.
		if pk, err := w.ReadWithin(300 * time.Millisecond); err == nil && pk.Type == p.Noop {
			w.Send(p.GrabJob)
			w.Expect(p.NoJob)
			w.Send(p.PreSleep)
		}
		// gearmand 1.1.20 never wakes the worker when the job falls due;
		// gearbridge (like gearmand HEAD) sends a NOOP then.
		woken := "asleep"
		if pk, err := w.ReadWithin(time.Until(time.Unix(due+2, 0))); err == nil && pk.Type == p.Noop {
			woken = "woken"
		}
		r.Differs("after the epoch", woken, "asleep", "woken")
		r.WantPkt("due job", grabAsWorker(w, p.GrabJob), pkt(p.JobAssign, h, "due", "x"))
	})
}

func TestDifferential_LongFunctionNamesHandlesAndClientIDs(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, a := r.Dial(), r.Dial()
		long := strings.Repeat("f", 600) // over GEARMAN_FUNCTION_MAX_SIZE (512)
		// gearmand accepts a 600-byte function name despite its 512-byte
		// limit; gearbridge enforces the limit.
		c.Send(p.SubmitJob, long, "u", "x")
		r.Differs("submit, 600-byte function", c.Read().Type.String(), "JOB_CREATED", "ERROR")
		c.Send(p.CanDo, long)
		r.Differs("CAN_DO, 600-byte function", firstReply(c), "ECHO_RES", "ERROR")
		// gearmand does not answer GET_STATUS for a handle of 64 bytes or
		// more (and at times drops the connection over it: its snprintf
		// fails); gearbridge says the job is unknown. A connection of its
		// own keeps gearmand's drop from ending the rest of the test.
		h := "H:" + strings.Repeat("x", 100)
		probe := r.Dial()
		probe.Send(p.GetStatus, h)
		got := "no reply"
		if r.IsGearmand() {
			probe.Send(p.EchoReq, "after")
			if reply, err := probe.ReadWithin(opTimeout); err == nil && reply.Type != p.EchoRes {
				got = reply.Type.String()
			}
		} else {
			got = firstReply(probe)
		}
		r.Differs("GET_STATUS, 102-byte handle", got, "no reply", "STATUS_RES")
		c.Send(p.WorkFail, h)
		r.WantPkt("WORK_FAIL, 102-byte handle", c.Read(), pkt(p.Error, "ARGUMENT_TOO_LARGE", "Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf"))
		// Client ids are cut to 127 bytes.
		c.Send(p.SetClientID, strings.Repeat("i", 200))
		c.Barrier()
		ws := a.Admin("workers\n")
		if !strings.Contains(ws, " "+strings.Repeat("i", 127)+" :") || strings.Contains(ws, strings.Repeat("i", 128)) {
			r.T.Errorf("workers: id not cut to 127 bytes: %.400q", ws)
		}
	})
}

// firstReply sends an ECHO_REQ barrier and returns the type of the first
// packet that arrives: "ECHO_RES" means the previous request got no reply.
// Any reply before the barrier's is consumed together with it.
func firstReply(c *Conn) string {
	c.t.Helper()
	c.Send(p.EchoReq, "first-reply")
	first := c.Read()
	if first.Type != p.EchoRes {
		c.Expect(p.EchoRes, "first-reply")
	}
	return first.Type.String()
}

func TestDifferential_ArgumentTooLargeAndLongUnique(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, a := r.Dial(), r.Dial()
		u65 := strings.Repeat("u", 65)
		c.Send(p.SubmitJobBg, "al", u65, "x")
		r.WantPkt("unique 65", c.Read(), pkt(p.Error, "ARGUMENT_TOO_LARGE", "Unique value too large"))
		u64 := strings.Repeat("v", 64)
		c.Send(p.SubmitJobBg, "al", u64, "x")
		r.Read(c, "unique 64")
		// gearmand stores uniques in char[64] and silently drops the last
		// byte; gearbridge keeps all 64.
		r.Differs("show unique jobs", a.Admin("show unique jobs\n"), u64[:63]+"\n.\n", u64+"\n.\n")
	})
}

func TestDifferential_ClientDisconnectDropsQueuedForegroundJob(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, probe, w := r.Dial(), r.Dial(), r.Dial()
		c.Send(p.SubmitJob, "cdd", "u", "x")
		r.Read(c, "created")
		c.Close()
		eventually(r.T, opTimeout, "listener to detach", func() bool {
			probe.Send(p.GetStatusUnique, "u")
			args := probe.Read().Args()
			return len(args) == 6 && args[5] == "0"
		})
		w.Send(p.CanDo, "cdd")
		w.Send(p.GrabJob)
		r.WantPkt("nobody listens: job dropped", w.Read(), pkt(p.NoJob))
	})
}

func TestDifferential_BackgroundJobsWithEmptyUniqueNeverCollide(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w := r.Dial(), r.Dial()
		c.Send(p.SubmitJobBg, "eu", "", "a")
		ha := string(r.Read(c, "a").Data)
		c.Send(p.SubmitJobBg, "eu", "", "b")
		hb := string(r.Read(c, "b").Data)
		w.Send(p.CanDo, "eu")
		w.Send(p.GrabJob)
		r.WantPkt("a", w.Read(), pkt(p.JobAssign, ha, "eu", "a"))
		w.Send(p.GrabJob)
		r.WantPkt("b", w.Read(), pkt(p.JobAssign, hb, "eu", "b"))
		// Work packets for a background job reach nobody and get no reply.
		w.Send(p.WorkData, ha, "d")
		w.Send(p.WorkComplete, ha, "")
		w.Barrier()
		c.Barrier()
	})
}

func TestDifferential_TextAndBinaryOnOneConnection(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c := r.Dial()
		c.Send(p.CanDo, "mix")
		c.Barrier()
		r.AdminSet(c, "status", "status\r\n")
		c.Send(p.EchoReq, "after text")
		r.WantPkt("echo", c.Read(), pkt(p.EchoRes, "after text"))
		// Several admin commands in one write.
		c.SendRaw([]byte("getpid\nprioritystatus\n"))
		r.Shape("getpid", c.ReadAdminReply(), reOK(strconv.Itoa(r.Srv.Pid())), "OK <pid>\n")
		r.Note("prioritystatus", c.ReadAdminReply())
	})
}

func TestDifferential_ForegroundClientAttachesToBackgroundJob(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		bg, fg, w := r.Dial(), r.Dial(), r.Dial()
		bg.Send(p.SubmitJobBg, "att", "u", "bgdata")
		h := string(r.Read(bg, "bg created").Data)
		fg.Send(p.SubmitJob, "att", "u", "fgdata")
		r.WantPkt("fg coalesced", fg.Read(), pkt(p.JobCreated, h))
		fg.Send(p.GetStatusUnique, "u")
		r.WantPkt("status unique", fg.Read(), pkt(p.StatusResUnique, "u", "1", "0", "0", "0", "1"))
		w.Send(p.CanDo, "att")
		w.Send(p.GrabJob)
		r.WantPkt("background payload kept", w.Read(), pkt(p.JobAssign, h, "att", "bgdata"))
		w.Send(p.WorkStatus, h, "1", "3")
		r.WantPkt("fg status", fg.Read(), pkt(p.WorkStatus, h, "1", "3"))
		w.Send(p.WorkComplete, h, "done")
		r.WantPkt("fg complete", fg.Read(), pkt(p.WorkComplete, h, "done"))
		bg.Barrier()
	})
}

func TestDifferential_BackgroundSubmitKeepsJobWhenForegroundClientLeaves(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		fg, bg, probe, w := r.Dial(), r.Dial(), r.Dial(), r.Dial()
		fg.Send(p.SubmitJob, "keep", "u", "x")
		h := string(r.Read(fg, "fg created").Data)
		bg.Send(p.SubmitJobBg, "keep", "u", "x")
		r.WantPkt("bg coalesced", bg.Read(), pkt(p.JobCreated, h))
		fg.Close()
		eventually(r.T, opTimeout, "listener to detach", func() bool {
			probe.Send(p.GetStatusUnique, "u")
			args := probe.Read().Args()
			return len(args) == 6 && args[5] == "0"
		})
		w.Send(p.CanDo, "keep")
		w.Send(p.GrabJob)
		// gearmand drops the job with its last foreground listener, losing
		// the background request; gearbridge keeps it.
		r.Differs("grab", w.Read().Type.String(), "NO_JOB", "JOB_ASSIGN")
	})
}

func TestDifferential_ResetAbilitiesRequeuesAndClearsStatus(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w1, w2 := r.Dial(), r.Dial(), r.Dial()
		c.Send(p.SubmitJob, "ra", "u", "x")
		h := string(r.Read(c, "created").Data)
		w1.Send(p.CanDo, "ra")
		w1.Send(p.GrabJob)
		r.Read(w1, "w1 assign")
		w1.Send(p.WorkStatus, h, "5", "7")
		r.WantPkt("status forwarded", c.Read(), pkt(p.WorkStatus, h, "5", "7"))
		w1.Send(p.ResetAbilities)
		w1.Barrier()
		c.Send(p.GetStatus, h)
		r.WantPkt("requeued, status cleared", c.Read(), pkt(p.StatusRes, h, "1", "0", "0", "0"))
		w1.Send(p.GrabJob)
		r.WantPkt("no abilities left", w1.Read(), pkt(p.NoJob))
		w2.Send(p.CanDo, "ra")
		w2.Send(p.GrabJob)
		r.WantPkt("w2 assign", w2.Read(), pkt(p.JobAssign, h, "ra", "x"))
		c.Barrier()
	})
}

func TestDifferential_ExceptionsFlagTurnsOptionOnForEveryone(t *testing.T) {
	Differential(t, []string{"--exceptions"}, []string{"--exceptions"}, func(r *Transcript) {
		c, w := r.Dial(), r.Dial()
		c.Send(p.SubmitJob, "exf", "u", "x")
		h := string(r.Read(c, "created").Data)
		w.Send(p.CanDo, "exf")
		w.Send(p.GrabJob)
		r.Read(w, "assign")
		w.Send(p.WorkException, h, "boom")
		r.WantPkt("exception", c.Read(), pkt(p.WorkException, h, "boom"))
		c.Barrier()
	})
}

// A NUL inside the one argument of CAN_DO, CANT_DO, SET_CLIENT_ID and
// OPTION_REQ ends it, as in gearmand (which reads it as a C string).
func TestDifferential_SingleArgumentsEndAtANul(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		w, c, a := r.Dial(), r.Dial(), r.Dial()
		w.Send(p.SetClientID, "myid", "tail")
		w.Send(p.CanDo, "cfn", "tail")
		w.Barrier()
		r.Want("status", a.Admin("status\n"), "cfn\t0\t0\t1\n.\n")
		if got := r.AdminSet(a, "workers", "workers\n"); !strings.Contains(got, " myid : cfn\n") {
			t.Errorf("workers: %q", got)
		}
		w.Send(p.CantDo, "cfn", "tail")
		w.Barrier()
		r.Want("status after CANT_DO", a.Admin("status\n"), "cfn\t0\t0\t0\n.\n")
		c.Send(p.OptionReq, "exceptions", "tail")
		r.WantPkt("option", c.Read(), pkt(p.OptionRes, "exceptions", "tail"))
	})
}
