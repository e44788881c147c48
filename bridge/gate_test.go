package bridge

import (
	"testing"
)

func node(idle int, busy ...string) *nodeInfo {
	n := &nodeInfo{online: true, idle: idle, busyURLs: map[string]bool{}}
	for _, u := range busy {
		n.busyURLs[u] = true
	}
	return n
}

func TestGateCountsReservationsAndClaimsAgainstThePoll(t *testing.T) {
	g := newGate()
	if g.tryReserve() {
		t.Fatal("a gate opens only with a poll")
	}
	g.update(false, node(2))
	if !g.tryReserve() || !g.tryReserve() || g.tryReserve() {
		t.Fatal("two idle executors give exactly two reservations")
	}
	g.release()
	c := g.startBuild() // the other reservation took a job
	if !g.tryReserve() || g.tryReserve() {
		t.Fatal("one executor left")
	}
	g.release()

	// The next poll shows the build busy on one executor: still one free.
	g.started(c, "http://j/job/x/1/")
	g.update(false, node(1, "http://j/job/x/1/"))
	if got := g.free(); got != 1 {
		t.Fatalf("free = %d, want 1", got)
	}
	// It ends: its executor is free at once, before any poll.
	g.finished(c)
	if got := g.free(); got != 2 {
		t.Fatalf("free after the build = %d, want 2", got)
	}
	// The next poll no longer shows it; nothing is counted twice.
	g.update(false, node(2))
	if got := g.free(); got != 2 || len(g.builds) != 0 {
		t.Fatalf("free = %d with %d claims", got, len(g.builds))
	}
}

func TestGateClosesForOfflineQuietingAndHeldNodes(t *testing.T) {
	g := newGate()
	g.update(true, node(3)) // quieting down or unreachable
	if g.free() > 0 {
		t.Fatal("blocked gate is open")
	}
	off := node(3)
	off.online = false
	g.update(false, off)
	if g.free() > 0 {
		t.Fatal("offline node is open")
	}
	g.update(false, node(3))
	if !g.tryReserve() {
		t.Fatal("gate should be open")
	}
	c := g.startBuild()
	g.holdFirst(c)
	if g.free() > 0 {
		t.Fatal("a node held for OFFLINE_NODE_WHEN_COMPLETE takes nothing else")
	}
	g.finished(c)
	g.setOfflinePending(true) // being taken offline: closed whatever the polls say
	g.update(false, node(3))
	if g.free() > 0 {
		t.Fatal("a poll reopened a node we are taking offline")
	}
	g.setOfflinePending(false)
	if g.free() != 3 {
		t.Fatalf("free = %d once the node's offline duty ended", g.free())
	}
}

func TestGateNoGrabBeyondFreeExecutorsWhenJenkinsTakesOne(t *testing.T) {
	g := newGate()
	g.update(false, node(2))
	g.tryReserve()
	g.tryReserve()
	g.update(false, node(1)) // Jenkins started a build of its own
	if g.free() >= 0 {
		t.Fatalf("free = %d with two GRABs out for one executor", g.free())
	}
	g.release() // one GRAB got NO_JOB
	if g.tryReserve() {
		t.Fatal("a second GRAB for the one executor that the other GRAB counts on")
	}
	g.release()
	if !g.tryReserve() {
		t.Fatal("the executor is free again once no GRAB is out")
	}
}

func TestGateChangedIsClosedOnRelease(t *testing.T) {
	g := newGate()
	ch := g.Changed()
	g.update(false, node(1))
	select {
	case <-ch:
	default:
		t.Fatal("a poll did not signal")
	}
	ch = g.Changed()
	g.tryReserve()
	g.release()
	select {
	case <-ch:
	default:
		t.Fatal("a release did not signal")
	}
}
