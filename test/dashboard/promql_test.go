package dashboard

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
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

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tNumber // numbers and durations
	tPunct  // ( ) { } [ ] , and operators
)

type token struct {
	kind tokKind
	text string
}

func isIdentStart(r rune) bool { return r == '_' || r == ':' || unicode.IsLetter(r) }
func isIdentPart(r rune) bool  { return isIdentStart(r) || unicode.IsDigit(r) }

// tokenize splits a PromQL expression. Grafana's $variables must have been
// replaced before (outside strings); a stray $ is an error.
func tokenize(expr string) ([]token, error) {
	var out []token
	rs := []rune(expr)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '#': // comment to end of line
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case r == '"' || r == '\'' || r == '`':
			j := i + 1
			var b strings.Builder
			for ; j < len(rs) && rs[j] != r; j++ {
				if rs[j] == '\\' && r != '`' && j+1 < len(rs) {
					j++
				}
				b.WriteRune(rs[j])
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated string at offset %d", i)
			}
			out = append(out, token{tString, b.String()})
			i = j + 1
		case unicode.IsDigit(r) || (r == '.' && i+1 < len(rs) && unicode.IsDigit(rs[i+1])):
			// Numbers, 1e-3, 0x1f and durations such as 5m or 1h30m.
			j := i
			for j < len(rs) && (unicode.IsDigit(rs[j]) || unicode.IsLetter(rs[j]) || rs[j] == '.' ||
				((rs[j] == '+' || rs[j] == '-') && (rs[j-1] == 'e' || rs[j-1] == 'E'))) {
				j++
			}
			out = append(out, token{tNumber, string(rs[i:j])})
			i = j
		case isIdentStart(r):
			j := i
			for j < len(rs) && isIdentPart(rs[j]) {
				j++
			}
			out = append(out, token{tIdent, string(rs[i:j])})
			i = j
		case strings.ContainsRune("(){}[],", r):
			out = append(out, token{tPunct, string(r)})
			i++
		case strings.ContainsRune("+-*/%^=!<>~:@", r):
			j := i + 1
			for j < len(rs) && strings.ContainsRune("=~", rs[j]) {
				j++
			}
			out = append(out, token{tPunct, string(rs[i:j])})
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q at offset %d", r, i)
		}
	}
	return out, nil
}

// PromQL's functions and aggregations (Prometheus 3.x), the only
// identifiers that may stand before "(".
var promqlFuncs = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time
		ceil changes clamp clamp_max clamp_min cos cosh count_over_time days_in_month day_of_month day_of_week
		day_of_year deg delta deriv exp floor histogram_avg histogram_count histogram_fraction histogram_quantile
		histogram_stddev histogram_stdvar histogram_sum holt_winters double_exponential_smoothing hour idelta
		increase irate label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time
		min_over_time minute month pi predict_linear present_over_time quantile_over_time rad rate resets round
		scalar sgn sin sinh sort sort_desc sort_by_label sort_by_label_desc sqrt stddev_over_time stdvar_over_time
		sum_over_time tan tanh time timestamp vector year info`) {
		promqlFuncs[f] = true
	}
	for a := range aggregations {
		promqlFuncs[a] = true
	}
}

var aggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

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
	at := func(j int, text string) bool { return j < len(toks) && toks[j].kind == tPunct && toks[j].text == text }
	// labelList reads "( a, b, ... )" at i; group_left/right may omit it.
	labelList := func(optional bool) error {
		if !at(i, "(") {
			if optional {
				return nil
			}
			return fmt.Errorf("%q: label list expected after %s", expr, toks[i-1].text)
		}
		i++
		for !at(i, ")") {
			if i >= len(toks) {
				return fmt.Errorf("%q: unterminated label list", expr)
			}
			switch {
			case toks[i].kind == tIdent:
				n.grouping = append(n.grouping, toks[i].text)
			case at(i, ","):
			default:
				return fmt.Errorf("%q: %q in a label list", expr, toks[i].text)
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
			if (l.kind != tIdent && l.kind != tString) || op.kind != tPunct || v.kind != tString ||
				!slices.Contains([]string{"=", "!=", "=~", "!~"}, op.text) {
				return fmt.Errorf("%q: bad matcher %s %s %s", expr, l.text, op.text, v.text)
			}
			if l.text == "__name__" && op.text == "=" {
				s.metric = v.text
			} else {
				s.labels = append(s.labels, l.text)
				if op.text == "=" && !strings.Contains(v.text, "$") {
					if s.equals == nil {
						s.equals = map[string]string{}
					}
					s.equals[l.text] = v.text
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
		case t.kind == tIdent && groupingWords[t.text]:
			i++
			if err := labelList(t.text == "group_left" || t.text == "group_right"); err != nil {
				return n, err
			}
		case t.kind == tIdent && operatorWords[t.text]:
			i++
		case t.kind == tIdent && t.text == "offset":
			i += 2 // offset DURATION
		case t.kind == tIdent && (at(i+1, "(") || (aggregations[t.text] && i+1 < len(toks) && groupingWords[toks[i+1].text])):
			if !promqlFuncs[t.text] {
				return n, fmt.Errorf("%q: unknown function %s", expr, t.text)
			}
			i++
		case t.kind == tIdent:
			s := selector{metric: t.text}
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
