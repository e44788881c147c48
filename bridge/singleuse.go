package bridge

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// scanParallel is how many running builds scanRunning reads at once.
const scanParallel = 8

// Single-use nodes (OFFLINE_NODE_WHEN_COMPLETE). The plugin held its node
// lock for the whole build and took the node offline in a finally, so no
// other build ever started there. Over REST the bridge cannot block
// Jenkins' own queue; instead it takes the node temporarily offline as
// soon as it sees the build start there (a temporarily offline node
// finishes its running build and starts no new one), and keeps the node's
// gate closed to every worker until a poll shows the node offline. The
// duty outlives the job: a refused or failed request is retried until it
// takes, and only a poll that began after a successful request and shows
// the node temporarily offline ends it. An operator who later brings the
// node back online opens its gate again: the promise is kept by the node
// being offline, not by the bridge refusing it forever.

// offlineDuty is one node that must be taken offline.
type offlineDuty struct {
	node string
	// posted is when a request was last accepted (zero: send one). Guarded
	// by master.mu, like the master's offline map.
	posted time.Time
	// wake is signalled when a poll has looked at the duty.
	wake chan struct{}
	done chan struct{} // closed when the node was seen offline (or deleted)
}

// setOfflinePending opens or closes the gate for a pending offline duty.
func (g *gate) setOfflinePending(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.offlinePending == on {
		return
	}
	g.offlinePending = on
	g.notify()
}

// requireOffline closes node's gate at once and makes sure the node is
// taken temporarily offline, retrying until a poll shows it offline. It
// returns without waiting; calling it again for a node with a duty
// already pending asks for another request (the plugin's finally, for a
// node an operator brought back during the build).
func (m *master) requireOffline(ctx context.Context, node, why string) {
	if ctx.Err() != nil {
		return // shutting down: the job's build ref makes the next start do it
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.gates[node]; g != nil {
		g.setOfflinePending(true)
	}
	if d := m.offline[node]; d != nil {
		d.posted = time.Time{}
		signal(d.wake)
		return
	}
	d := &offlineDuty{node: node, wake: make(chan struct{}, 1), done: make(chan struct{})}
	m.offline[node] = d
	m.log.Info("taking the node offline: a single-use build (OFFLINE_NODE_WHEN_COMPLETE) ran there; it takes no other job until Jenkins shows it offline", "node", node, "why", why)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.enforceOffline(ctx, d)
	}()
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// enforceOffline sends the offline request until it is accepted and a
// later poll shows the node offline.
func (m *master) enforceOffline(ctx context.Context, d *offlineDuty) {
	bo := backoff{max: max(m.pollInterval(), time.Second)}
	var lastLog time.Time
	lastStatus := -1
	for {
		m.mu.Lock()
		post := d.posted.IsZero()
		m.mu.Unlock()
		if post {
			err := m.takeOffline(ctx, d.node)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				// Log the first failure and then once a minute or when the
				// answer changes, not every retry.
				if s := statusOf(err); s != lastStatus || time.Since(lastLog) > time.Minute {
					m.logOfflineFailure(d.node, err)
					lastStatus, lastLog = s, time.Now()
				}
				if sleepCtx(ctx, bo.next()) != nil {
					return
				}
				continue
			}
			if lastStatus != -1 {
				m.log.Info("Jenkins accepted the request to take the node offline", "node", d.node)
			}
			bo.reset()
			m.mu.Lock()
			d.posted = time.Now()
			m.mu.Unlock()
			signal(m.pollNow) // confirm soon
		}
		select {
		case <-d.done:
			return
		case <-d.wake:
		case <-ctx.Done():
			return
		}
	}
}

func (m *master) logOfflineFailure(node string, err error) {
	switch s := statusOf(err); {
	case s == http.StatusForbidden:
		m.log.Error("Jenkins refused to take a single-use node offline (HTTP 403): the user needs Agent/Disconnect (Computer/Disconnect); retrying. The node stays closed to Gearman jobs, but Jenkins may start its own builds there", "node", node, "err", err)
	case s != 0:
		m.log.Error("could not take a single-use node offline; retrying. The node stays closed to Gearman jobs, but Jenkins may start its own builds there", "node", node, "status", s, "err", err)
	default:
		m.log.Warn("could not take a single-use node offline: Jenkins master unreachable; retrying, and the node stays closed until Jenkins shows it offline", "node", node, "err", err)
	}
}

