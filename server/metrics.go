package server

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics. Counters on the hot path
// are resolved once, so counting a packet is one atomic add.
type metrics struct {
	registry              *prometheus.Registry
	packets               [protocol.MaxType + 1]prometheus.Counter // request types only
	unexpectedPackets     prometheus.Counter
	adminCommands         prometheus.Counter
	connections           prometheus.Gauge
	refused               prometheus.Counter
	submitted             prometheus.Counter
	coalesced             prometheus.Counter
	completed             prometheus.Counter
	failed                prometheus.Counter
	cancelled             prometheus.Counter
	retriesExhausted      prometheus.Counter
	storeErrors           prometheus.Counter
	noops                 prometheus.Counter
	lateResults           prometheus.Counter
	memoryClosed          prometheus.Counter
	unansweredAssignments prometheus.Counter
	lockWaits             prometheus.Counter
	latency               prometheus.Histogram
}

func newMetrics(s *Server) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	packets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gearbridge_packets_received_total", Help: `Binary packets received, by type: the request types; "UNEXPECTED" counts packets a server never receives (response types, "\0RES" magic).`,
	}, []string{"type"})
	// Only the types a client or worker sends: a series for a response type
	// could never be more than zero.
	for t := protocol.CanDo; t <= protocol.MaxType; t++ {
		if t.IsRequest() {
			m.packets[t] = packets.WithLabelValues(t.String())
		}
	}
	m.unexpectedPackets = packets.WithLabelValues("UNEXPECTED")
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m.adminCommands = counter("gearbridge_admin_commands_total", "Text admin commands received.")
	m.connections = prometheus.NewGauge(prometheus.GaugeOpts{Name: "gearbridge_connections", Help: "Open client, worker and admin connections."})
	m.refused = counter("gearbridge_connections_refused_total", "Connections refused because --max-connections was reached.")
	m.submitted = counter("gearbridge_jobs_submitted_total", "New jobs accepted (stored and queued).")
	m.coalesced = counter("gearbridge_jobs_coalesced_total", "Submits attached to an existing job by unique ID.")
	m.completed = counter("gearbridge_jobs_completed_total", "Jobs ended by WORK_COMPLETE.")
	m.failed = counter("gearbridge_jobs_failed_total", "Jobs ended by WORK_FAIL or WORK_EXCEPTION.")
	m.cancelled = counter("gearbridge_jobs_cancelled_total", "Jobs cancelled with the admin command.")
	m.retriesExhausted = counter("gearbridge_jobs_retries_exhausted_total", "Jobs dropped after --job-retries hand-outs.")
	m.storeErrors = counter("gearbridge_store_errors_total", "Submits refused because the store could not commit them.")
	m.noops = counter("gearbridge_noops_sent_total", "NOOP wake-ups sent to sleeping workers.")
	m.lateResults = counter("gearbridge_late_work_packets_dropped_total", "WORK_* packets dropped silently because their job had been taken back from the worker (CAN_DO_TIMEOUT, an unanswered held assignment).")
	m.unansweredAssignments = counter("gearbridge_unanswered_assignments_total", "Jobs offered again because the worker that got them through a held GRAB sent nothing within the re-wake period.")
	m.lockWaits = counter("gearbridge_event_loop_lock_waits_total", "Times an event loop found the scheduler lock taken by another and waited for it, then handled all its turn's remaining requests at once. Rising fast: the loops contend for the scheduler.")
	m.memoryClosed = counter("gearbridge_connections_closed_for_memory_total", "Connections closed because the buffer memory of all connections was over --max-buffer-memory (the largest holders first).")
	bufferUsed := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gearbridge_buffer_memory_bytes", Help: "Memory connections hold in requests still arriving and replies not yet read."},
		func() float64 { return float64(s.buf.used.Load()) })
	bufferLimit := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gearbridge_buffer_memory_limit_bytes", Help: "--max-buffer-memory (0: no cap)."},
		func() float64 { return float64(s.buf.limit) })
	m.registry.MustRegister(m.memoryClosed, bufferUsed, bufferLimit)
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gearbridge_job_duration_seconds",
		Help:    "Time from submit to WORK_COMPLETE.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12),
	})
	m.registry.MustRegister(packets, m.adminCommands, m.connections, m.refused, m.submitted,
		m.coalesced, m.completed, m.failed, m.cancelled, m.retriesExhausted, m.storeErrors,
		m.noops, m.lateResults, m.unansweredAssignments, m.lockWaits, m.latency, stateCollector{s})
	m.registry.MustRegister(runtimeCollectors()...)
	return m
}

func (s *Server) countPacket(p *protocol.Packet) {
	switch {
	case p == nil:
	case p.Type.IsRequest() && !p.Response:
		s.metrics.packets[p.Type].Inc()
	default:
		s.metrics.unexpectedPackets.Inc()
	}
}

// Registry returns the server's Prometheus registry, so that the caller can
// add the store's and the bridge's metrics to the same /metrics page.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.registry }

// stateCollector reads queue sizes at scrape time instead of keeping gauges
// up to date on every job.
type stateCollector struct{ s *Server }

var (
	queuedDesc  = prometheus.NewDesc("gearbridge_jobs_queued", "Jobs waiting for a worker, by function and priority.", []string{"function", "priority"}, nil)
	runningDesc = prometheus.NewDesc("gearbridge_jobs_running", "Jobs held by a worker, by function.", []string{"function"}, nil)
	workersDesc = prometheus.NewDesc("gearbridge_workers", "Worker connections registered for a function.", []string{"function"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queuedDesc
	ch <- runningDesc
	ch <- workersDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	// Read under the lock, send after it: the scrape must not hold up the
	// scheduler while the registry takes the metrics.
	type row struct {
		queued           [gearbridge.NumPriorities]int
		running, workers int
	}
	rows := map[string]*row{}
	c.s.mu.Lock()
	for name, f := range c.s.functions {
		label := labelValue(name)
		r := rows[label]
		if r == nil {
			r = &row{}
			rows[label] = r
		}
		for p, n := range f.queuedByPriority() {
			r.queued[p] += n
		}
		r.running += f.running
		r.workers += len(f.workers)
	}
	c.s.mu.Unlock()
	for label, r := range rows {
		for p, n := range r.queued {
			ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(n), label, gearbridge.Priority(p).String())
		}
		ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(r.running), label)
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(r.workers), label)
	}
}

// labelValue makes a function name a valid Prometheus label value. Gearman
// names are bytes, and one name that is not UTF-8 would otherwise fail the
// whole scrape: its invalid bytes are written as \xNN. A valid name that
// reads the same shares its series (Collect adds them up).
func labelValue(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, "\\x%02x", name[i])
		} else {
			b.WriteString(name[i : i+size])
		}
		i += size
	}
	return b.String()
}
