package integration

// Differential tests of the text admin protocol (reference §2).

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	p "github.com/gearbridge/gearbridge/protocol"
)

// reOK matches "OK <value>\n" for one exact value (or any single token when
// value is empty).
func reOK(value string) *regexp.Regexp {
	if value == "" {
		return regexp.MustCompile(`^OK [^\s]+\n$`)
	}
	return regexp.MustCompile(`^OK ` + regexp.QuoteMeta(value) + `\n$`)
}

func TestDifferential_AdminErrorsAndSimpleReplies(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		a := r.Dial()
		r.Want("status on empty server", a.Admin("status\n"), ".\n")
		r.Want("STATUS upper case, CRLF", a.Admin("STATUS\r\n"), ".\n")
		r.Shape("version", a.Admin("version\n"), reOK(""), "OK <version>\n")
		r.Shape("getpid", a.Admin("getpid\r\n"), reOK(strconv.Itoa(r.Srv.Pid())), "OK <pid>\n")
		r.Shape("verbose", a.Admin("verbose\n"), regexp.MustCompile(`^OK [A-Z]+\n$`), "OK <LEVEL>\n")
		r.Want("unknown command", a.Admin("foo\n"), "ERR UNKNOWN_COMMAND Unknown+server+commandfoo\r\n")
		r.Want("empty line", a.Admin("\n"), "ERR UNKNOWN_COMMAND Unknown+server+command\r\n")
		r.Want("show other", a.Admin("show foo\n"), "ERR UNKNOWN_SHOW_ARGUMENTS\r\n")
		r.Want("cancel alone", a.Admin("cancel\n"), "ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n")
		r.Want("cancel job alone", a.Admin("cancel job\n"), "ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n")
		r.Want("cancel x y", a.Admin("cancel x y\n"), "ERR UNKNOWN_ERROR\r\n")
		r.Want("cancel unknown job", a.Admin("cancel job H:nope:1\n"), "ERR UNKNOWN_JOB\r\n")
		r.Want("create alone", a.Admin("create\n"), "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+create\r\n")
		r.Want("drop alone", a.Admin("drop\n"), "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+drop\r\n")
		r.Want("maxqueue alone", a.Admin("maxqueue\n"), "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+maxqueue\r\n")
		r.Want("maxqueue unknown fn", a.Admin("maxqueue nosuchfn 5\n"), "OK\r\n")
		r.Want("drop unknown fn", a.Admin("drop function nosuchfn\r\n"), "ERR function not found\r\n")
		r.Want("show jobs empty", a.Admin("show jobs\n"), ".\n")
		r.Want("show unique jobs empty", a.Admin("show unique jobs\n"), ".\n")
		r.Want("prioritystatus empty", a.Admin("prioritystatus\n"), ".\n")
	})
}

func TestDifferential_AdminStatusWorkersPrioritystatus(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w1, w2, a := r.Dial(), r.Dial(), r.Dial(), r.Dial()
		w1.Send(p.SetClientID, "my id with spaces")
		w1.Send(p.CanDo, "fA")
		w1.Send(p.CanDo, "fB")
		w1.Barrier()
		w2.Send(p.CanDo, "fA")
		w2.Barrier()
		c.Send(p.SubmitJobHighBg, "fA", "1", "")
		r.Read(c, "created 1")
		c.Send(p.SubmitJobLowBg, "fA", "2", "")
		r.Read(c, "created 2")
		c.Send(p.SubmitJob, "fB", "3", "")
		r.Read(c, "created 3")
		w2.Send(p.GrabJob)
		r.Read(w2, "w2 assign")
		r.AdminSet(a, "status", "status\n")
		r.AdminSet(a, "prioritystatus", "prioritystatus\n")
		r.AdminSet(a, "workers", "workers\n")
		// Column 4: 1 for the two background jobs (one running, one
		// queued), 0 for the foreground one.
		r.AdminSet(a, "show jobs", "show jobs\n")
		r.AdminSet(a, "show unique jobs", "show unique jobs\n")
		// Functions stay listed after their workers leave.
		w1.Close()
		w2.Close()
		// gearmand drops a closed connection from `workers` before its
		// job thread has taken back the connection's functions and jobs:
		// wait for `status` to show no workers and nothing running.
		eventually(r.T, opTimeout, "workers to leave", func() bool {
			if strings.Count(a.Admin("workers\n"), "\n") != 3 { // a, c, "."
				return false
			}
			for _, line := range strings.Split(strings.TrimSuffix(a.Admin("status\n"), ".\n"), "\n") {
				if f := strings.Split(line, "\t"); len(f) == 4 && (f[2] != "0" || f[3] != "0") {
					return false
				}
			}
			return true
		})
		r.AdminSet(a, "status after workers left", "status\n")
	})
}

