// Command loadgen drives a Gearman job server on the loopback interface
// with one of a few fixed scenarios and prints one result line:
//
//	go run ./bench/loadgen --server 127.0.0.1:4730 --scenario submit-bg --clients 4 --jobs 50000
//
// It speaks the binary protocol through gearbridge's codec, so it measures
// gearbridge and C gearmand the same way, and reads the store's commit and
// fsync counters from /metrics. bench/run.sh uses it for the durable
// scenarios; the in-memory ones run on bench/cload, a leaner C client.
// Scenarios:
//
//	submit-bg        clients each submit SUBMIT_JOB_BG and wait for JOB_CREATED
//	submit-pipelined conns each send SUBMIT_JOB_BG without waiting, counting JOB_CREATEDs
//
// Every run uses fresh function names, so jobs left from earlier runs
// (a durable queue keeps them) never coalesce with or feed this one.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

type config struct {
	server   string
	scenario string
	label    string
	clients  int
	conns    int
	jobs     int
	payload  int
	window   int
	duration time.Duration
	metrics  string
	prefix   string // function name prefix, unique per run
}

func main() {
	var cfg config
	flag.StringVar(&cfg.server, "server", "127.0.0.1:4730", "job server address (loopback only)")
	flag.StringVar(&cfg.scenario, "scenario", "submit-bg", "submit-bg or submit-pipelined")
	flag.StringVar(&cfg.label, "label", "", "server label printed in the result line")
	flag.IntVar(&cfg.clients, "clients", 4, "client connections")
	flag.IntVar(&cfg.conns, "conns", 1, "connections for submit-pipelined")
	flag.IntVar(&cfg.jobs, "jobs", 20000, "jobs to submit")
	flag.IntVar(&cfg.payload, "payload", 100, "payload bytes per job")
	flag.IntVar(&cfg.window, "window", 1000, "most unacknowledged submits in flight over all connections (submit-pipelined)")
	flag.DurationVar(&cfg.duration, "duration", time.Minute, "stop early after this long and report what was done")
	flag.StringVar(&cfg.metrics, "metrics", "", "Prometheus URL; store commit/fsync counters are reported per job")
	freePort := flag.Bool("free-port", false, "print a free loopback TCP port and exit")
	get := flag.String("get", "", "write the body of this URL to standard output and exit (bench/run.sh fetches profiles with it: the bench machine may have no curl)")
	flag.Parse()

	if *get != "" {
		if err := fetch(*get); err != nil {
			fatal(err)
		}
		return
	}
	if *freePort {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fatal(err)
		}
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		return
	}
	if err := checkLoopback(cfg.server); err != nil {
		fatal(err)
	}
	if cfg.label == "" {
		cfg.label = cfg.server
	}
	cfg.prefix = fmt.Sprintf("lg%d", time.Now().UnixNano())

	run, ok := scenarios[cfg.scenario]
	if !ok {
		fatal(fmt.Errorf("unknown scenario %q", cfg.scenario))
	}
	before, err := storeCounters(cfg.metrics)
	if err != nil {
		fatal(err)
	}
	res, err := run(&cfg)
	if err != nil {
		fatal(fmt.Errorf("%s against %s: %w", cfg.scenario, cfg.label, err))
	}
	after, err := storeCounters(cfg.metrics)
	if err != nil {
		fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(after)) {
		v := after[name]
		if res.jobs > 0 {
			res.extra = append(res.extra, fmt.Sprintf("%s_per_job=%.3f", shortMetric(name), (v-before[name])/float64(res.jobs)))
		}
	}
	fmt.Println(res.line(&cfg))
}

// result is what a scenario measured.
type result struct {
	jobs    int
	elapsed time.Duration
	extra   []string
}

func (r result) line(cfg *config) string {
	rate := float64(r.jobs) / r.elapsed.Seconds()
	parts := []string{
		"scenario=" + cfg.scenario, "server=" + cfg.label,
		"jobs=" + strconv.Itoa(r.jobs), "elapsed=" + r.elapsed.Round(time.Millisecond).String(),
		fmt.Sprintf("jobs_per_s=%.0f", rate),
	}
	return strings.Join(append(parts, r.extra...), " ")
}

var scenarios = map[string]func(*config) (result, error){
	"submit-bg":        submitBg,
	"submit-pipelined": submitPipelined,
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--server %s: loadgen only targets loopback addresses", addr)
	}
	return nil
}

// storeCounters scrapes counters whose names mention fsync or commit
// (failed commits excluded). An empty url gives no counters.
func storeCounters(url string) (map[string]float64, error) {
	out := map[string]float64{}
	if url == "" {
		return out, nil
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("metrics: " + resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		name := f[0]
		if !(strings.Contains(name, "fsync") || strings.Contains(name, "commit")) || strings.Contains(name, "fail") {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// shortMetric turns gearbridge_store_fsyncs_total into fsyncs.
func shortMetric(name string) string {
	name = strings.TrimSuffix(name, "_total")
	if i := strings.LastIndexByte(name, '_'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}

// fetch copies the body of url to standard output.
func fetch(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}
