package promql

import (
	"math"
	"sort"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

// store holds the series used by the cases: samples at t0, t0+1s, t0+2s.
func store() *Store {
	s := NewStore()
	add := func(l Labels, vals ...float64) {
		for i, v := range vals {
			s.Add(l, t0.Add(time.Duration(i)*time.Second), v)
		}
	}
	req := func(tg, target, code string) Labels {
		return Labels{"__name__": "req_total", "tg": tg, "target": target, "code": code}
	}
	add(req("a", "t1", "OK"), 0, 10, 20)        // 10/s
	add(req("a", "t2", "OK"), 0, 20, 40)        // 20/s
	add(req("a", "t2", "UNAVAILABLE"), 0, 1, 2) // 1/s
	add(req("b", "t3", "200"), 100, 110, 5)     // reset: (10 + 5) / 2 s
	add(req("b", "t3", "OKAY"), 0, 2, 4)        // not matched by OK|[1-3].. (anchored)
	add(Labels{"__name__": "info", "tg": "a", "algorithm": "p2c"}, 1, 1, 1)
	add(Labels{"__name__": "ewma", "tg": "a", "target": "t1"}, 0.5, 0.5, 0.25)
	add(Labels{"__name__": "state", "target": "t1", "s": "healthy"}, 1, 1, 1)
	add(Labels{"__name__": "state", "target": "t1", "s": "unhealthy"}, 0, 0, 0)
	add(Labels{"__name__": "not_after"}, 0, 0, float64(t0.Unix()+2+86400*3))
	for _, b := range []struct {
		le     string
		counts []float64
	}{{"0.1", []float64{0, 5, 10}}, {"0.5", []float64{0, 10, 20}}, {"+Inf", []float64{0, 20, 40}}} {
		add(Labels{"__name__": "dur_bucket", "tg": "a", "le": b.le}, b.counts...)
	}
	return s
}

func TestEval(t *testing.T) {
	s := store()
	at := t0.Add(2 * time.Second)
	for _, tc := range []struct {
		expr string
		want map[string]float64 // labels → value; a scalar is "scalar"
	}{
		{`rate(req_total{target="t1"}[5s])`, map[string]float64{`{code="OK", target="t1", tg="a"}`: 10}},
		{`rate(req_total{tg="b", code="200"}[5s])`, map[string]float64{`{code="200", target="t3", tg="b"}`: 7.5}},
		{`increase(req_total{target="t1"}[4s])`, map[string]float64{`{code="OK", target="t1", tg="a"}`: 40}},
		{`sum by (tg) (rate(req_total[5s]))`, map[string]float64{`{tg="a"}`: 31, `{tg="b"}`: 9.5}},
		{`sum(rate(req_total{code!~"OK|[1-3].."}[5s]))`, map[string]float64{`{}`: 3}},
		{`sum(rate(req_total{code!~"OK|[1-3].."}[5s])) / sum(rate(req_total[5s]))`, map[string]float64{`{}`: 3 / 40.5}},
		{`max by (tg) (req_total)`, map[string]float64{`{tg="a"}`: 40, `{tg="b"}`: 5}},
		{`count(req_total)`, map[string]float64{`{}`: 5}},
		{`sum by (tg, target) (rate(req_total{tg="a"}[5s])) / ignoring (target) group_left () sum by (tg) (rate(req_total{tg="a"}[5s]))`,
			map[string]float64{`{target="t1", tg="a"}`: 10.0 / 31, `{target="t2", tg="a"}`: 21.0 / 31}},
		{`ewma * on (tg) group_left (algorithm) info`, map[string]float64{`{algorithm="p2c", target="t1", tg="a"}`: 0.25}},
		{`max by (target, s) (state) == 1`, map[string]float64{`{s="healthy", target="t1"}`: 1}},
		{`histogram_quantile(0.25, sum by (tg, le) (rate(dur_bucket[5s])))`, map[string]float64{`{tg="a"}`: 0.1}},
		{`histogram_quantile(0.375, sum by (tg, le) (rate(dur_bucket[5s])))`, map[string]float64{`{tg="a"}`: 0.3}},
		{`histogram_quantile(0.5, sum by (tg, le) (rate(dur_bucket[5s])))`, map[string]float64{`{tg="a"}`: 0.5}},
		{`histogram_quantile(0.99, sum by (tg, le) (rate(dur_bucket[5s])))`, map[string]float64{`{tg="a"}`: 0.5}},
		{`(not_after - time()) / 86400`, map[string]float64{`{}`: 3}},
		{`time() - max(not_after)`, map[string]float64{`{}`: -86400 * 3}},
		{`2 * 3 + 1`, map[string]float64{"scalar": 7}},
		{`rate(req_total{tg="none"}[5s])`, map[string]float64{}},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			n, err := Parse(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			v, err := s.Eval(n, at)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			switch v := v.(type) {
			case Scalar:
				got["scalar"] = float64(v)
			case Vector:
				for _, e := range v {
					got[e.Labels.String()] = e.V
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, w := range tc.want {
				if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-9 {
					t.Errorf("%s = %v (present %v), want %v; all %v", k, g, ok, w, got)
				}
			}
		})
	}
}

// TestEvalWindow: a range looks back only as far as it says, and an
// instant selector finds nothing before the first sample.
func TestEvalWindow(t *testing.T) {
	s := store()
	n, _ := Parse(`rate(req_total{target="t1"}[1500ms])`)
	v, err := s.Eval(n, t0.Add(2*time.Second))
	if err != nil || len(v.(Vector)) != 1 || v.(Vector)[0].V != 10 {
		t.Errorf("1.5 s window = %v, %v", v, err)
	}
	v, _ = s.Eval(n, t0)
	if len(v.(Vector)) != 0 {
		t.Errorf("rate from one sample = %v, want nothing", v)
	}
	sel, _ := Parse(`req_total`)
	if v, _ := s.Eval(sel, t0.Add(-time.Second)); len(v.(Vector)) != 0 {
		t.Errorf("instant before the first sample = %v", v)
	}
}

func TestParseRefuses(t *testing.T) {
	for expr, want := range map[string]string{
		`rat(x[5m])`:                  "unknown function rat",
		`irate(x[5m])`:                "function irate is not supported",
		`x * on (a) group_right () y`: "group_right is not supported",
		`x or y`:                      "set operator or",
		`rate(x)`:                     "needs a range selector",
		`x{a=~"("}`:                   "matcher",
		`sum by (a) (x`:               `want ")"`,
		`x[5q]`:                       "bad duration",
		`topk(3, x)`:                  "aggregation topk is not supported",
		`x offset 5m`:                 "offset",
		`histogram_quantile(0.5)`:     "takes 2 arguments",
	} {
		_, err := Parse(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", expr, err, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"5s": 5 * time.Second, "1h30m": 90 * time.Minute, "500ms": 500 * time.Millisecond, "2d": 48 * time.Hour} {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", s, got, err)
		}
	}
	keys := []string{}
	for k := range Funcs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) < 50 {
		t.Errorf("Funcs has %d names", len(keys))
	}
}
