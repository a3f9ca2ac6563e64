// Package promql is the part of Prometheus's query language that l7lb's
// Grafana dashboard (charts/l7lb/dashboards/l7lb.json) uses: a tokeniser,
// shared with test/dashboard's check of the names the queries use, and an
// evaluator over scraped samples, which tools/dashshot uses to draw the
// dashboard without Prometheus or Grafana. Prometheus's own engine
// (github.com/prometheus/prometheus/promql) would be exact, but that
// module drags a large part of Prometheus into go.mod (see test/dashboard).
package promql

import (
	"fmt"
	"strings"
	"unicode"
)

// Kind is a token's kind.
type Kind int

// The kinds of tokens.
const (
	Ident  Kind = iota
	String      // the text is the unquoted value
	Number      // numbers and durations
	Punct       // ( ) { } [ ] , and operators
)

// Token is one lexical token of an expression.
type Token struct {
	Kind Kind
	Text string
}

func isIdentStart(r rune) bool { return r == '_' || r == ':' || unicode.IsLetter(r) }
func isIdentPart(r rune) bool  { return isIdentStart(r) || unicode.IsDigit(r) }

// Tokenize splits a PromQL expression. Grafana's $variables must have been
// replaced before (outside strings); a stray $ is an error.
func Tokenize(expr string) ([]Token, error) {
	var out []Token
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
			out = append(out, Token{String, b.String()})
			i = j + 1
		case unicode.IsDigit(r) || (r == '.' && i+1 < len(rs) && unicode.IsDigit(rs[i+1])):
			// Numbers, 1e-3, 0x1f and durations such as 5m or 1h30m.
			j := i
			for j < len(rs) && (unicode.IsDigit(rs[j]) || unicode.IsLetter(rs[j]) || rs[j] == '.' ||
				((rs[j] == '+' || rs[j] == '-') && (rs[j-1] == 'e' || rs[j-1] == 'E'))) {
				j++
			}
			out = append(out, Token{Number, string(rs[i:j])})
			i = j
		case isIdentStart(r):
			j := i
			for j < len(rs) && isIdentPart(rs[j]) {
				j++
			}
			out = append(out, Token{Ident, string(rs[i:j])})
			i = j
		case strings.ContainsRune("(){}[],", r):
			out = append(out, Token{Punct, string(r)})
			i++
		case strings.ContainsRune("+-*/%^=!<>~:@", r):
			j := i + 1
			for j < len(rs) && strings.ContainsRune("=~", rs[j]) {
				j++
			}
			out = append(out, Token{Punct, string(rs[i:j])})
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q at offset %d", r, i)
		}
	}
	return out, nil
}

// Funcs are PromQL's functions and aggregations (Prometheus 3.x), the only
// identifiers that may stand before "(".
var Funcs = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time
		ceil changes clamp clamp_max clamp_min cos cosh count_over_time days_in_month day_of_month day_of_week
		day_of_year deg delta deriv exp floor histogram_avg histogram_count histogram_fraction histogram_quantile
		histogram_stddev histogram_stdvar histogram_sum holt_winters double_exponential_smoothing hour idelta
		increase irate label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time
		min_over_time minute month pi predict_linear present_over_time quantile_over_time rad rate resets round
		scalar sgn sin sinh sort sort_desc sort_by_label sort_by_label_desc sqrt stddev_over_time stdvar_over_time
		sum_over_time tan tanh time timestamp vector year info`) {
		Funcs[f] = true
	}
	for a := range Aggregations {
		Funcs[a] = true
	}
}

// Aggregations are the aggregation operators.
var Aggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}
