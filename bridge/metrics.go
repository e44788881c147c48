package bridge

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	polls     *prometheus.CounterVec
	workers   *prometheus.GaugeVec
	triggers  prometheus.Counter
	completed *prometheus.CounterVec
	failures  prometheus.Counter
	reg       prometheus.Registerer

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
			Name: "gearbridge_bridge_builds_completed_total", Help: "Builds reported with WORK_COMPLETE, by result.",
		}, []string{"result"}),
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
	m.reg.MustRegister(m.polls, m.workers, m.triggers, m.completed, m.failures, m.paramsDropped, requestCollector{b})
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
