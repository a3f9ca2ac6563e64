package dashboard

import (
	"reflect"
	"testing"
)

// TestExtract: the names the tokeniser reads. The wanted metric lists are
// what Prometheus's parser (v0.316.0, parser.Inspect over the
// VectorSelectors) reports for the same expressions.
func TestExtract(t *testing.T) {
	type sel struct {
		metric string
		labels []string
	}
	for _, tc := range []struct {
		name     string
		expr     string
		sels     []sel
		grouping []string
		err      bool
	}{
		{"bare metric", `l7lb_in_flight_requests`, []sel{{"l7lb_in_flight_requests", nil}}, nil, false},
		{"aggregation with by before", `sum by (grpc_service, grpc_method) (rate(l7lb_requests_total{job=~"$job", code!~"OK|[1-3].."}[1m]))`,
			[]sel{{"l7lb_requests_total", []string{"job", "code"}}}, []string{"grpc_service", "grpc_method"}, false},
		{"by after", `sum(rate(l7lb_sent_bytes_total[5m])) by (target)`, []sel{{"l7lb_sent_bytes_total", nil}}, []string{"target"}, false},
		{"histogram", `histogram_quantile(0.99, sum by (le) (rate(l7lb_request_duration_seconds_bucket{target!=""}[5m])))`,
			[]sel{{"l7lb_request_duration_seconds_bucket", []string{"target"}}}, []string{"le"}, false},
		{"join", `l7lb_target_latency_ewma_seconds * on (target_group) group_left (algorithm) l7lb_target_group_info{algorithm="peak_ewma"}`,
			[]sel{{"l7lb_target_latency_ewma_seconds", nil}, {"l7lb_target_group_info", []string{"algorithm"}}}, []string{"target_group", "algorithm"}, false},
		{"group_left without list", `a / ignoring (target) group_left b`, []sel{{"a", nil}, {"b", nil}}, []string{"target"}, false},
		{"name matcher", `{__name__="l7lb_gomaxprocs", instance="x"}`, []sel{{"l7lb_gomaxprocs", []string{"instance"}}}, nil, false},
		{"time and numbers", `(l7lb_certificate_not_after_timestamp_seconds - time()) / 86400 > 1e3`,
			[]sel{{"l7lb_certificate_not_after_timestamp_seconds", nil}}, nil, false},
		{"offset and subquery", `max_over_time(rate(x[1m])[10m:30s] offset 1h)`, []sel{{"x", nil}}, nil, false},
		{"keywords are not metrics", `a and b or c unless d > bool 1`, []sel{{"a", nil}, {"b", nil}, {"c", nil}, {"d", nil}}, nil, false},
		{"strings hide names", `l7lb_requests_total{code="sum by (x)"}`, []sel{{"l7lb_requests_total", []string{"code"}}}, nil, false},
		{"unknown function", `rat(x[1m])`, nil, nil, true},
		{"unterminated string", `x{a="b}`, nil, nil, true},
		{"bad matcher", `x{a}`, nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := extract(tc.expr)
			if tc.err {
				if err == nil {
					t.Fatalf("no error; got %+v", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []sel
			for _, s := range n.selectors {
				got = append(got, sel{s.metric, s.labels})
			}
			if !reflect.DeepEqual(got, tc.sels) {
				t.Errorf("selectors %+v, want %+v", got, tc.sels)
			}
			if !reflect.DeepEqual(n.grouping, tc.grouping) {
				t.Errorf("grouping %v, want %v", n.grouping, tc.grouping)
			}
		})
	}
}
