package main

import (
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/promql"
)

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		unit string
		v    float64
		want string
	}{
		{"percentunit", 0.0091, "0.9%"},
		{"s", 0.0123, "12.3 ms"},
		{"s", 0.0000042, "4 µs"},
		{"s", 29, "29 s"},
		{"s", 600, "10 min"},
		{"reqps", 1234, "1.23 K req/s"},
		{"Bps", 149010, "149.01 kB/s"},
		{"d", 19.99, "20 days"},
		{"short", 3, "3"},
		{"", 2.5e6, "2.5 M"},
	} {
		if got := formatValue(tc.unit, tc.v); got != tc.want {
			t.Errorf("formatValue(%q, %v) = %q, want %q", tc.unit, tc.v, got, tc.want)
		}
	}
}

func TestLegend(t *testing.T) {
	l := promql.Labels{"target": "10.0.0.1:19530", "reason": "ServiceNotReady"}
	if got := legend("retry {{reason}} on {{ target }}", l); got != "retry ServiceNotReady on 10.0.0.1:19530" {
		t.Errorf("legend = %q", got)
	}
	if got := legend("", promql.Labels{"__name__": "x", "a": "b"}); got != `{a="b"}` {
		t.Errorf("legend without format = %q", got)
	}
}

// TestPanels: a time series panel gets one line per series over the
// scrape times, a table panel its organize transformation, a stat panel
// its value mapping and threshold colour; a query the evaluator cannot
// run is the panel's error, not a blank.
func TestPanels(t *testing.T) {
	raw := []byte(`{"title":"t","panels":[
	 {"type":"timeseries","title":"rps","gridPos":{"h":8,"w":12,"x":0,"y":0},"fieldConfig":{"defaults":{"unit":"reqps"}},
	  "targets":[{"expr":"sum by (code) (rate(req_total{job=~\"$job\"}[$__rate_interval]))","legendFormat":"{{code}}"}]},
	 {"type":"table","title":"tbl","gridPos":{"h":8,"w":12,"x":12,"y":0},"fieldConfig":{"defaults":{"unit":"d"}},
	  "targets":[{"expr":"req_total / 86400","instant":true}],
	  "transformations":[{"id":"organize","options":{"excludeByName":{"job":true},"renameByName":{"Value":"days"}}}]},
	 {"type":"stat","title":"last","gridPos":{"h":8,"w":6,"x":0,"y":8},"options":{"textMode":"value_and_name"},
	  "fieldConfig":{"defaults":{"thresholds":{"steps":[{"color":"red","value":null},{"color":"green","value":1}]},
	  "mappings":[{"type":"value","options":{"1":{"text":"ok"}}}]}},
	  "targets":[{"expr":"min(ok)","legendFormat":"last reload"}]},
	 {"type":"stat","title":"bad","gridPos":{"h":8,"w":6,"x":6,"y":8},"targets":[{"expr":"irate(ok[1m])"}]}]}`)
	d, err := parseDashboard(raw)
	if err != nil {
		t.Fatal(err)
	}
	s := promql.NewStore()
	t0 := time.Unix(1_000_000, 0)
	var times []time.Time
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Second)
		times = append(times, at)
		s.Add(promql.Labels{"__name__": "req_total", "job": "l7lb", "code": "OK"}, at, float64(10*i))
		s.Add(promql.Labels{"__name__": "req_total", "job": "l7lb", "code": "UNAVAILABLE"}, at, float64(i))
		s.Add(promql.Labels{"__name__": "ok", "job": "l7lb"}, at, 1)
	}
	vars := grafanaVars(4 * time.Second)
	var data []panelData
	for _, p := range d.Panels {
		data = append(data, evaluate(p, s, times, vars))
	}
	ts := data[0]
	if len(ts.lines) != 2 || ts.lines[0].name != "OK" || len(ts.lines[0].pts) != 5 || ts.lines[0].pts[4].v != 10 {
		t.Errorf("time series %+v", ts.lines)
	}
	if tb := data[1]; strings.Join(tb.cols, ",") != "code,days" || len(tb.rows) != 2 {
		t.Errorf("table %v %v", tb.cols, tb.rows)
	}
	if data[3].err == nil || !strings.Contains(data[3].err.Error(), "irate is not supported") {
		t.Errorf("unsupported query: %v", data[3].err)
	}
	page := renderHTML(d, data, "caption")
	for _, want := range []string{"<polyline", ">UNAVAILABLE<", "<th>days</th>", `background:#73BF69`, `<div class="v">ok</div>`, "irate is not supported"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
