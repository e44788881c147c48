package bridge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// master keeps one Jenkins master's workers in step with its nodes,
// executors and projects.
type master struct {
	cfg     MasterConfig
	bridge  *Bridge
	servers []string    // the job servers its workers connect to
	gearTLS *tls.Config // for tls:// servers
	jc      *jenkins
	log     *slog.Logger
	metrics *metrics
	health  masterHealth // status.go

	mu      sync.Mutex
	snap    *snapshot
	legacy  legacyCache         // used by the polling goroutine only
	gates   map[string]*gate    // by node name
	workers map[string]*worker  // by server + "\x00" + worker ID
	running map[string]*project // our builds' projects by build URL, for stop: and set_description:
	stopped map[string]bool     // build URLs stopped through stop:
	pin     pinState
	wg      sync.WaitGroup
	pollNow chan struct{}

	offline map[string]*offlineDuty // single-use nodes to take offline, by name (singleuse.go)
	// The first polls look for single-use builds already running (singleuse.go);
	// used by the polling goroutine only.
	scanned   bool
	unscanned map[string]*unscannedBuild // by running build URL

	// quit is closed when a reload removes or replaces the master
	// (reload.go): it takes no more jobs and stops once its builds end.
	quit     chan struct{}
	quitOnce sync.Once
	draining bool // under mu: quit was seen; no new workers
}

func newMaster(b *Bridge, cfg MasterConfig, servers []string, gearTLS *tls.Config) *master {
	return &master{
		health:  masterHealth{downSince: time.Now()}, // down until it answers
		cfg:     cfg,
		bridge:  b,
		servers: servers,
		gearTLS: gearTLS,
		quit:    make(chan struct{}),
		jc:      newJenkins(&cfg),
		log:     b.log.With("master", cfg.Name),
		metrics: b.metrics,
		gates:   map[string]*gate{},
		workers: map[string]*worker{},
		running: map[string]*project{},
		stopped: map[string]bool{},
		offline: map[string]*offlineDuty{},
		pollNow: make(chan struct{}, 1),
	}
}

func (m *master) pollInterval() time.Duration { return time.Duration(m.cfg.PollInterval) }

// run polls the master and keeps its workers until ctx ends.
func (m *master) run(ctx context.Context) {
	for _, server := range m.servers {
		mw := newManager(m, server)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			mw.run(ctx)
		}()
	}
	bo := backoff{max: time.Duration(m.cfg.PollInterval)}
	failing := false
	quit := m.quit
	var drained chan struct{} // closed when a stopped master's builds have ended
	for {
		err := m.pollOnce(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && !failing:
			switch statusOf(err) {
			case http.StatusUnauthorized:
				m.log.Error("Jenkins rejected the credentials (HTTP 401): check user and token; no jobs are taken for this master until it accepts them", "url", m.cfg.URL, "user", m.cfg.User)
			case http.StatusForbidden:
				m.log.Error("Jenkins refused access (HTTP 403): the user lacks Overall/Read or Job/Build permission; no jobs are taken for this master", "url", m.cfg.URL, "user", m.cfg.User, "err", err)
			default:
				m.log.Error("Jenkins master unreachable; its workers stop taking jobs until it answers", "url", m.cfg.URL, "err", err)
			}
			failing = true
		case err == nil && failing:
			m.log.Info("Jenkins master reachable again", "url", m.cfg.URL)
			failing = false
		}
		wait := m.pollInterval()
		if err != nil {
			wait = min(bo.next(), wait)
		} else {
			bo.reset()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			m.mu.Lock()
			for _, w := range m.workers {
				w.retire()
			}
			m.mu.Unlock()
			m.wg.Wait()
			return
		case <-quit:
			// Removed or replaced by a reload: take no more jobs, but keep
			// polling until the builds in flight have ended (their gates
			// and single-use nodes still need the snapshots).
			t.Stop()
			quit = nil
			drained = make(chan struct{})
			m.mu.Lock()
			m.draining = true
			for _, w := range m.workers {
				w.retire()
			}
			clear(m.workers)
			m.mu.Unlock()
			go func() {
				m.wg.Wait()
				close(drained)
			}()
		case <-drained:
			t.Stop()
			m.log.Info("stopped the master's workers after their builds")
			return
		case <-t.C:
		case <-m.pollNow:
			t.Stop()
		}
	}
}

// pollOnce reads a snapshot and applies it. Only run's goroutine polls, so
// the legacy cache needs no lock.
func (m *master) pollOnce(ctx context.Context) error {
	snap, err := poll(ctx, m.jc, &m.legacy, m.log)
	m.metrics.polls.WithLabelValues(m.cfg.Name).Inc()
	if ctx.Err() == nil {
		m.health.polled(err, time.Now())
		if err != nil {
			m.metrics.pollErrors.WithLabelValues(m.cfg.Name, pollErrorReason(err)).Inc()
		}
	}
	if err == nil && !m.isDraining() {
		m.scanRunning(ctx, snap)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		for _, g := range m.gates {
			g.update(true, nil)
		}
		return err
	}
	m.snap = snap
	m.preparePinning(snap)
	m.apply(ctx, snap)
	return nil
}

