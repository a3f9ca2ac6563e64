package dashboard

import (
	"fmt"
	"slices"
	"strings"

	"github.com/l7lb/l7lb/internal/promql"
)

// This file reads the names out of the dashboard's PromQL. Prometheus's
// own parser (github.com/prometheus/prometheus/promql/parser) would do it
// exactly, but that module drags a large part of Prometheus into go.mod
// and upgrades ~40 of l7lb's dependencies (OpenTelemetry, grpc-gateway,
// zap among them) for one test, so this is a tokeniser that knows the
// grammar's names:
//
//   - a selector is a metric name, optionally followed by {matchers}, or
//     {matchers} alone; matchers are `label op "value"`;
//   - an identifier followed by "(" is a function or an aggregation and
//     must be one PromQL knows (a typo such as `rat(` is an error);
//   - by/without/on/ignoring/group_left/group_right take a label list;
//   - [ranges], subqueries and `offset` durations carry no names;
//   - string literals carry no names (the dashboard uses no label_replace).
//
// The names it finds were cross-checked against the real parser once by
// hand (the report of the change that added this test says how).

// selector is one vector selector: a metric name (may be empty) and the
// labels its matchers name, with the values of its equality matchers.
type selector struct {
	metric string
	labels []string
	equals map[string]string // label -> value, for `label="value"` without variables
}

// names is everything one expression names.
type names struct {
	selectors []selector
	grouping  []string // labels of by/without/on/ignoring/group_left/group_right
}

// The tokeniser is internal/promql's (tools/dashshot evaluates the same
// queries with it).
type token = promql.Token

const (
	tIdent  = promql.Ident
	tString = promql.String
	tNumber = promql.Number
	tPunct  = promql.Punct
)

func tokenize(expr string) ([]token, error) { return promql.Tokenize(expr) }

var (
	promqlFuncs  = promql.Funcs
	aggregations = promql.Aggregations
)

// Keywords that take a label list, and the binary operators spelled as
// words.
var (
	groupingWords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	operatorWords = map[string]bool{"and": true, "or": true, "unless": true, "atan2": true, "bool": true}
)

// extract returns what expr names.
func extract(expr string) (names, error) {
	toks, err := tokenize(expr)
	if err != nil {
		return names{}, err
	}
	var n names
	i := 0
	at := func(j int, text string) bool { return j < len(toks) && toks[j].Kind == tPunct && toks[j].Text == text }
	// labelList reads "( a, b, ... )" at i; group_left/right may omit it.
	labelList := func(optional bool) error {
		if !at(i, "(") {
			if optional {
				return nil
			}
			return fmt.Errorf("%q: label list expected after %s", expr, toks[i-1].Text)
		}
		i++
		for !at(i, ")") {
			if i >= len(toks) {
				return fmt.Errorf("%q: unterminated label list", expr)
			}
			switch {
			case toks[i].Kind == tIdent:
				n.grouping = append(n.grouping, toks[i].Text)
			case at(i, ","):
			default:
				return fmt.Errorf("%q: %q in a label list", expr, toks[i].Text)
			}
			i++
		}
		i++
		return nil
	}
	// matchers reads "{ l op "v", ... }" at i into s.
	matchers := func(s *selector) error {
		i++ // {
		for !at(i, "}") {
			if i+2 >= len(toks) {
				return fmt.Errorf("%q: unterminated matchers", expr)
			}
			if at(i, ",") {
				i++
				continue
			}
			l, op, v := toks[i], toks[i+1], toks[i+2]
			if (l.Kind != tIdent && l.Kind != tString) || op.Kind != tPunct || v.Kind != tString ||
				!slices.Contains([]string{"=", "!=", "=~", "!~"}, op.Text) {
				return fmt.Errorf("%q: bad matcher %s %s %s", expr, l.Text, op.Text, v.Text)
			}
			if l.Text == "__name__" && op.Text == "=" {
				s.metric = v.Text
			} else {
				s.labels = append(s.labels, l.Text)
				if op.Text == "=" && !strings.Contains(v.Text, "$") {
					if s.equals == nil {
						s.equals = map[string]string{}
					}
					s.equals[l.Text] = v.Text
				}
			}
			i += 3
		}
		i++
		return nil
	}
	for i < len(toks) {
		t := toks[i]
		switch {
		case t.Kind == tIdent && groupingWords[t.Text]:
			i++
			if err := labelList(t.Text == "group_left" || t.Text == "group_right"); err != nil {
				return n, err
			}
		case t.Kind == tIdent && operatorWords[t.Text]:
			i++
		case t.Kind == tIdent && t.Text == "offset":
			i += 2 // offset DURATION
		case t.Kind == tIdent && (at(i+1, "(") || (aggregations[t.Text] && i+1 < len(toks) && groupingWords[toks[i+1].Text])):
			if !promqlFuncs[t.Text] {
				return n, fmt.Errorf("%q: unknown function %s", expr, t.Text)
			}
			i++
		case t.Kind == tIdent:
			s := selector{metric: t.Text}
			i++
			if at(i, "{") {
				if err := matchers(&s); err != nil {
					return n, err
				}
			}
			n.selectors = append(n.selectors, s)
		case at(i, "{"):
			var s selector
			if err := matchers(&s); err != nil {
				return n, err
			}
			n.selectors = append(n.selectors, s)
		case at(i, "["): // a range or subquery: durations only
			for i < len(toks) && !at(i, "]") {
				i++
			}
			i++
		default:
			i++
		}
	}
	return n, nil
}
