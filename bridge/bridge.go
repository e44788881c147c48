// Package bridge runs Gearman workers for the executors of Jenkins
// masters, so that any executor on any master takes the next build from
// one shared Gearman queue. It talks to the job server over TCP like any
// worker (so it works against C gearmand too) and to Jenkins over REST.
package bridge

import (
	"context"
	"crypto/tls"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildRefs records which Jenkins build each job handle started, durably,
// so that a restarted bridge re-attaches instead of building twice. A nil
// or empty ref deletes the record. gearbridge.Store implements it.
type BuildRefs interface {
	SetBuildRef(handle string, ref []byte) error
	BuildRef(handle string) (ref []byte, ok bool, err error)
}

// Options are what the bridge needs besides its configuration.
type Options struct {
	// Embedded is the address of the job server in this process, used
	// when the configuration names no servers (see dialGear for the forms).
	Embedded string
	// Refs keeps build references; nil means no re-attach after restarts.
	Refs   BuildRefs
	Logger *slog.Logger
	// Registry receives the bridge's metrics; nil means none.
	Registry prometheus.Registerer
}

// Bridge is the set of masters and their workers.
type Bridge struct {
	servers  []string
	gearTLS  *tls.Config // for tls:// servers
	embedded string
	refs     BuildRefs
	log      *slog.Logger
	metrics  *metrics

	// mu guards the masters and what Run and Reload share (reload.go).
	mu      sync.Mutex
	masters map[string]*master
	order   []*master
	leaving map[*master]bool // removed or replaced, finishing their builds
	ctx     context.Context  // Run's; nil before Run
	wg      sync.WaitGroup   // every running master
	builds  buildTracker     // status.go
}

// New prepares a bridge; Run starts it.
func New(cfg *Config, opts Options) *Bridge {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Bridge{
		servers:  cfg.Gearman.Servers,
		gearTLS:  cfg.Gearman.tls,
		embedded: opts.Embedded,
		refs:     opts.Refs,
		log:      slog.New(shortErrors{opts.Logger.Handler()}).With("component", "bridge"),
		metrics:  newMetrics(opts.Registry),
		masters:  map[string]*master{},
		leaving:  map[*master]bool{},
	}
	if len(b.servers) == 0 {
		b.servers = []string{opts.Embedded}
	}
	for _, mc := range cfg.Masters {
		m := newMaster(b, mc, b.servers, b.gearTLS)
		b.masters[mc.Name] = m
		b.order = append(b.order, m)
	}
	b.metrics.watch(b)
	return b
}

func (b *Bridge) master(name string) *master {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.masters[name]
}

// Run runs every master until ctx ends; builds that are running go on in
// Jenkins, and their references stay in the store for the next start.
// Reload changes the masters while it runs.
func (b *Bridge) Run(ctx context.Context) {
	b.mu.Lock()
	b.ctx = ctx
	for _, m := range b.order {
		b.startLocked(m)
	}
	b.mu.Unlock()
	<-ctx.Done()
	b.wg.Wait()
}

// startLocked runs m until ctx ends or a reload stops it.
func (b *Bridge) startLocked(m *master) {
	b.log.Info("bridging Jenkins master", "master", m.cfg.Name, "url", m.cfg.URL, "servers", m.servers, "poll_interval", m.pollInterval())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		m.run(b.ctx)
		b.retired(m)
	}()
}
