package integration

// Interop with Perl's Gearman::Client and Gearman::Worker 2.004
// (libgearman-client-perl): a second, pure Perl implementation of the
// protocol, driven by testdata/perl_interop.pl.

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// needPerlGearman returns perl's path, skipping (failing under CI) when
// perl or its Gearman modules are missing.
func needPerlGearman(t *testing.T) string {
	t.Helper()
	perl := NeedTool(t, "perl")
	if out, err := exec.Command(perl, "-MGearman::Client", "-MGearman::Worker", "-e1").CombinedOutput(); err != nil {
		skipOrFail(t, "Perl Gearman modules not available: %v: %s (apt-get install libgearman-client-perl)", err, out)
	}
	return perl
}

// The Perl worker's handler that dies makes it send WORK_EXCEPTION and then
// WORK_FAIL for the same job. Against gearmand 1.1.20 neither side survives
// that: the worker dies on the ERROR reply to its WORK_FAIL, and the client
// croaks on the WORK_FAIL that stands for the exception (its handle carries
// gearmand's trailing NUL). Against gearbridge both go on, which is what the
// ten tasks after it show. The same goes for a late result after the
// worker's CAN_DO_TIMEOUT took its job back (gearmand: ERROR, and the worker
// dies; gearbridge drops it).
func TestInterop_PerlClientAndWorker(t *testing.T) {
	perl := needPerlGearman(t)
	script, err := filepath.Abs(filepath.Join("testdata", "perl_interop.pl"))
	must(t, err)
	s := StartGearbridge(t)
	port := strconv.Itoa(s.Port)

	exited := startProcess(t, "perl worker", exec.Command(perl, script, "worker", port))
	a := Dial(t, s.Addr)
	defer a.Close()
	eventually(t, cliTimeout, "the Perl worker to register", func() bool {
		st := a.Admin("status\n")
		return statusOf(st, "perl_reverse").workers == 1 && statusOf(st, "perl_die").workers == 1 &&
			statusOf(st, "perl_fail").workers == 1 && statusOf(st, "perl_slow").workers == 1
	})

	out, errOut := runCLI(t, "", perl, script, "client", port)
	const want = "foreground: olleh status: 1/2\n" +
		"fail: undef\n" +
		"die: undef on_fail\n" +
		"taskset: 1boj,2boj,3boj,4boj,5boj,6boj,7boj,8boj,9boj,01boj\n" +
		"background: handle\n" +
		"status: known=1 running=0\n" +
		"coalesced: same\n" +
		"queued: 4 running=0 capable=0\n" +
		"data: data d1, warning w1 result: done\n" +
		"exception: called result: undef\n" +
		"timed out: second run\n" +
		"after: evila\n"
	if out != want {
		t.Fatalf("perl client printed:\n%s\nwant:\n%s\nstderr: %s", out, want, errOut)
	}
	select {
	case <-exited:
		t.Fatal("the Perl worker exited")
	default:
	}
	// Its one job that died took no ERROR and left nothing behind.
	if st := statusOf(a.Admin("status\n"), "perl_die"); st.total != 0 || st.workers != 1 {
		t.Fatalf("perl_die after the run: %+v", st)
	}
}
