package jenkinstest

import (
	"fmt"
	"sort"
	"strings"
)

// Mode is a node's usage mode.
type Mode string

const (
	// Normal nodes take any job whose label they match, and unlabeled jobs.
	Normal Mode = "NORMAL"
	// Exclusive nodes take only jobs whose label expression they match.
	Exclusive Mode = "EXCLUSIVE"
)

// NodeSpec describes an agent.
type NodeSpec struct {
	Name        string
	Labels      []string // assigned labels; the self label is implicit
	Executors   int      // default 1
	Mode        Mode     // default Normal
	Description string
	// Disconnected adds the agent without a live channel (never connected).
	Disconnected bool
}

type node struct {
	name         string // "" for the built-in node
	description  string
	labels       []string
	labelSet     map[string]bool // labels plus the self label
	mode         Mode
	numExecutors int
	slots        []*build // one per executor; nil when idle
	oneOff       []*build // flyweight runs (built-in node only); nil when ended
	connected    bool
	tempOffline  bool
	offlineMsg   string
}

func (n *node) online() bool { return n.connected && !n.tempOffline }

func (n *node) idleSlot() int {
	for i := 0; i < n.numExecutors && i < len(n.slots); i++ {
		if n.slots[i] == nil {
			return i
		}
	}
	return -1
}

func (n *node) busy() int {
	c := 0
	for _, b := range n.slots {
		if b != nil {
			c++
		}
	}
	return c
}

// resize grows or shrinks the executor slots; busy slots beyond the new
// count stay until their build ends.
func (n *node) resize(k int) {
	n.numExecutors = k
	for len(n.slots) < k {
		n.slots = append(n.slots, nil)
	}
	for len(n.slots) > k && n.slots[len(n.slots)-1] == nil {
		n.slots = n.slots[:len(n.slots)-1]
	}
}

func (e *Emulator) selfLabel(n *node) string {
	if n.name == "" {
		return e.prof.builtInSelfLabel
	}
	return n.name
}

func (e *Emulator) setLabels(n *node, labels []string) {
	n.labels = nil
	n.labelSet = map[string]bool{e.selfLabel(n): true}
	for _, l := range labels {
		for _, f := range strings.Fields(l) {
			if !n.labelSet[f] {
				n.labels = append(n.labels, f)
				n.labelSet[f] = true
			}
		}
	}
}

// assignedLabels lists a node's labels as Jenkins does: assigned labels,
// then the self label.
func (e *Emulator) assignedLabels(n *node) []string {
	return append(append([]string(nil), n.labels...), e.selfLabel(n))
}

func (e *Emulator) sortNodes() {
	e.nodeOrder = e.nodeOrder[:0]
	for _, n := range e.nodes {
		e.nodeOrder = append(e.nodeOrder, n)
	}
	sort.Slice(e.nodeOrder, func(i, j int) bool { return e.nodeOrder[i].name < e.nodeOrder[j].name })
}

