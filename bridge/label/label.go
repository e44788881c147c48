// Package label parses and evaluates Jenkins label expressions, as
// LabelExpression.g4 defines them. The bridge uses it to decide which
// projects a node can run; the Jenkins emulator uses it to schedule.
package label

import (
	"fmt"
	"strings"
)

// Expr is a parsed Jenkins label expression (LabelExpression.g4):
// atoms, quoted atoms, ! && || -> <-> and parentheses, in that order of
// binding from tightest to loosest; binary operators are left-associative.
type Expr interface {
	// Matches reports whether a node carrying labels (which must include
	// its self label) satisfies the expression.
	Matches(labels map[string]bool) bool
	// Atoms lists the atoms in order of first appearance, without duplicates.
	Atoms() []string
	String() string
}

type labelAtom string

type labelNot struct{ x Expr }

type labelBinary struct {
	op   string // "&&", "||", "->", "<->"
	l, r Expr
}

type labelParen struct{ x Expr }

func (a labelAtom) Matches(m map[string]bool) bool { return m[string(a)] }
func (n labelNot) Matches(m map[string]bool) bool  { return !n.x.Matches(m) }
func (p labelParen) Matches(m map[string]bool) bool {
	return p.x.Matches(m)
}

func (b labelBinary) Matches(m map[string]bool) bool {
	l, r := b.l.Matches(m), b.r.Matches(m)
	switch b.op {
	case "&&":
		return l && r
	case "||":
		return l || r
	case "->":
		return !l || r
	default: // "<->"
		return l == r
	}
}

func (a labelAtom) Atoms() []string  { return []string{string(a)} }
func (n labelNot) Atoms() []string   { return n.x.Atoms() }
func (p labelParen) Atoms() []string { return p.x.Atoms() }
func (b labelBinary) Atoms() []string {
	out := b.l.Atoms()
	for _, a := range b.r.Atoms() {
		if !contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// String quotes atoms that would not parse back as bare atoms, as
// LabelAtom.escape does.
func (a labelAtom) String() string {
	s := string(a)
	if s == "" || strings.ContainsAny(s, "&|!<>()\"' \t") || strings.Contains(s, "->") {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	return s
}
func (n labelNot) String() string    { return "!" + n.x.String() }
func (p labelParen) String() string  { return "(" + p.x.String() + ")" }
func (b labelBinary) String() string { return b.l.String() + b.op + b.r.String() }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Parse parses a label expression. An empty or blank expression is
// an error: Jenkins treats it as "no label" before parsing.
func Parse(expr string) (Expr, error) {
	toks, err := lexLabel(expr)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("label expression %q: empty", expr)
	}
	p := &labelParser{toks: toks}
	l, err := p.iff()
	if err != nil {
		return nil, fmt.Errorf("label expression %q: %w", expr, err)
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("label expression %q: unexpected %q", expr, p.toks[p.pos].text)
	}
	return l, nil
}

type labelToken struct {
	kind string // "atom", or the operator / parenthesis itself
	text string
}

func lexLabel(s string) ([]labelToken, error) {
	var toks []labelToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.HasPrefix(s[i:], "&&"), strings.HasPrefix(s[i:], "||"), strings.HasPrefix(s[i:], "->"):
			toks = append(toks, labelToken{kind: s[i : i+2], text: s[i : i+2]})
			i += 2
		case strings.HasPrefix(s[i:], "<->"):
			toks = append(toks, labelToken{kind: "<->", text: "<->"})
			i += 3
		case c == '!' || c == '(' || c == ')':
			toks = append(toks, labelToken{kind: string(c), text: string(c)})
			i++
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("label expression %q: unterminated quote", s)
			}
			toks = append(toks, labelToken{kind: "atom", text: b.String()})
			i = j + 1
		case strings.IndexByte("&|<>'", c) >= 0:
			return nil, fmt.Errorf("label expression %q: unexpected %q at %d", s, c, i)
		default:
			j := i
			for j < len(s) && isAtomChar(s, j) {
				j++
			}
			toks = append(toks, labelToken{kind: "atom", text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}

// isAtomChar: anything but operators, quotes and blanks; '-' only when it
// does not start "->".
func isAtomChar(s string, j int) bool {
	c := s[j]
	if strings.IndexByte("&|!<>()\"' \t\n\r", c) >= 0 {
		return false
	}
	return c != '-' || j+1 >= len(s) || s[j+1] != '>'
}

type labelParser struct {
	toks []labelToken
	pos  int
}

func (p *labelParser) peek(kind string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == kind
}

func (p *labelParser) binary(op string, next func() (Expr, error)) (Expr, error) {
	l, err := next()
	if err != nil {
		return nil, err
	}
	for p.peek(op) {
		p.pos++
		r, err := next()
		if err != nil {
			return nil, err
		}
		l = labelBinary{op: op, l: l, r: r}
	}
	return l, nil
}

func (p *labelParser) iff() (Expr, error)     { return p.binary("<->", p.implies) }
func (p *labelParser) implies() (Expr, error) { return p.binary("->", p.or) }
func (p *labelParser) or() (Expr, error)      { return p.binary("||", p.and) }
func (p *labelParser) and() (Expr, error)     { return p.binary("&&", p.not) }

func (p *labelParser) not() (Expr, error) {
	if p.peek("!") {
		p.pos++
		x, err := p.primary()
		if err != nil {
			return nil, err
		}
		return labelNot{x}, nil
	}
	return p.primary()
}

func (p *labelParser) primary() (Expr, error) {
	if p.pos >= len(p.toks) {
		return nil, fmt.Errorf("unexpected end")
	}
	t := p.toks[p.pos]
	switch t.kind {
	case "atom":
		p.pos++
		return labelAtom(t.text), nil
	case "(":
		p.pos++
		x, err := p.iff()
		if err != nil {
			return nil, err
		}
		if !p.peek(")") {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return labelParen{x}, nil
	}
	return nil, fmt.Errorf("unexpected %q", t.text)
}

// Lenient mirrors Jenkins.getLabel: an expression that does not parse is
// taken as one atom spelled like the whole string.
func Lenient(expr string) Expr {
	if l, err := Parse(expr); err == nil {
		return l
	}
	return labelAtom(expr)
}

// IsAtom reports whether e is a single label atom rather than an
// expression (Jenkins reports the two with different classes).
func IsAtom(e Expr) bool {
	_, ok := e.(labelAtom)
	return ok
}

// Atom returns the expression made of the one atom name.
func Atom(name string) Expr { return labelAtom(name) }
