package jenkinstest

import (
	"crypto/md5"
	"encoding/binary"
	"math"
	"sort"
	"strconv"
	"sync"
)

// Jenkins' default LoadBalancer.CONSISTENT_HASH places a build by hashing
// the task's affinity key (the job's full name) onto a ring of the nodes
// that can take it, each with 100 points per executor, and walking the
// ring from there to the first node with an idle executor. So an unpinned
// build of a job keeps landing on the same node, whichever node's
// executor the bridge counted on; tests rely on that to see a missing pin.

func ringHash(s string) uint64 {
	sum := md5.Sum([]byte(s))
	return binary.BigEndian.Uint64(sum[:8])
}

// ringPoints caches each node's points by name and executor count; the
// points of a node never change otherwise.
var ringPoints sync.Map // "name\x00executors" -> []uint64

func pointsOf(n *node) []uint64 {
	k := n.name + "\x00" + strconv.Itoa(n.numExecutors)
	if v, ok := ringPoints.Load(k); ok {
		return v.([]uint64)
	}
	pts := make([]uint64, 100*max(1, n.numExecutors))
	for i := range pts {
		pts[i] = ringHash(n.name + "#" + strconv.Itoa(i))
	}
	ringPoints.Store(k, pts)
	return pts
}

// hashOrder returns the candidate nodes in the order the consistent hash
// tries them for key: walking the ring from key's place, a node comes when
// its first point does, so nodes sort by their nearest point clockwise.
func hashOrder(key string, candidates []*node) []*node {
	h := ringHash(key)
	type near struct {
		n    *node
		dist uint64
	}
	order := make([]near, 0, len(candidates))
	for _, n := range candidates {
		best := uint64(math.MaxUint64)
		for _, p := range pointsOf(n) {
			best = min(best, p-h) // wraps around the ring
		}
		order = append(order, near{n, best})
	}
	sort.SliceStable(order, func(a, b int) bool { return order[a].dist < order[b].dist })
	out := make([]*node, len(order))
	for i, x := range order {
		out[i] = x.n
	}
	return out
}

// PlacementOrder returns the nodes (by name, "" for the built-in node) in
// the order the emulator's load balancer tries them for an unpinned build
// of the job, among the nodes that can take the job's label now or later:
// a test picks job and node names with it so that a build the bridge fails
// to pin lands somewhere else.
func (e *Emulator) PlacementOrder(fullName string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, err := e.jobLocked(fullName)
	if err != nil {
		return nil, err
	}
	var candidates []*node
	for _, n := range e.nodeOrder {
		if n.numExecutors > 0 && e.canTake(n, j.label) {
			candidates = append(candidates, n)
		}
	}
	var out []string
	for _, n := range hashOrder(j.fullName(), candidates) {
		out = append(out, n.name)
	}
	return out, nil
}
