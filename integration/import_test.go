package integration

import (
	"database/sql"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	p "github.com/gearbridge/gearbridge/protocol"
)

// queuedJob is what a test submitted to gearmand and expects back.
type queuedJob struct {
	fn, unique, payload string
	epoch               int64 // 0: at once
}

// C gearmand with its libsqlite3 queue takes background jobs of every
// priority, with and without a unique, one with an epoch time still to come
// and one already due, and a foreground job; then it stops. `gearbridge
// import` loads them; `serve` on the result hands the background jobs out
// by priority, then in gearmand's submit order, the future one only when it
// is due, with their payloads and uniques, and nothing else. Importing
// again, before and after they ran, adds nothing.
func TestImport_GearmandSqliteQueue(t *testing.T) {
	NeedTool(t, GearmandPath)
	dir := t.TempDir()
	sqlitePath := filepath.Join(dir, "gearmand.sqlite")
	gm := StartGearmand(t, "--queue-type=libsqlite3", "--libsqlite3-db="+sqlitePath)

	c := Dial(t, gm.Addr)
	submit := func(typ p.Type, args ...string) {
		t.Helper()
		c.Send(typ, args...)
		if r := c.Read(); r.Type != p.JobCreated {
			t.Fatalf("%s %q: got %v", typ, args, r)
		}
	}
	due := time.Now().Unix() + 5
	past := strconv.FormatInt(time.Now().Unix()-3600, 10)
	// Submit order, interleaving priorities and functions.
	submit(p.SubmitJobLowBg, "fn.a", "low-1", "payload low-1")
	submit(p.SubmitJobBg, "fn.a", "normal-1", "payload normal-1")
	submit(p.SubmitJobEpoch, "fn.b", "later-1", strconv.FormatInt(due, 10), "payload later-1")
	submit(p.SubmitJobHighBg, "fn.b", "high-1", "payload high-1")
	submit(p.SubmitJobBg, "fn.b", "", "payload without a unique")
	submit(p.SubmitJobEpoch, "fn.a", "past-1", past, "payload past-1")
	submit(p.SubmitJobLowBg, "fn.b", "low-2", "")
	submit(p.SubmitJobHighBg, "fn.a", "high-2", "payload high-2\x00with a NUL")
	submit(p.SubmitJobBg, "fn.a", "normal-1", "payload normal-1") // coalesced by gearmand
	submit(p.SubmitJobBg, "fn.b", "normal-2", "payload normal-2")
	// A foreground job: gearmand's sqlite queue does not keep it.
	fg := Dial(t, gm.Addr)
	fg.Send(p.SubmitJob, "fn.a", "foreground-1", "payload foreground-1")
	fg.Read()
	gm.Stop()

	// What serve must hand out right away, in this order, and then later-1.
	want := []queuedJob{
		{"fn.b", "high-1", "payload high-1", 0},
		{"fn.a", "high-2", "payload high-2\x00with a NUL", 0},
		{"fn.a", "normal-1", "payload normal-1", 0},
		{"fn.b", "", "payload without a unique", 0}, // gearmand gave it a UUID
		{"fn.a", "past-1", "payload past-1", 0},
		{"fn.b", "normal-2", "payload normal-2", 0},
		{"fn.a", "low-1", "payload low-1", 0},
		{"fn.b", "low-2", "", 0},
	}
	later := queuedJob{"fn.b", "later-1", "payload later-1", due}

	db := filepath.Join(dir, "gearbridge.db")
	runImport := func(wantOut ...string) {
		t.Helper()
		cmd := exec.Command(GearbridgeBinary(t), "import", "--gearmand-sqlite", sqlitePath, "--db", db, "--job-handle-prefix", "H:imported")
		out, err := runWithin(t, cmd, 30*time.Second)
		if err != nil {
			t.Fatalf("gearbridge import: %v\n%s", err, out)
		}
		for _, w := range wantOut {
			if !strings.Contains(string(out), w) {
				t.Errorf("gearbridge import does not say %q:\n%s", w, out)
			}
		}
	}
	runImport("imported 9 of 9 jobs", "2 high, 5 normal, 2 low; 2 with an epoch time", "handles H:imported:1 to H:imported:9")
	runImport("imported 0 of 9 jobs", "9 imported by an earlier run")

	gb := StartGearbridge(t, "--durability", "sync", "--db", db)
	w := Dial(t, gb.Addr)
	w.Send(p.CanDo, "fn.a")
	w.Send(p.CanDo, "fn.b")
	var got []queuedJob
	var gotLater bool
	grab := func() bool {
		t.Helper()
		w.Send(p.GrabJobUniq)
		r := w.Read()
		switch r.Type {
		case p.NoJob:
			return false
		case p.JobAssignUniq:
		default:
			t.Fatalf("GRAB_JOB_UNIQ: got %v", r)
		}
		a := r.Args() // handle, function, unique, payload
		if !strings.HasPrefix(a[0], "H:imported:") {
			t.Errorf("handle %q", a[0])
		}
		j := queuedJob{fn: a[1], unique: a[2], payload: a[3]}
		if j.unique == later.unique {
			if now := time.Now().Unix(); now < due {
				t.Errorf("%s handed out at %d, before its epoch time %d", j.unique, now, due)
			}
			gotLater = true
		} else {
			got = append(got, j)
		}
		w.Send(p.WorkComplete, a[0], "")
		return true
	}
	for grab() {
	}
	if !gotLater {
		// It is due in a few seconds: the sleeping worker is woken then.
		w.Send(p.PreSleep)
		r, err := w.ReadWithin(scaledWait(t, time.Until(time.Unix(due, 0))+20*time.Second))
		if err != nil || r.Type != p.Noop {
			t.Fatalf("waiting for the epoch job: %v %v", r, err)
		}
		for grab() {
		}
	}
	if !gotLater {
		t.Errorf("the epoch job %s was never handed out", later.unique)
	}
	if len(got) != len(want) {
		t.Fatalf("handed out %d jobs, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range want {
		g := got[i]
		if want[i].unique == "" && g.unique != "" && g.fn == want[i].fn && g.payload == want[i].payload {
			continue // the UUID gearmand made up
		}
		if g != want[i] {
			t.Errorf("job %d: got %+v, want %+v", i, g, want[i])
		}
	}
	w.Barrier()
	gb.Stop()

	// The jobs have run and left the store: importing again still adds
	// nothing.
	runImport("imported 0 of 9 jobs", "9 imported by an earlier run")
	out, err := runWithin(t, exec.Command(GearbridgeBinary(t), "check", "--db", db), 30*time.Second)
	if err != nil || !strings.Contains(string(out), "ok: format version 2, 0 jobs") || !strings.Contains(string(out), "handle counter 9") ||
		!strings.Contains(string(out), "9 jobs recorded as imported") {
		t.Errorf("check after the run: %v\n%s", err, out)
	}
}

// The import is offline: it refuses a store that a running server holds,
// says so, and leaves it alone.
func TestImport_RefusesAStoreInUse(t *testing.T) {
	gb := StartGearbridge(t, "--durability", "sync")
	db := filepath.Join(gb.Dir, "gearbridge.db")
	sqlitePath := filepath.Join(t.TempDir(), "empty.sqlite")
	// A queue table as gearmand creates it, with one job.
	sdb, err := sql.Open("sqlite", sqlitePath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sdb.Exec(`CREATE TABLE gearman_queue ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name));
		INSERT INTO gearman_queue VALUES ('u', 'f', 1, x'00', 0)`)
	if cerr := sdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(GearbridgeBinary(t), "import", "--gearmand-sqlite", sqlitePath, "--db", db)
	out, err := runWithin(t, cmd, 30*time.Second)
	if err == nil {
		t.Fatalf("import into a running server's store succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "in use") || !strings.Contains(string(out), "stop the server") {
		t.Errorf("the error does not say the store is in use:\n%s", out)
	}
	Dial(t, gb.Addr).Barrier()
	if got := AdminOnce(t, gb.Addr, "status\n"); got != ".\n" {
		t.Errorf("the server's queue changed: %q", got)
	}
}
