package jenkinstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// object is an exported bean: a Java class name and its @Exported
// properties. Rendering prunes it the way Stapler does, by tree= or depth=.
type object struct {
	class string
	props []prop
}

// prop is one @Exported property. vis is its visibility (Stapler's default
// is 1); inline properties do not count as a level of nesting.
type prop struct {
	name   string
	vis    int
	inline bool
	value  any // nil, string, bool, int, int64, float64, *object, []*object, []string, or lazy
}

// lazy defers computing a property until the pruner has accepted it, so a
// job's long build list costs nothing when the tree does not ask for it.
type lazy func() any

func obj(class string, props ...prop) *object { return &object{class: class, props: props} }

func p(name string, v any) prop           { return prop{name: name, vis: 1, value: v} }
func pv(name string, vis int, v any) prop { return prop{name: name, vis: vis, value: v} }
func pin(name string, v any) prop         { return prop{name: name, vis: 1, inline: true, value: v} }
func (o *object) add(ps ...prop) *object  { o.props = append(o.props, ps...); return o }
func objs(list ...*object) []*object      { return list }

// pruner decides which properties of an object are written.
type pruner interface {
	accept(p *prop) (pruner, bool)
	window() (lo, hi int) // list range; hi < 0 means no limit
}

// byDepth is Stapler's TreePruner.ByDepth: a property shows when its
// visibility is at least the current level; each nesting raises the level.
type byDepth int

func (d byDepth) accept(p *prop) (pruner, bool) {
	if p.vis < int(d) {
		return nil, false
	}
	if p.inline {
		return d, true
	}
	return d + 1, true
}

func (byDepth) window() (int, int) { return 0, -1 }

// treeSpec is a parsed tree= parameter (NamedPathPruner): a,b[c,d[e]]{0,10}.
type treeSpec struct {
	children map[string]*treeSpec
	lo, hi   int
}

func (t *treeSpec) accept(p *prop) (pruner, bool) {
	c, ok := t.children[p.name]
	if !ok {
		return nil, false
	}
	return c, true
}

func (t *treeSpec) window() (int, int) { return t.lo, t.hi }

func parseTree(s string) (*treeSpec, error) {
	tp := &treeParser{s: s}
	root := &treeSpec{children: map[string]*treeSpec{}, hi: -1}
	if err := tp.list(root); err != nil {
		return nil, err
	}
	if tp.i != len(s) {
		return nil, fmt.Errorf("tree %q: unexpected %q at %d", s, s[tp.i], tp.i)
	}
	return root, nil
}

type treeParser struct {
	s string
	i int
}

func (tp *treeParser) list(parent *treeSpec) error {
	for {
		j := tp.i
		for j < len(tp.s) && !strings.ContainsRune(",[]{}", rune(tp.s[j])) {
			j++
		}
		name := strings.TrimSpace(tp.s[tp.i:j])
		if name == "" {
			return fmt.Errorf("tree %q: missing name at %d", tp.s, tp.i)
		}
		tp.i = j
		child := &treeSpec{children: map[string]*treeSpec{}, hi: -1}
		parent.children[name] = child
		if tp.i < len(tp.s) && tp.s[tp.i] == '[' {
			tp.i++
			if err := tp.list(child); err != nil {
				return err
			}
			if tp.i >= len(tp.s) || tp.s[tp.i] != ']' {
				return fmt.Errorf("tree %q: missing ]", tp.s)
			}
			tp.i++
		}
		if tp.i < len(tp.s) && tp.s[tp.i] == '{' {
			end := strings.IndexByte(tp.s[tp.i:], '}')
			if end < 0 {
				return fmt.Errorf("tree %q: missing }", tp.s)
			}
			lo, hi, err := parseRange(tp.s[tp.i+1 : tp.i+end])
			if err != nil {
				return fmt.Errorf("tree %q: %w", tp.s, err)
			}
			child.lo, child.hi = lo, hi
			tp.i += end + 1
		}
		if tp.i < len(tp.s) && tp.s[tp.i] == ',' {
			tp.i++
			continue
		}
		return nil
	}
}

// parseRange reads Stapler's {M,N}, {M,}, {,N} and {N} (= {N,N+1}).
func parseRange(s string) (int, int, error) {
	num := func(x string, def int) (int, error) {
		if x = strings.TrimSpace(x); x == "" {
			return def, nil
		}
		return strconv.Atoi(x)
	}
	a, b, comma := strings.Cut(s, ",")
	lo, err := num(a, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("bad range {%s}", s)
	}
	if !comma {
		return lo, lo + 1, nil
	}
	hi, err := num(b, -1)
	if err != nil {
		return 0, 0, fmt.Errorf("bad range {%s}", s)
	}
	return lo, hi, nil
}

// render writes o as JSON, pruned by pr. _class is always written.
func render(buf *bytes.Buffer, o *object, pr pruner) {
	buf.WriteString(`{"_class":`)
	writeString(buf, o.class)
	for i := range o.props {
		p := &o.props[i]
		child, ok := pr.accept(p)
		if !ok {
			continue
		}
		buf.WriteByte(',')
		writeString(buf, p.name)
		buf.WriteByte(':')
		v := p.value
		if f, isLazy := v.(lazy); isLazy {
			v = f()
		}
		renderValue(buf, v, child)
	}
	buf.WriteByte('}')
}

func renderValue(buf *bytes.Buffer, v any, pr pruner) {
	switch v := v.(type) {
	case nil:
		buf.WriteString("null")
	case *object:
		if v == nil {
			buf.WriteString("null")
			return
		}
		render(buf, v, pr)
	case []*object:
		lo, hi := pr.window()
		buf.WriteByte('[')
		n := 0
		for i, o := range v {
			if i < lo || (hi >= 0 && i >= hi) {
				continue
			}
			if n > 0 {
				buf.WriteByte(',')
			}
			n++
			renderValue(buf, o, pr)
		}
		buf.WriteByte(']')
	case []string:
		buf.WriteByte('[')
		for i, s := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, s)
		}
		buf.WriteByte(']')
	case string:
		writeString(buf, v)
	case bool:
		buf.WriteString(strconv.FormatBool(v))
	case int:
		buf.WriteString(strconv.Itoa(v))
	case int64:
		buf.WriteString(strconv.FormatInt(v, 10))
	case float64:
		buf.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
	default:
		panic(fmt.Sprintf("jenkinstest: cannot render %T", v))
	}
}

func writeString(buf *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			buf.Write(b)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
}