// Column 4 of `show jobs` is gearmand's job_queued, set per job: 1 for a
// job handed to its queue store, which is every background job whatever
// the queue (its default in-memory queue has a store function too) and
// every job replayed at start-up; 0 for a foreground job, including one a
// background submit coalesced onto, and for a job `cancel job` took out of
// the store. It does not depend on gearmand's queue nor on gearbridge's
// --durability: gearmand runs with its in-memory queue against
// --durability none and with SQLite against --durability sync.
func TestDifferential_AdminShowJobsQueuedColumn(t *testing.T) {
	for _, durability := range []string{"none", "sync"} {
		t.Run(durability, func(t *testing.T) {
			gb := []string{"--durability", durability}
			var gm []string
			if durability == "sync" {
				// gearmand drops restored foreground jobs; so does this.
				gb = append(gb, "--restore-foreground", "drop")
				gm = []string{"--queue-type=libsqlite3", "--libsqlite3-db=" + filepath.Join(t.TempDir(), "queue.db")}
			}
			Differential(t, gb, gm, func(r *Transcript) {
				c, c2, w, a := r.Dial(), r.Dial(), r.Dial(), r.Dial()
				// Running: a foreground and a background job.
				c.Send(p.SubmitJob, "sjrun", "rf", "x")
				hrf := string(r.Read(c, "running fg").Data)
				c2.Send(p.SubmitJobBg, "sjrun", "rb", "x")
				hrb := string(r.Read(c2, "running bg").Data)
				w.Send(p.CanDo, "sjrun")
				w.Send(p.GrabJob)
				r.WantPkt("grab fg", w.Read(), pkt(p.JobAssign, hrf, "sjrun", "x"))
				w.Send(p.GrabJob)
				r.WantPkt("grab bg", w.Read(), pkt(p.JobAssign, hrb, "sjrun", "x"))
				// Queued, no worker: foreground, background, a future epoch.
				c.Send(p.SubmitJob, "sjq", "qf", "x")
				hqf := string(r.Read(c, "queued fg").Data)
				c2.Send(p.SubmitJobBg, "sjq", "qb", "x")
				hqb := string(r.Read(c2, "queued bg").Data)
				c2.Send(p.SubmitJobEpoch, "sjq", "qe", strconv.FormatInt(time.Now().Unix()+3600, 10), "x")
				r.Read(c2, "queued epoch")
				r.AdminSet(a, "show jobs", "show jobs\n")

				// Coalescing does not change the column: a background submit
				// onto the foreground job leaves 0, a foreground submit onto
				// the background job leaves 1.
				c2.Send(p.SubmitJobBg, "sjq", "qf", "y")
				r.WantPkt("bg onto fg", c2.Read(), pkt(p.JobCreated, hqf))
				c.Send(p.SubmitJob, "sjq", "qb", "y")
				r.WantPkt("fg onto bg", c.Read(), pkt(p.JobCreated, hqb))
				r.AdminSet(a, "show jobs after coalescing", "show jobs\n")

				// Cancelling the running background job takes it out of the
				// store: 1 in column 3, 0 in column 4.
				r.Want("cancel running bg", a.Admin("cancel job "+hrb+"\n"), "OK\r\n")
				r.AdminSet(a, "show jobs after cancel", "show jobs\n")

				w.Send(p.WorkComplete, hrf, "done")
				r.WantPkt("fg complete", c.Read(), pkt(p.WorkComplete, hrf, "done"))
				w.Send(p.WorkComplete, hrb, "done")
				w.Barrier()
				r.AdminSet(a, "show jobs after the running jobs ended", "show jobs\n")
				if durability != "sync" {
					return
				}
				// Replayed jobs show 1. gearmand renumbers them from 1 and
				// gearbridge keeps their handles, so handles are masked.
				for _, conn := range []*Conn{c, c2, w, a} {
					conn.Close()
				}
				r.Srv.Restart()
				jobs := handleRE.ReplaceAllString(r.Dial().Admin("show jobs\n"), "H:*")
				r.Note("show jobs after restart (handles masked)", sortListing(jobs))
			})
		})
	}
}