// AddNode adds (or replaces the configuration of) an agent. It is online
// unless spec.Disconnected is set.
func (e *Emulator) AddNode(spec NodeSpec) error {
	if spec.Name == "" || strings.ContainsAny(spec.Name, "/\\?*%!@#$^&|<>[]:;") {
		return fmt.Errorf("jenkinstest: bad node name %q", spec.Name)
	}
	if spec.Executors == 0 {
		spec.Executors = 1
	}
	if spec.Mode == "" {
		spec.Mode = Normal
	}
	if spec.Mode != Normal && spec.Mode != Exclusive {
		return fmt.Errorf("jenkinstest: node %q: mode %q is neither NORMAL nor EXCLUSIVE", spec.Name, spec.Mode)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n, ok := e.nodes[spec.Name]
	if !ok {
		n = &node{name: spec.Name, connected: !spec.Disconnected}
		e.nodes[spec.Name] = n
		e.sortNodes()
	}
	n.description = spec.Description
	n.mode = spec.Mode
	e.setLabels(n, spec.Labels)
	n.resize(spec.Executors)
	e.maintainNow()
	return nil
}

// ConfigureBuiltIn sets the built-in node's executors, mode and labels. It
// starts with 0 executors, so unlabeled jobs run only on agents.
func (e *Emulator) ConfigureBuiltIn(executors int, mode Mode, labels ...string) {
	if mode == "" {
		mode = Normal
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.nodes[""]
	n.mode = mode
	e.setLabels(n, labels)
	n.resize(executors)
	e.maintainNow()
}

func (e *Emulator) nodeLocked(name string) (*node, error) {
	n, ok := e.nodes[name]
	if !ok {
		return nil, fmt.Errorf("jenkinstest: no node %q", name)
	}
	return n, nil
}

// RemoveNode deletes an agent; builds running on it end ABORTED.
func (e *Emulator) RemoveNode(name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, err := e.nodeLocked(name)
	if err != nil || name == "" {
		return fmt.Errorf("jenkinstest: cannot remove node %q", name)
	}
	for _, b := range n.slots {
		if b != nil {
			e.finishLocked(b, ResultAborted)
		}
	}
	delete(e.nodes, name)
	e.sortNodes()
	e.maintainNow()
	return nil
}

// updateNode applies change to the named node under the lock, then lets
// the queue react.
func (e *Emulator) updateNode(name string, change func(n *node)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, err := e.nodeLocked(name)
	if err != nil {
		return err
	}
	change(n)
	e.maintainNow()
	return nil
}

// SetNodeConnected connects or disconnects an agent. Builds running on an
// agent that disconnects end FAILURE; its executors stay listed as idle.
func (e *Emulator) SetNodeConnected(name string, connected bool) error {
	return e.updateNode(name, func(n *node) {
		n.connected = connected
		if !connected {
			for _, b := range n.slots {
				if b != nil {
					e.finishLocked(b, ResultFailure)
				}
			}
		}
	})
}

// SetNodeOffline marks a node temporarily offline (or back online) with a
// message, like changeOfflineCause / toggleOffline. Running builds go on.
func (e *Emulator) SetNodeOffline(name string, offline bool, message string) error {
	return e.updateNode(name, func(n *node) { n.tempOffline, n.offlineMsg = offline, message })
}

// SetNodeLabels replaces a node's assigned labels.
func (e *Emulator) SetNodeLabels(name string, labels ...string) error {
	return e.updateNode(name, func(n *node) { e.setLabels(n, labels) })
}

// SetNodeMode sets NORMAL or EXCLUSIVE.
func (e *Emulator) SetNodeMode(name string, mode Mode) error {
	return e.updateNode(name, func(n *node) { n.mode = mode })
}

// SetNodeExecutors changes a node's executor count.
func (e *Emulator) SetNodeExecutors(name string, executors int) error {
	return e.updateNode(name, func(n *node) { n.resize(executors) })
}

// SetQuietingDown turns "prepare for shutdown" on or off: queued items
// stay queued, nothing new starts.
func (e *Emulator) SetQuietingDown(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.quieting = on
	e.maintainNow()
}

// NodeStatus is a snapshot of a node for assertions.
type NodeStatus struct {
	Name               string // "" for the built-in node
	Labels             []string
	Mode               Mode
	Executors          int
	Busy               int
	Connected          bool
	TemporarilyOffline bool
	OfflineMessage     string
}

// Nodes returns all nodes, built-in first.
func (e *Emulator) Nodes() []NodeStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []NodeStatus
	for _, n := range e.nodeOrder {
		out = append(out, NodeStatus{
			Name: n.name, Labels: append([]string(nil), n.labels...), Mode: n.mode,
			Executors: n.numExecutors, Busy: n.busy(), Connected: n.connected,
			TemporarilyOffline: n.tempOffline, OfflineMessage: n.offlineMsg,
		})
	}
	return out
}
