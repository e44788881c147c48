package server

import (
	"runtime"
	"runtime/debug"

	"github.com/gearbridge/gearbridge"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// runtimeCollectors are the standard go_* and process_* metrics, and
// gearbridge_build_info: which release, Go and commit a server runs.
func runtimeCollectors() []prometheus.Collector {
	revision := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && revision != "unknown" {
			revision += "-dirty"
		}
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gearbridge_build_info",
		Help: "Always 1; its labels say which build is running.",
		ConstLabels: prometheus.Labels{
			"version": gearbridge.Version, "goversion": runtime.Version(), "revision": revision,
			"goos": runtime.GOOS, "goarch": runtime.GOARCH,
		},
	})
	info.Set(1)
	return []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		info,
	}
}