// apply makes the workers match the snapshot: one per executor of every
// node (and Gearman server), each registering its node's functions.
func (m *master) apply(ctx context.Context, snap *snapshot) {
	want := map[string]bool{}
	m.checkOffline(snap)
	for _, n := range snap.nodes {
		g := m.gates[n.name]
		if g == nil {
			g = newGate()
			m.gates[n.name] = g
		}
		g.setOfflinePending(m.offlinePending(n.name))
		g.update(snap.quietingDown, n)
		fns := snap.functions(n)
		for i := 0; i < n.executors; i++ {
			id := m.workerID(n, i)
			for _, server := range m.servers {
				key := server + "\x00" + id
				want[key] = true
				w := m.workers[key]
				if w == nil && m.draining {
					continue
				}
				if w == nil {
					w = newWorker(m, server, n.name, id, g)
					m.workers[key] = w
					m.wg.Add(1)
					go func() {
						defer m.wg.Done()
						w.run(ctx)
					}()
				}
				w.setFunctions(fns)
			}
		}
	}
	for key, w := range m.workers {
		if !want[key] {
			// Node deleted or fewer executors: the worker leaves after
			// the build it may be running.
			w.retire()
			delete(m.workers, key)
		}
	}
	for name, g := range m.gates {
		if _, ok := snap.nodes[name]; !ok {
			g.update(true, nil)
			delete(m.gates, name)
		}
	}
	if !m.draining { // the master's successor, if any, reports its own
		m.metrics.workers.WithLabelValues(m.cfg.Name).Set(float64(len(m.workers)))
	}
}

func (m *master) isDraining() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.draining
}

// stop makes run retire the master: no new jobs, the builds in flight
// run to their end, then run returns.
func (m *master) stop() { m.quitOnce.Do(func() { close(m.quit) }) }

// workerID is the plugin's <node>_exec-<i>; the built-in node goes by the
// master's name, as the plugin used the master's host name.
func (m *master) workerID(n *nodeInfo, i int) string {
	name := n.name
	if name == "" {
		name = m.cfg.Name
	}
	return name + "_exec-" + strconv.Itoa(i)
}

// pinName is the value of the node parameter that pins a build to node.
func (m *master) pinName(node string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if node != "" || m.snap == nil {
		return node
	}
	if n := m.snap.nodes[node]; n != nil {
		return n.selfLabel // "master" or "built-in"
	}
	return node
}

func (m *master) node(name string) *nodeInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap == nil {
		return nil
	}
	return m.snap.nodes[name]
}

func (m *master) gateFor(node string) *gate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gates[node]
}

func (m *master) projectByName(name string) *project {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap == nil {
		return nil
	}
	return m.snap.projects[name]
}

func (m *master) projectByFullName(name string) *project {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap == nil {
		return nil
	}
	return m.snap.byFullName[name]
}

// lookupProject finds a project by the name Zuul knows: the short name
// from WORK_DATA, or a full name with folders.
func (m *master) lookupProject(name string) *project {
	if p := m.projectByName(name); p != nil {
		return p
	}
	if p := m.projectByFullName(name); p != nil {
		return p
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.running {
		if p.name == name || p.fullName == name {
			return p
		}
	}
	return nil
}

func (m *master) track(p *project, url string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running[url] = p
}

func (m *master) untrack(url string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.running, url)
	delete(m.stopped, url)
}

func (m *master) markStopped(url string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped[url] = true
}

func (m *master) stoppedByUs(url string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped[url]
}

// takeOffline marks a node temporarily offline. changeOfflineCause always
// sets the state (toggleOffline would flip it back if it was offline).
func (m *master) takeOffline(ctx context.Context, node string) error {
	path := "computer/" + url.PathEscape(node) + "/"
	if node == "" {
		path = "computer/(master)/" // still accepted after the built-in rename
	}
	_, err := m.jc.post(ctx, path+"changeOfflineCause", url.Values{"offlineMessage": {"Offline due to Gearman request (OFFLINE_NODE_WHEN_COMPLETE)"}}, nil)
	return err
}

// refKey is the store key of a job's build reference: its handle on the
// embedded server. Jobs from other servers are not in our store, so their
// builds are not recorded ("" key) and cannot be re-attached after a restart.
func (m *master) refKey(server, handle string) string {
	if server != m.bridge.embedded || m.bridge.refs == nil {
		return ""
	}
	return handle
}

func (m *master) loadRef(key string) (buildRef, bool) {
	if key == "" {
		return buildRef{}, false
	}
	data, ok, err := m.bridge.refs.BuildRef(key)
	if err != nil {
		m.log.Error("cannot read the job's build reference", "key", key, "err", err)
		return buildRef{}, false
	}
	var ref buildRef
	if !ok || len(data) == 0 || json.Unmarshal(data, &ref) != nil || ref.QueueID == 0 {
		return buildRef{}, false
	}
	return ref, true
}

func (m *master) saveRef(key string, ref buildRef) {
	if key == "" {
		return
	}
	data, _ := json.Marshal(ref)
	if err := m.bridge.refs.SetBuildRef(key, data); err != nil {
		m.log.Error("cannot record the job's build; a restart now would start it again", "key", key, "err", err)
	}
}

func (m *master) forgetRef(key string) {
	if key == "" {
		return
	}
	if err := m.bridge.refs.SetBuildRef(key, nil); err != nil {
		m.log.Warn("cannot delete the job's build reference", "key", key, "err", err)
	}
}
