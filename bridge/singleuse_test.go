package bridge

import (
	"log/slog"
	"testing"
	"time"
)

func TestGateClosedWhileOfflinePending(t *testing.T) {
	g := newGate()
	g.update(false, node(2))
	g.setOfflinePending(true)
	if g.tryReserve() {
		t.Fatal("a node waiting to be taken offline took a reservation")
	}
	ch := g.Changed()
	g.setOfflinePending(false)
	select {
	case <-ch:
	default:
		t.Fatal("clearing the pending offline did not signal")
	}
	if !g.tryReserve() {
		t.Fatal("gate should be open again")
	}
}

// A duty ends only with a poll that began after an accepted request and
// shows the node temporarily offline (or no longer shows the node).
func TestCheckOfflineNeedsAPollAfterTheRequest(t *testing.T) {
	m := &master{log: slog.New(slog.DiscardHandler), offline: map[string]*offlineDuty{}}
	d := &offlineDuty{node: "n", wake: make(chan struct{}, 1), done: make(chan struct{})}
	m.offline["n"] = d
	off := node(0)
	off.online, off.tempOffline = false, true
	snap := func(began time.Time, n *nodeInfo) *snapshot {
		s := &snapshot{began: began, nodes: map[string]*nodeInfo{}}
		if n != nil {
			s.nodes["n"] = n
		}
		return s
	}

	m.checkOffline(snap(time.Now(), off)) // no request accepted yet
	if !m.offlinePending("n") {
		t.Fatal("done before any request was accepted")
	}
	d.posted = time.Now()
	m.checkOffline(snap(d.posted.Add(-time.Millisecond), off))
	if !m.offlinePending("n") {
		t.Fatal("a poll older than the request ended the duty")
	}
	m.checkOffline(snap(d.posted.Add(time.Millisecond), node(1)))
	if !m.offlinePending("n") || !d.posted.IsZero() {
		t.Fatal("a node still online after the request must be asked again")
	}
	d.posted = time.Now()
	m.checkOffline(snap(d.posted.Add(time.Millisecond), off))
	if m.offlinePending("n") {
		t.Fatal("the node shows offline: the duty is done")
	}
	select {
	case <-d.done:
	default:
		t.Fatal("done not closed")
	}

	gone := &offlineDuty{node: "n", wake: make(chan struct{}, 1), done: make(chan struct{})}
	m.offline["n"] = gone
	m.checkOffline(snap(time.Now(), nil))
	if m.offlinePending("n") {
		t.Fatal("a deleted node has nothing left to take offline")
	}
}

// Two jobs grabbed at once on one node: only the first single-use one
// keeps it, and it waits for the other builds to start.
func TestGateSingleUseOrder(t *testing.T) {
	g := newGate()
	g.update(false, node(3))
	g.tryReserve()
	g.tryReserve()
	g.tryReserve()
	other, a, b := g.startBuild(), g.startBuild(), g.startBuild()
	if g.heldByOther(other) {
		t.Fatal("nothing holds the node yet")
	}
	if !g.holdFirst(a) || g.holdFirst(b) {
		t.Fatal("the first single-use job holds the node, the second does not")
	}
	if !g.heldByOther(other) {
		t.Fatal("an ordinary job must see the hold")
	}
	if !g.othersUnstarted(a) {
		t.Fatal("other has not started")
	}
	g.finished(b)
	g.started(other, "http://j/job/x/1/")
	if g.othersUnstarted(a) {
		t.Fatal("everything else started or ended")
	}
}