// checkOffline looks at the pending duties in a fresh snapshot: a node
// that shows temporarily offline in a poll that began after our request
// was accepted is done; one still online needs another request. Called
// with m.mu held, before the gates are updated.
func (m *master) checkOffline(snap *snapshot) {
	for name, d := range m.offline {
		n := snap.nodes[name]
		switch {
		case n == nil:
			m.log.Info("the single-use node was deleted; nothing can start on it", "node", name)
		case d.posted.IsZero() || !snap.began.After(d.posted):
			continue // no request yet, or the poll may predate it
		case n.tempOffline:
			m.log.Info("the single-use node is offline", "node", name)
		default:
			m.log.Warn("the single-use node is still online after Jenkins accepted the request to take it offline; asking again", "node", name)
			d.posted = time.Time{}
			signal(d.wake)
			continue
		}
		delete(m.offline, name)
		close(d.done)
	}
}

// offlinePending reports whether node still has to be taken offline.
// Called with m.mu held.
func (m *master) offlinePending(node string) bool {
	return m.offline[node] != nil || m.closedForScan(node)
}

// singleUseNode is the node a single-use job must take offline when it
// ends: the one its build was seen on, or, when the build was never seen
// to start, the worker's node, which the build was for (fail closed). ok
// is false for a re-attached job whose build was never seen: the worker
// that re-attached may be on any node (the start-up scan covers a build
// that was running then).
func (r *buildRun) singleUseNode() (node string, ok bool) {
	if r.ref.Node != nil {
		return *r.ref.Node, true
	}
	if !r.fresh {
		return "", false // re-attached to a build whose node we never saw
	}
	return r.w.node, true
}

// ranOn records the node the build runs on and, for a single-use job,
// takes it offline now: a build waiting in Jenkins' queue for that node
// must not start there when ours ends.
func (r *buildRun) ranOn(ctx context.Context, builtOn string) {
	if r.ref.Node == nil || *r.ref.Node != builtOn {
		r.ref.Node = &builtOn
		r.m.saveRef(r.refKey, r.ref)
	}
	if r.hold {
		r.m.requireOffline(ctx, builtOn, "build "+r.ref.URL+" started")
	}
	r.claimGate.poke() // a single-use job may wait for this start
}

// endSingleUse takes the node of a single-use job offline once more when
// the job ends, on every path on which a build may have run (the plugin's
// finally), unless the bridge is shutting down: then the build goes on and
// the next start re-attaches.
func (r *buildRun) endSingleUse(ctx context.Context) {
	if !r.hold || ctx.Err() != nil {
		return
	}
	if r.ref.QueueID == 0 && !r.triggerLost {
		// Jenkins refused the trigger (or it was never sent): no build ran,
		// the node is still clean. Taking it offline would let one broken
		// job drain the pool as Zuul retries it.
		return
	}
	node, ok := r.singleUseNode()
	if !ok {
		r.w.log.Error("a single-use job ended but the node its build ran on is unknown; take it offline by hand", "handle", r.job.handle, "master", r.m.cfg.Name, "build", r.ref.URL)
		return
	}
	r.m.requireOffline(ctx, node, "job "+r.job.handle+" ended")
}

// scanRunning looks, after a start, at the builds that run on the
// master's nodes: a single-use build among them (a job whose bridge was
// restarted, or one from a job server whose jobs cannot be re-attached)
// has its node taken offline now, as if it had just started. Until a
// node's builds are checked, its gate stays closed (offlinePending). It
// runs in the polling goroutine, before the snapshot is applied.
func (m *master) scanRunning(ctx context.Context, snap *snapshot) {
	if m.scanned {
		return
	}
	if m.unscanned == nil {
		m.unscanned = map[string]*unscannedBuild{}
		for _, n := range snap.nodes {
			for u := range n.busyURLs {
				m.unscanned[u] = &unscannedBuild{node: n.name}
			}
		}
	}
	// A few requests at a time: a big master may run hundreds of builds,
	// and no worker starts before the first scan.
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  = make(chan struct{}, scanParallel)
		done []string
	)
	for u, b := range m.unscanned {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			single, err := m.singleUseBuild(ctx, u)
			switch {
			case err != nil && !isNotFound(err):
				if !b.warned {
					m.log.Error("cannot read the parameters of a build that was running when the bridge started; its node stays closed to Gearman jobs until they are read (it may be single-use)", "build", u, "node", b.node, "err", err)
					b.warned = true
				}
				return
			case single:
				m.requireOffline(ctx, b.node, "build "+u+" was running when the bridge started")
			}
			mu.Lock()
			done = append(done, u)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, u := range done {
		delete(m.unscanned, u)
	}
	if len(m.unscanned) == 0 {
		m.scanned, m.unscanned = true, nil
	}
}

