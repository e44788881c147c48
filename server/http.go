package server

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/gearbridge/gearbridge"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status is the JSON shape of /api/status: what the admin `status` and
// `workers` commands show.
type Status struct {
	Version   string           `json:"version"`
	Functions []FunctionStatus `json:"functions"`
	Workers   []WorkerStatus   `json:"workers"`
	// Bridge is the Jenkins bridge's view, when one runs (SetFleet).
	Bridge *gearbridge.Fleet `json:"bridge,omitempty"`
}

// FunctionStatus is one function's line of `status` and `prioritystatus`.
type FunctionStatus struct {
	Name    string `json:"name"`
	Total   int    `json:"total"`
	Running int    `json:"running"`
	Workers int    `json:"workers"`
	High    int    `json:"queued_high"`
	Normal  int    `json:"queued_normal"`
	Low     int    `json:"queued_low"`
	// OldestQueuedSeconds is how long the job at the head of the queue
	// has waited for a worker (0 when none waits).
	OldestQueuedSeconds float64 `json:"oldest_queued_seconds"`
}

// WorkerStatus is one connection's line of `workers`.
type WorkerStatus struct {
	ID        uint64   `json:"id"`
	Peer      string   `json:"peer"`
	ClientID  string   `json:"client_id"`
	Functions []string `json:"functions"`
}

// Snapshot returns the server's status.
func (s *Server) Snapshot() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Version: VersionString(), Functions: []FunctionStatus{}}
	for _, f := range s.sortedFunctions() {
		q := f.queuedByPriority()
		st.Functions = append(st.Functions, FunctionStatus{
			Name: f.name, Total: f.total(), Running: f.running, Workers: len(f.workers),
			High: q[gearbridge.PriorityHigh], Normal: q[gearbridge.PriorityNormal], Low: q[gearbridge.PriorityLow],
			OldestQueuedSeconds: f.oldestQueued(s.cfg.Now()).Seconds(),
		})
	}
	st.Workers = s.workerList()
	return st
}

// HTTPOptions configure the HTTP handler.
type HTTPOptions struct {
	// Backup serves /backup; nil answers 404 there.
	Backup gearbridge.Backuper
	// Token, when set, is the bearer token that every path but /healthz
	// and /metrics requires (Authorization: Bearer TOKEN).
	Token string
	// Pprof serves /debug/pprof.
	Pprof bool
}

// Handler returns the HTTP handler without a token or profiles: /metrics,
// /healthz, /api/status, a status page at /, and /backup when backup is
// non-nil.
func (s *Server) Handler(backup gearbridge.Backuper) http.Handler {
	return s.HTTPHandler(HTTPOptions{Backup: backup})
}

// HTTPHandler returns the HTTP handler: /metrics, /healthz and /readyz,
// open to all; /api/status, a status page at /, /backup and (with Pprof)
// /debug/pprof, which need the token when one is set.
func (s *Server) HTTPHandler(opts HTTPOptions) http.Handler {
	backup := opts.Backup
	open := http.NewServeMux()
	mux := http.NewServeMux()
	open.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	open.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	// Probes seldom carry tokens; the reasons name no more than /metrics.
	open.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.status())
	})
	mux.HandleFunc("GET /{$}", s.statusPage)
	// Profiles, for operators chasing a slow server: off unless asked for
	// (--pprof), since they show the server's memory.
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /backup", func(w http.ResponseWriter, r *http.Request) {
		if backup == nil {
			http.Error(w, "this server keeps no durable store (--durability none)", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="gearbridge.db"`)
		n, err := backup.Backup(w)
		if err != nil {
			// Headers are gone; cutting the stream short makes the client's
			// verification fail, which is what we want.
			s.log.Error("backup failed", "bytes", n, "err", err)
			panic(http.ErrAbortHandler)
		}
		s.log.Info("backup streamed", "bytes", n, "peer", r.RemoteAddr)
	})
	var rest http.Handler = mux
	if opts.Token != "" {
		rest = requireToken(opts.Token, mux)
	}
	open.Handle("/", rest)
	return open
}

// requireToken lets through requests that carry the bearer token.
func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gearbridge"`)
			http.Error(w, "this needs the server's token: Authorization: Bearer TOKEN (gearbridge backup --token-file FILE)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
