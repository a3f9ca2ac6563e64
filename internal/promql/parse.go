package promql

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Node is a parsed expression.
type Node interface{ node() }

// NumberNode is a number literal.
type NumberNode struct{ V float64 }

// Matcher is one label matcher of a selector.
type Matcher struct {
	Label, Op, Value string
	re               *regexp.Regexp // for =~ and !~, anchored as Prometheus anchors it
}

// Matches reports whether the label value v satisfies m.
func (m Matcher) Matches(v string) bool {
	switch m.Op {
	case "=":
		return v == m.Value
	case "!=":
		return v != m.Value
	case "=~":
		return m.re.MatchString(v)
	default: // !~
		return !m.re.MatchString(v)
	}
}

// SelectorNode selects series; Range > 0 makes it a range selector
// (only as the argument of rate or increase).
type SelectorNode struct {
	Matchers []Matcher // the metric name is a __name__ matcher
	Range    time.Duration
}

// CallNode is a function call.
type CallNode struct {
	Func string
	Args []Node
}

// AggNode is an aggregation: sum, min, max, avg or count.
type AggNode struct {
	Op      string
	Labels  []string
	Without bool
	Expr    Node
}

// Matching is a binary operation's vector matching.
type Matching struct {
	On        bool // on(...) rather than ignoring(...)
	Labels    []string
	GroupLeft bool     // many-to-one; group_right is not supported
	Include   []string // group_left's labels copied from the right side
}

// BinaryNode is lhs op rhs.
type BinaryNode struct {
	Op       string
	LHS, RHS Node
	Matching Matching
}

func (NumberNode) node()   {}
func (SelectorNode) node() {}
func (CallNode) node()     {}
func (AggNode) node()      {}
func (BinaryNode) node()   {}

// supported are the functions the evaluator knows.
var supported = map[string]int{"rate": 1, "increase": 1, "histogram_quantile": 2, "time": 0}

// Parse parses expr. Grafana's variables must have been replaced; what
// the evaluator does not support (other functions, group_right, offset,
// subqueries) is an error naming it.
func Parse(expr string) (Node, error) {
	toks, err := Tokenize(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, expr: expr}
	n, err := p.binary(0)
	if err != nil {
		return nil, err
	}
	if p.i != len(p.toks) {
		return nil, p.errorf("unexpected %q", p.toks[p.i].Text)
	}
	return n, nil
}

type parser struct {
	toks []Token
	i    int
	expr string
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("promql %q: token %d: %s", p.expr, p.i, fmt.Sprintf(format, args...))
}

func (p *parser) peek() (Token, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return Token{}, false
}

func (p *parser) isPunct(text string) bool {
	t, ok := p.peek()
	return ok && t.Kind == Punct && t.Text == text
}

func (p *parser) isIdent(text string) bool {
	t, ok := p.peek()
	return ok && t.Kind == Ident && t.Text == text
}

func (p *parser) expect(text string) error {
	if !p.isPunct(text) {
		return p.errorf("want %q", text)
	}
	p.i++
	return nil
}

// precedence of the binary operators, lowest first (PromQL's).
func precedence(t Token) int {
	if t.Kind == Ident {
		switch t.Text {
		case "or":
			return 1
		case "and", "unless":
			return 2
		}
		return -1
	}
	switch t.Text {
	case "==", "!=", "<", "<=", ">", ">=":
		return 3
	case "+", "-":
		return 4
	case "*", "/", "%":
		return 5
	case "^":
		return 6
	}
	return -1
}

// binary parses operators of at least precedence min (precedence
// climbing; ^ is right-associative).
func (p *parser) binary(min int) (Node, error) {
	lhs, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		prec := precedence(t)
		if !ok || prec < 0 || prec < min {
			return lhs, nil
		}
		if t.Kind == Ident {
			return nil, p.errorf("set operator %s is not supported", t.Text)
		}
		p.i++
		var m Matching
		if p.isIdent("bool") {
			return nil, p.errorf("bool modifier is not supported")
		}
		if p.isIdent("on") || p.isIdent("ignoring") {
			m.On = p.isIdent("on")
			p.i++
			if m.Labels, err = p.labelList(); err != nil {
				return nil, err
			}
			if p.isIdent("group_right") {
				return nil, p.errorf("group_right is not supported")
			}
			if p.isIdent("group_left") {
				p.i++
				m.GroupLeft = true
				if p.isPunct("(") {
					if m.Include, err = p.labelList(); err != nil {
						return nil, err
					}
				}
			}
		}
		next := prec + 1
		if t.Text == "^" {
			next = prec
		}
		rhs, err := p.binary(next)
		if err != nil {
			return nil, err
		}
		lhs = BinaryNode{Op: t.Text, LHS: lhs, RHS: rhs, Matching: m}
	}
}

func (p *parser) labelList() ([]string, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	out := []string{}
	for !p.isPunct(")") {
		t, ok := p.peek()
		switch {
		case !ok:
			return nil, p.errorf("unterminated label list")
		case t.Kind == Ident:
			out = append(out, t.Text)
		case t.Kind == Punct && t.Text == ",":
		default:
			return nil, p.errorf("%q in a label list", t.Text)
		}
		p.i++
	}
	p.i++
	return out, nil
}