// singleUseBuild reports whether the build at buildURL has a true
// OFFLINE_NODE_WHEN_COMPLETE parameter.
func (m *master) singleUseBuild(ctx context.Context, buildURL string) (bool, error) {
	u, err := url.Parse(buildURL)
	if err != nil {
		return false, fmt.Errorf("build URL %q: %w", buildURL, err)
	}
	// Jenkins' root URL may name another host than the bridge's URL: use
	// the path below the master's base.
	path := strings.TrimPrefix(u.Path, m.jc.base.Path)
	path = strings.TrimPrefix(path, "/")
	var b struct {
		Actions []parametersJSON `json:"actions"`
	}
	if err := m.jc.getJSON(ctx, path, "actions[parameters[name,value]]", &b); err != nil {
		return false, err
	}
	for _, a := range b.Actions {
		for _, p := range a.Parameters {
			if p.Name != "OFFLINE_NODE_WHEN_COMPLETE" {
				continue
			}
			switch v := p.Value.(type) {
			case string:
				return singleUseValue(v), nil
			case bool:
				return v, nil
			}
		}
	}
	return false, nil
}

// closedForScan reports whether node runs a build not yet scanned.
// Called from the polling goroutine.
func (m *master) closedForScan(node string) bool {
	for _, b := range m.unscanned {
		if b.node == node {
			return true
		}
	}
	return false
}

// unscannedBuild is a build running at start whose parameters were not
// read yet.
type unscannedBuild struct {
	node   string
	warned bool // its read failed, and that was logged
}

// holdFirst makes c keep the whole node (OFFLINE_NODE_WHEN_COMPLETE) and
// reports whether no other single-use job held it already.
func (g *gate) holdFirst(c *claim) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	first := true
	for o := range g.builds {
		if o != c && o.holdNode && !o.finished {
			first = false
		}
	}
	c.holdNode = true
	return first
}

// heldByOther reports whether a single-use job other than c holds the node.
func (g *gate) heldByOther(c *claim) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for o := range g.builds {
		if o != c && o.holdNode && !o.finished {
			return true
		}
	}
	return false
}

// othersUnstarted reports whether another of our jobs on this node has
// not seen its build start yet.
func (g *gate) othersUnstarted(c *claim) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for o := range g.builds {
		if o != c && o.url == "" && !o.finished {
			return true
		}
	}
	return false
}

// poke wakes whoever waits on the gate (a build started).
func (g *gate) poke() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notify()
}

// singleUseValue reports whether an OFFLINE_NODE_WHEN_COMPLETE value asks
// for a single-use node, with the plugin's spellings.
func singleUseValue(v string) bool {
	switch v {
	case "1", "true", "True", "TRUE":
		return true
	}
	return false
}

// singleUseTurn keeps the plugin's order on a node with several
// executors. The plugin grabbed for one executor of a node at a time and
// let the next grab happen only once the build had started, so no build
// started on a node after a single-use one. Here several executors of a
// node may grab at once, so before its trigger a single-use job waits
// until our other jobs on the node have seen their builds start, and a job
// that finds the node held by a single-use job grabbed at the same time
// ends with WORK_EXCEPTION instead (Zuul runs it again, elsewhere).
func (r *buildRun) singleUseTurn(ctx context.Context) error {
	g := r.claimGate
	if !r.hold && g.heldByOther(r.claim) || r.hold && !r.firstHold {
		return failf("node %q is reserved for a single-use build (OFFLINE_NODE_WHEN_COMPLETE) grabbed at the same time", r.w.node)
	}
	if !r.hold {
		return nil
	}
	for {
		changed := g.Changed()
		if !g.othersUnstarted(r.claim) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
