package bridge

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	polls     *prometheus.CounterVec
	workers   *prometheus.GaugeVec
	triggers  prometheus.Counter
	completed *prometheus.CounterVec
	failures  prometheus.Counter
	reg       prometheus.Registerer

	pollErrors *prometheus.CounterVec

	// paramsDropped counts job parameters a rest trigger could not pass.
	paramsDropped *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		reg: reg,
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_polls_total", Help: "Snapshots read from each Jenkins master.",
		}, []string{"master"}),
		workers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gearbridge_bridge_executor_workers", Help: "Executor workers per Jenkins master (per job server).",
		}, []string{"master"}),
		triggers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_builds_triggered_total", Help: "Builds the bridge asked Jenkins for.",
		}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_builds_completed_total", Help: "Builds reported with WORK_COMPLETE, by master and result.",
		}, []string{"master", "result"}),
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_poll_errors_total", Help: "Failed polls of each Jenkins master, by reason: unauthorized, forbidden, not_found, http_error, server_error, timeout, network, bad_response, other.",
		}, []string{"master", "reason"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_builds_failed_to_run_total", Help: "Jobs ended with WORK_EXCEPTION because the build could not start or finish.",
		}),
		paramsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_parameters_dropped_total", Help: "Job parameters not passed to Jenkins because the project does not define them (trigger: rest).",
		}, []string{"master", "project"}),
	}
}

// watch registers the metrics, and a count of Jenkins requests per master.
func (m *metrics) watch(b *Bridge) {
	if m.reg == nil {
		return
	}
	m.reg.MustRegister(m.polls, m.workers, m.triggers, m.completed, m.failures, m.paramsDropped, requestCollector{b},
		m.pollErrors, healthCollector{b})
}

type requestCollector struct{ b *Bridge }

var requestsDesc = prometheus.NewDesc("gearbridge_bridge_jenkins_requests_total", "HTTP requests sent to each Jenkins master.", []string{"master"}, nil)

func (c requestCollector) Describe(ch chan<- *prometheus.Desc) { ch <- requestsDesc }

func (c requestCollector) Collect(ch chan<- prometheus.Metric) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	// A master replaced by a reload still counts while it finishes its
	// builds, and its successor carries its total on (reload.go).
	total := map[string]uint64{}
	for name, m := range c.b.masters {
		total[name] += m.jc.requests.Load()
	}
	for m := range c.b.leaving {
		if _, ok := total[m.cfg.Name]; ok {
			total[m.cfg.Name] += m.jc.requests.Load()
		}
	}
	for name, n := range total {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n), name)
	}
}

// healthCollector reads each master's health and builds at scrape time.
type healthCollector struct{ b *Bridge }

var (
	masterUpDesc    = prometheus.NewDesc("gearbridge_bridge_master_up", "1 if the last poll of the Jenkins master succeeded, else 0.", []string{"master"}, nil)
	lastSuccessDesc = prometheus.NewDesc("gearbridge_bridge_master_last_success_timestamp_seconds", "Unix time of the last successful poll of the Jenkins master (0: none yet).", []string{"master"}, nil)
	inFlightDesc    = prometheus.NewDesc("gearbridge_bridge_builds_in_flight", "Builds the bridge has triggered on the Jenkins master and not yet seen end.", []string{"master"}, nil)
)

func (c healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- masterUpDesc
	ch <- lastSuccessDesc
	ch <- inFlightDesc
}

func (c healthCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.b.masterList() {
		h := m.health.read()
		up, last := 0.0, 0.0
		if h.up {
			up = 1
		}
		if !h.lastSuccess.IsZero() {
			last = float64(h.lastSuccess.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(masterUpDesc, prometheus.GaugeValue, up, m.cfg.Name)
		ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, last, m.cfg.Name)
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(c.b.builds.inFlightOn(m.cfg.Name)), m.cfg.Name)
	}
}