func (p *parser) unary() (Node, error) {
	t, ok := p.peek()
	if !ok {
		return nil, p.errorf("unexpected end")
	}
	switch {
	case t.Kind == Punct && t.Text == "(":
		p.i++
		n, err := p.binary(0)
		if err != nil {
			return nil, err
		}
		return n, p.expect(")")
	case t.Kind == Punct && t.Text == "-":
		p.i++
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return BinaryNode{Op: "*", LHS: NumberNode{-1}, RHS: n}, nil
	case t.Kind == Number:
		p.i++
		v, err := strconv.ParseFloat(t.Text, 64)
		if err != nil {
			return nil, p.errorf("number %q: %v", t.Text, err)
		}
		return NumberNode{v}, nil
	case t.Kind == Punct && t.Text == "{":
		return p.selector("")
	case t.Kind == Ident && Aggregations[t.Text]:
		return p.aggregation()
	case t.Kind == Ident && p.i+1 < len(p.toks) && p.toks[p.i+1].Kind == Punct && p.toks[p.i+1].Text == "(":
		return p.call()
	case t.Kind == Ident:
		p.i++
		return p.selector(t.Text)
	}
	return nil, p.errorf("unexpected %q", t.Text)
}

func (p *parser) aggregation() (Node, error) {
	op := p.toks[p.i].Text
	if !slices.Contains([]string{"sum", "min", "max", "avg", "count"}, op) {
		return nil, p.errorf("aggregation %s is not supported", op)
	}
	p.i++
	a := AggNode{Op: op}
	grouping := func() error {
		if p.isIdent("by") || p.isIdent("without") {
			a.Without = p.isIdent("without")
			p.i++
			var err error
			a.Labels, err = p.labelList()
			return err
		}
		return nil
	}
	if err := grouping(); err != nil {
		return nil, err
	}
	if err := p.expect("("); err != nil {
		return nil, err
	}
	e, err := p.binary(0)
	if err != nil {
		return nil, err
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	a.Expr = e
	if a.Labels == nil {
		if err := grouping(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (p *parser) call() (Node, error) {
	name := p.toks[p.i].Text
	want, ok := supported[name]
	if !ok {
		if Funcs[name] {
			return nil, p.errorf("function %s is not supported", name)
		}
		return nil, p.errorf("unknown function %s", name)
	}
	p.i += 2 // name (
	c := CallNode{Func: name}
	for !p.isPunct(")") {
		if len(c.Args) > 0 {
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
		a, err := p.binary(0)
		if err != nil {
			return nil, err
		}
		c.Args = append(c.Args, a)
	}
	p.i++
	if len(c.Args) != want {
		return nil, p.errorf("%s takes %d arguments, got %d", name, want, len(c.Args))
	}
	if name == "rate" || name == "increase" {
		if s, ok := c.Args[0].(SelectorNode); !ok || s.Range == 0 {
			return nil, p.errorf("%s needs a range selector", name)
		}
	}
	return c, nil
}

func (p *parser) selector(name string) (Node, error) {
	var s SelectorNode
	if name != "" {
		s.Matchers = append(s.Matchers, Matcher{Label: "__name__", Op: "=", Value: name})
	}
	if p.isPunct("{") {
		p.i++
		for !p.isPunct("}") {
			if p.isPunct(",") {
				p.i++
				continue
			}
			if p.i+2 >= len(p.toks) {
				return nil, p.errorf("unterminated matchers")
			}
			l, op, v := p.toks[p.i], p.toks[p.i+1], p.toks[p.i+2]
			if (l.Kind != Ident && l.Kind != String) || op.Kind != Punct || v.Kind != String {
				return nil, p.errorf("bad matcher %s %s %s", l.Text, op.Text, v.Text)
			}
			m := Matcher{Label: l.Text, Op: op.Text, Value: v.Text}
			switch op.Text {
			case "=", "!=":
			case "=~", "!~":
				re, err := regexp.Compile("^(?:" + v.Text + ")$")
				if err != nil {
					return nil, p.errorf("matcher %s%s%q: %v", l.Text, op.Text, v.Text, err)
				}
				m.re = re
			default:
				return nil, p.errorf("bad matcher operator %q", op.Text)
			}
			s.Matchers = append(s.Matchers, m)
			p.i += 3
		}
		p.i++
	}
	if len(s.Matchers) == 0 {
		return nil, p.errorf("empty selector")
	}
	if p.isPunct("[") {
		p.i++
		t, ok := p.peek()
		if !ok || t.Kind != Number {
			return nil, p.errorf("range duration expected")
		}
		d, err := ParseDuration(t.Text)
		if err != nil {
			return nil, p.errorf("%v", err)
		}
		s.Range = d
		p.i++
		if err := p.expect("]"); err != nil {
			return nil, err
		}
	}
	if p.isIdent("offset") || p.isPunct("@") {
		return nil, p.errorf("offset and @ are not supported")
	}
	return s, nil
}

// ParseDuration reads a PromQL duration: 30s, 5m, 1h30m, 2d, 500ms.
func ParseDuration(s string) (time.Duration, error) {
	var total time.Duration
	rest := s
	units := []struct {
		suffix string
		d      time.Duration
	}{{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"y", 365 * 24 * time.Hour}}
	for rest != "" {
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		n, _ := strconv.Atoi(rest[:j])
		rest = rest[j:]
		found := false
		for _, u := range units {
			if strings.HasPrefix(rest, u.suffix) && !(u.suffix == "m" && strings.HasPrefix(rest, "ms")) {
				total += time.Duration(n) * u.d
				rest = rest[len(u.suffix):]
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("bad duration %q", s)
		}
	}
	if total <= 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return total, nil
}
