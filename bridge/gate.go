package bridge

import (
	"sync"
)

// gate decides when the executor workers of one node may ask the Gearman
// server for a job: only while the node has an executor that is idle in
// Jenkins and that none of our workers is already counting on. A worker
// holds a reservation only while its GRAB is outstanding: from the GRAB
// until NO_JOB comes back, or until the job it got ends. Workers asleep
// after NO_JOB hold none, so that with several job servers the node's
// workers on one server never keep its executors from those on another,
// and there are never more GRABs out than free executors. A woken worker
// that finds no slot waits on Changed and grabs when one frees.
type gate struct {
	mu sync.Mutex
	// changed is closed and replaced whenever the count may have grown.
	changed chan struct{}

	blocked  bool // node offline, master unreachable or quieting down
	pollIdle int  // idle executors in the last poll
	busyURLs map[string]bool
	reserved int             // workers with a GRAB outstanding
	builds   map[*claim]bool // our builds that involve this node

	// offlinePending: a single-use build ran here and the node is not yet
	// seen offline; closed to every worker until it is (singleuse.go).
	offlinePending bool
}

// claim is one of our builds as the gate counts it.
type claim struct {
	url      string // the build's URL once it started, "" before
	finished bool
	holdNode bool // OFFLINE_NODE_WHEN_COMPLETE: nothing else runs here
	// flyweight: a Pipeline run, which takes no executor in Jenkins.
	flyweight bool
}

func newGate() *gate {
	return &gate{changed: make(chan struct{}), busyURLs: map[string]bool{}, builds: map[*claim]bool{}, blocked: true}
}

// free is the number of executors a new GRAB may count on. It may be
// negative when Jenkins took executors our outstanding GRABs counted on.
func (g *gate) free() int {
	if g.blocked || g.offlinePending {
		return -g.reserved
	}
	n := g.pollIdle - g.reserved
	for c := range g.builds {
		if c.flyweight {
			continue
		}
		if c.holdNode && !c.finished {
			return -1 - g.reserved
		}
		reflected := c.url != "" && g.busyURLs[c.url]
		switch {
		case !c.finished && !reflected:
			n-- // started after the poll, or not yet: Jenkins counted it idle
		case c.finished && reflected:
			n++ // the poll counted it busy; it has ended since
		}
	}
	return n
}

// Changed returns a channel that is closed when the gate may have opened.
func (g *gate) Changed() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed
}

func (g *gate) notify() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// tryReserve takes a slot if one is free.
func (g *gate) tryReserve() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.free() <= 0 {
		return false
	}
	g.reserved++
	return true
}

// release gives a reservation back (NO_JOB after all, or a disconnect).
func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reserved--
	g.notify()
}

// startBuild turns a reservation into a claim for a build.
func (g *gate) startBuild() *claim {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reserved--
	c := &claim{}
	g.builds[c] = true
	return c
}

// adopt makes this gate count a claim that started on another gate (the
// build ran on a different node than the worker's).
func (g *gate) adopt(c *claim) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.builds[c] = true
}

// drop stops counting c here (it moved to another node's gate).
func (g *gate) drop(c *claim) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.builds, c)
	g.notify()
}

// started records the build URL, so that polls can see it.
func (g *gate) started(c *claim, url string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.url = url
}

// finished marks the build over: its executor counts as free at once.
func (g *gate) finished(c *claim) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.finished = true
	g.notify()
}

// update applies a poll (or the master becoming unreachable: blocked). A
// node being taken offline stays closed through offlinePending, until a
// poll that began after the request shows it offline (singleuse.go).
func (g *gate) update(blocked bool, n *nodeInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked = blocked || n == nil || !n.online
	if n != nil && !blocked {
		g.pollIdle = n.idle
		g.busyURLs = n.busyURLs
		// Finished builds the poll no longer shows are fully accounted.
		for c := range g.builds {
			if c.finished && !g.busyURLs[c.url] {
				delete(g.builds, c)
			}
		}
	}
	g.notify()
}
