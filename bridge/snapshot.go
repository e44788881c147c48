package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gearbridge/gearbridge/bridge/label"
)

// snapshot is what one poll learned about a master.
type snapshot struct {
	began        time.Time // when the poll's first request was sent
	quietingDown bool
	nodes        map[string]*nodeInfo // by node name; "" is the built-in node
	projects     map[string]*project  // by function name part (short name)
	byFullName   map[string]*project
}

// nodeInfo is one node (agent or built-in) as Jenkins reports it.
type nodeInfo struct {
	name      string // "" for the built-in node
	selfLabel string // the node's own label atom ("master"/"built-in" for the built-in node)
	labels    map[string]bool
	mode      string // NORMAL or EXCLUSIVE
	online    bool
	executors int
	idle      int             // idle executors, 0 when offline
	busyURLs  map[string]bool // builds occupying its executors

	// tempOffline: taken offline by a user or by us; a disconnected agent
	// is offline but not temporarily offline.
	tempOffline bool

	// For the status page: each executor's build ("" URL when idle), and
	// why the node is offline.
	slots         []slot
	offlineReason string
}

// slot is one executor as the last poll saw it.
type slot struct {
	url     string    // the build it runs, "" when idle
	started time.Time // the build's start, when Jenkins said
}

// labelList is the node's labels, sorted, for WORK_DATA's node_labels.
func (n *nodeInfo) labelList() []string {
	out := make([]string, 0, len(n.labels))
	for l := range n.labels {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// project is a buildable Jenkins project.
type project struct {
	name     string // short name: build:<name>
	fullName string // with folders: a/b/name
	path     string // job/a/job/b/job/name/
	label    label.Expr
	atoms    []string // the label's atoms usable in a function name (no whitespace)
	disabled bool
	params   []string // defined parameter names; nil when unparameterized
	// paramClasses are the parameter definitions' _class by name, to find
	// the NodeLabel Parameter plugin's.
	paramClasses map[string]string
	// unpinned: the bridge cannot pin this project's builds to the
	// worker's node, so it registers no build:<name>:<label> for it.
	unpinned bool
	pipeline bool // a WorkflowJob: see pipelineFunctions
}

func (p *project) hasParam(name string) bool { return slices.Contains(p.params, name) }

// functions is the set of Gearman functions an executor of node n
// registers: the plugin's rules (reference §1.2).
func (s *snapshot) functions(n *nodeInfo) []string {
	if n == nil || !n.online {
		return nil
	}
	var fns []string
	for _, p := range s.projects {
		if p.disabled {
			continue
		}
		if p.pipeline {
			fns = append(fns, pipelineFunctions(p, n)...)
			continue
		}
		if p.label == nil {
			if n.mode != "EXCLUSIVE" {
				fns = append(fns, "build:"+p.name)
			}
			continue
		}
		if !p.label.Matches(n.labels) {
			continue
		}
		fns = append(fns, "build:"+p.name)
		if p.unpinned {
			continue // the label would be a promise Jenkins may not keep
		}
		for _, atom := range p.atoms {
			if n.labels[atom] {
				fns = append(fns, "build:"+p.name+":"+atom)
			}
		}
	}
	sort.Strings(fns)
	return slices.Compact(fns)
}

// JSON shapes, with only the fields the tree= queries ask for.
type (
	nameJSON struct {
		Name string `json:"name"`
	}
	itemJSON struct {
		Class           string          `json:"_class"`
		Name            string          `json:"name"`
		FullName        string          `json:"fullName"`
		Buildable       *bool           `json:"buildable"`
		Disabled        *bool           `json:"disabled"`
		Color           string          `json:"color"`
		LabelExpression json.RawMessage `json:"labelExpression"` // absent before 2.94
		Property        []propJSON      `json:"property"`
		Jobs            []*itemJSON     `json:"jobs"`
	}
	propJSON struct {
		ParameterDefinitions []struct {
			Class string `json:"_class"`
			Name  string `json:"name"`
		} `json:"parameterDefinitions"`
	}
	rootJSON struct {
		QuietingDown bool        `json:"quietingDown"`
		Jobs         []*itemJSON `json:"jobs"`
	}
	computerSetJSON struct {
		Computer []struct {
			Class              string     `json:"_class"`
			DisplayName        string     `json:"displayName"`
			Offline            bool       `json:"offline"`
			TemporarilyOffline bool       `json:"temporarilyOffline"`
			OfflineCauseReason string     `json:"offlineCauseReason"`
			NumExecutors       int        `json:"numExecutors"`
			AssignedLabels     []nameJSON `json:"assignedLabels"`
			Executors          []execJSON `json:"executors"`
			OneOffExecutors    []execJSON `json:"oneOffExecutors"`
		} `json:"computer"`
	}
	execJSON struct {
		Idle              bool `json:"idle"`
		CurrentExecutable *struct {
			URL       string `json:"url"`
			Timestamp int64  `json:"timestamp"` // start, Unix ms
		} `json:"currentExecutable"`
	}
	labelNodesJSON struct {
		Nodes []struct {
			NodeName string `json:"nodeName"`
			Mode     string `json:"mode"`
		} `json:"nodes"`
	}
)

const (
	itemFields = "_class,name,fullName,buildable,disabled,color,labelExpression,property[parameterDefinitions[_class,name]]"
	// Folders nest their items in "jobs"; four levels cover real setups.
	rootTree     = "quietingDown,jobs[" + itemFields + ",jobs[" + itemFields + ",jobs[" + itemFields + ",jobs[" + itemFields + "]]]]"
	computerTree = "computer[_class,displayName,offline,temporarilyOffline,offlineCauseReason,numExecutors,assignedLabels[name],executors[idle,currentExecutable[url,timestamp]]]"
	// A label no node carries, negated, matches every node: one request
	// gives every node's mode.
	allNodesLabel = "!gearbridge-matches-no-node"
	nodesTree     = "nodes[nodeName,mode]"
)

// legacyCache keeps what pre-2.94 masters only tell through config.xml.
type legacyCache struct {
	projectLabels map[string]string // fullName -> assignedNode ("" = unrestricted)
	nodeLabels    map[string]string // node name -> label string
	polls         int
}

// legacyRefreshEvery is how many polls a config.xml answer is trusted.
const legacyRefreshEvery = 12

// poll reads one snapshot with three requests, whatever the number of
// nodes, executors and projects (plus config.xml reads on pre-2.94
// masters for items not seen before).
func poll(ctx context.Context, jc *jenkins, legacy *legacyCache, log *slog.Logger) (*snapshot, error) {
	s := &snapshot{began: time.Now(), nodes: map[string]*nodeInfo{}, projects: map[string]*project{}, byFullName: map[string]*project{}}
	var root rootJSON
	if err := jc.getJSON(ctx, "", rootTree, &root); err != nil {
		return nil, fmt.Errorf("read projects: %w", err)
	}
	var comps computerSetJSON
	if err := jc.getJSON(ctx, "computer/", computerTree, &comps); err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	var modes labelNodesJSON
	if err := jc.getJSON(ctx, "label/"+url.PathEscape(allNodesLabel)+"/", nodesTree, &modes); err != nil {
		return nil, fmt.Errorf("read node modes: %w", err)
	}
	s.quietingDown = root.QuietingDown
	mode := map[string]string{}
	for _, n := range modes.Nodes {
		mode[n.NodeName] = n.Mode
	}

	legacy.polls++
	refresh := legacy.polls%legacyRefreshEvery == 0
	for _, c := range comps.Computer {
		n := &nodeInfo{
			name:      c.DisplayName,
			online:    !c.Offline,
			executors: c.NumExecutors,
			labels:    map[string]bool{},
			busyURLs:  map[string]bool{},
		}
		n.tempOffline = c.TemporarilyOffline
		n.offlineReason = c.OfflineCauseReason
		builtIn := strings.HasSuffix(c.Class, "$MasterComputer")
		if builtIn {
			n.name = ""
		}
		n.mode = mode[n.name]
		if n.mode == "" {
			n.mode = "NORMAL"
		}
		for _, l := range c.AssignedLabels {
			n.labels[l.Name] = true
		}
		switch {
		case builtIn && len(c.AssignedLabels) > 0:
			n.selfLabel = c.AssignedLabels[0].Name
			for _, l := range c.AssignedLabels {
				if l.Name == "master" || l.Name == "built-in" {
					n.selfLabel = l.Name
				}
			}
		case builtIn:
			n.selfLabel = "master"
		default:
			n.selfLabel = n.name
		}
		n.labels[n.selfLabel] = true
		if len(c.AssignedLabels) == 0 && !builtIn {
			// Before 2.94 the JSON API has no labels: read config.xml.
			labels, err := legacyNodeLabels(ctx, jc, legacy, n.name, refresh)
			if err != nil {
				log.Warn("cannot read node labels from config.xml", "node", n.name, "err", err)
			}
			for _, l := range strings.Fields(labels) {
				n.labels[l] = true
			}
		}
		for _, e := range append(c.Executors, c.OneOffExecutors...) {
			if e.CurrentExecutable != nil && e.CurrentExecutable.URL != "" {
				n.busyURLs[e.CurrentExecutable.URL] = true
			}
		}
		if n.online {
			for _, e := range c.Executors {
				if e.Idle {
					n.idle++
				}
			}
		}
		for _, e := range c.Executors {
			var sl slot
			if ce := e.CurrentExecutable; ce != nil {
				sl.url = ce.URL
				if ce.Timestamp > 0 {
					sl.started = time.UnixMilli(ce.Timestamp)
				}
			}
			n.slots = append(n.slots, sl)
		}
		s.nodes[n.name] = n
	}

	var walk func(items []*itemJSON)
	walk = func(items []*itemJSON) {
		for _, it := range items {
			if len(it.Jobs) > 0 || strings.Contains(it.Class, "Folder") || strings.Contains(it.Class, "MultiBranch") {
				walk(it.Jobs)
				continue
			}
			if p := s.project(ctx, jc, legacy, it, refresh, log); p != nil {
				s.addProject(p, log)
			}
		}
	}
	walk(root.Jobs)
	return s, nil
}

// project turns a JSON item into a project, or nil for items that cannot
// be built. Pipeline (WorkflowJob) projects are registered as upstream's
// plugin has done since 2018 (pipelineFunctions).
func (s *snapshot) project(ctx context.Context, jc *jenkins, legacy *legacyCache, it *itemJSON, refresh bool, log *slog.Logger) *project {
	if it.Buildable == nil {
		return nil
	}
	fullName := it.FullName
	if fullName == "" {
		fullName = it.Name
	}
	p := &project{name: it.Name, fullName: fullName, path: jobPath(fullName)}
	switch {
	case it.Disabled != nil:
		p.disabled = *it.Disabled
	default:
		p.disabled = it.Color == "disabled"
	}
	for _, prop := range it.Property {
		for _, d := range prop.ParameterDefinitions {
			p.params = append(p.params, d.Name)
			if p.paramClasses == nil {
				p.paramClasses = map[string]string{}
			}
			p.paramClasses[d.Name] = d.Class
		}
	}
	if isPipeline(it.Class) {
		p.pipeline = true
		return p // no label of its own: it runs on the built-in node
	}
	expr := ""
	if it.LabelExpression != nil {
		json.Unmarshal(it.LabelExpression, &expr) // null: unrestricted
	} else {
		var err error
		expr, err = legacyProjectLabel(ctx, jc, legacy, p, refresh)
		if err != nil {
			log.Warn("cannot read project label from config.xml; treating it as unrestricted", "project", fullName, "err", err)
		}
	}
	if strings.TrimSpace(expr) != "" {
		p.label = label.Lenient(expr)
		for _, atom := range p.label.Atoms() {
			if !strings.ContainsAny(atom, " \t") {
				p.atoms = append(p.atoms, atom)
			}
		}
	}
	return p
}

// addProject indexes p by its function name. Names with whitespace cannot
// be matched by Zuul, which splits `status` on whitespace; projects in two
// folders with the same short name would share one function, so the first
// by full name wins and the clash is logged.
func (s *snapshot) addProject(p *project, log *slog.Logger) {
	s.byFullName[p.fullName] = p
	if strings.ContainsAny(p.name, " \t\r\n") {
		log.Warn("skipping project: its name contains whitespace, which Zuul cannot use in a function name", "project", p.fullName)
		return
	}
	if other, ok := s.projects[p.name]; ok {
		if other.fullName < p.fullName {
			log.Warn("two projects share a short name; registering the first", "function", "build:"+p.name, "registered", other.fullName, "skipped", p.fullName)
			return
		}
		log.Warn("two projects share a short name; registering the first", "function", "build:"+p.name, "registered", p.fullName, "skipped", other.fullName)
	}
	s.projects[p.name] = p
}

func legacyNodeLabels(ctx context.Context, jc *jenkins, c *legacyCache, name string, refresh bool) (string, error) {
	return cachedConfigValue(ctx, jc, &c.nodeLabels, name, "computer/"+url.PathEscape(name)+"/config.xml", refresh, func(body []byte) (string, error) {
		var x struct {
			Label string `xml:"label"`
		}
		err := unmarshalConfigXML(body, &x)
		return x.Label, err
	})
}

func legacyProjectLabel(ctx context.Context, jc *jenkins, c *legacyCache, p *project, refresh bool) (string, error) {
	return cachedConfigValue(ctx, jc, &c.projectLabels, p.fullName, p.path+"config.xml", refresh, func(body []byte) (string, error) {
		var x struct {
			AssignedNode string `xml:"assignedNode"`
			CanRoam      *bool  `xml:"canRoam"`
		}
		if err := unmarshalConfigXML(body, &x); err != nil {
			return "", err
		}
		if x.CanRoam == nil || *x.CanRoam {
			return "", nil // canRoam: the project may run anywhere
		}
		return x.AssignedNode, nil
	})
}

// cachedConfigValue is the value extract reads from the config.xml at
// path, cached under key: read again only on a refresh poll. When the
// request fails, the cached value (if any) is returned with the error.
func cachedConfigValue(ctx context.Context, jc *jenkins, cache *map[string]string, key, path string, refresh bool, extract func([]byte) (string, error)) (string, error) {
	if *cache == nil {
		*cache = map[string]string{}
	}
	if v, ok := (*cache)[key]; ok && !refresh {
		return v, nil
	}
	body, err := jc.getText(ctx, path)
	if err != nil {
		return (*cache)[key], err
	}
	v, err := extract(body)
	if err != nil {
		return "", fmt.Errorf("parse config.xml: %w", err)
	}
	(*cache)[key] = v
	return v, nil
}

// unmarshalConfigXML parses a Jenkins config.xml. Jenkins declares XML 1.1,
// which encoding/xml refuses; the parts we read are the same in 1.0.
func unmarshalConfigXML(body []byte, v any) error {
	if bytes.HasPrefix(body, []byte("<?xml")) {
		if end := bytes.Index(body, []byte("?>")); end > 0 {
			body = body[end+2:]
		}
	}
	return xml.Unmarshal(body, v)
}