func TestDifferential_AdminMaxqueue(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, a := r.Dial(), r.Dial()
		r.Want("create", a.Admin("create function mq\r\n"), "OK\r\n")
		r.Want("maxqueue 1", a.Admin("maxqueue mq 1\n"), "OK\r\n")
		c.Send(p.SubmitJobBg, "mq", "u1", "x")
		h := string(r.Read(c, "first").Data)
		c.Send(p.SubmitJobBg, "mq", "u2", "x")
		r.WantPkt("second bg", c.Read(), pkt(p.Error, "QUEUE_ERROR", "Job queue is full"))
		c.Send(p.SubmitJobHigh, "mq", "u3", "x")
		r.WantPkt("foreground high", c.Read(), pkt(p.Error, "QUEUE_ERROR", "Job queue is full"))
		// A coalesced submit creates no job, so the limit does not apply.
		c.Send(p.SubmitJobBg, "mq", "u1", "x")
		r.WantPkt("coalesced", c.Read(), pkt(p.JobCreated, h))
		// Three sizes: high, normal, low.
		r.Want("maxqueue 3 sizes", a.Admin("maxqueue mq 0 0 2\n"), "OK\r\n")
		c.Send(p.SubmitJobLowBg, "mq", "u4", "x")
		r.Read(c, "low under limit")
		c.Send(p.SubmitJobLowBg, "mq", "u5", "x")
		r.WantPkt("low over limit", c.Read(), pkt(p.Error, "QUEUE_ERROR", "Job queue is full"))
		c.Send(p.SubmitJobBg, "mq", "u6", "x")
		r.Read(c, "normal unlimited")
	})
}

func TestDifferential_AdminCreateAndDropFunction(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, w, a := r.Dial(), r.Dial(), r.Dial()
		r.Want("create CRLF", a.Admin("create function cf\r\n"), "OK\r\n")
		r.Want("create LF", a.Admin("create function abc\n"), "OK\r\n")
		// gearmand cuts the last character of a name ended by a bare "\n"
		// (arg_size-2); gearbridge creates the name as given.
		r.Differs("status", sortListing(a.Admin("status\n")),
			"ab\t0\t0\t0\ncf\t0\t0\t0\n.\n", "abc\t0\t0\t0\ncf\t0\t0\t0\n.\n")
		r.Want("drop CRLF", a.Admin("drop function cf\r\n"), "OK\r\n")
		r.Want("dropped twice", a.Admin("drop function cf\r\n"), "ERR function not found\r\n")

		w.Send(p.CanDo, "dw")
		w.Barrier()
		r.Want("drop with worker", a.Admin("drop function dw\n"), "ERR there are still connected workers or executing clients\r\n")

		c.Send(p.SubmitJobBg, "dq", "u", "x")
		r.Read(c, "queued")
		// gearmand drops the function and leaves its jobs dangling;
		// gearbridge refuses while jobs are queued.
		r.Differs("drop with queued job", a.Admin("drop function dq\n"), "OK\r\n", "ERR there are still queued jobs\r\n")
	})
}

func TestDifferential_AdminCancelJob(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		c, a, w := r.Dial(), r.Dial(), r.Dial()
		c.Send(p.SubmitJob, "cj", "u", "x")
		h := string(r.Read(c, "created").Data)
		r.Want("cancel", a.Admin("cancel job "+h+"\n"), "OK\r\n")
		r.WantPkt("client told", c.Read(), pkt(p.WorkFail, h))
		// gearmand only marks the job ignored, so a second cancel succeeds
		// again (and sends a second WORK_FAIL); gearbridge removes it.
		second := a.Admin("cancel job " + h + "\r\n")
		r.Differs("cancel again", second, "OK\r\n", "ERR UNKNOWN_JOB\r\n")
		if r.IsGearmand() {
			c.Expect(p.WorkFail, h) // not recorded: gearmand only
		}
		c.Barrier()
		w.Send(p.CanDo, "cj")
		w.Send(p.GrabJob)
		r.WantPkt("cancelled job is not handed out", w.Read(), pkt(p.NoJob))
		r.Want("show jobs", a.Admin("show jobs\n"), ".\n")
	})
}

func TestDifferential_AdminShutdown(t *testing.T) {
	Differential(t, nil, nil, func(r *Transcript) {
		a := r.Dial()
		// Removed from gearmand in 2016; gearbridge accepts it from loopback.
		r.Differs("shutdown", a.Admin("shutdown\n"), "ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n", "OK\r\n")
		if r.IsGearmand() {
			return
		}
		select {
		case <-r.Srv.Exited():
		case <-time.After(stopTimeout):
			r.T.Fatalf("gearbridge still running %v after shutdown", stopTimeout)
		}
	})
}
