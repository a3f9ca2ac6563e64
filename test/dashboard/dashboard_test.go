// Package dashboard checks the Grafana dashboard shipped in the chart
// (charts/l7lb/dashboards/l7lb.json) against a running l7lb: every PromQL
// query of every panel and template variable may name only metrics and
// labels that l7lb really exports. l7lb runs as its own process in front
// of a fakemilvus cluster; the test drives traffic and the events the
// panels count (an error status, a failed TLS handshake, connections
// over --max-conns, retries, an ejection, fail-open) so that their series
// exist, scrapes /metrics and compares.
package dashboard

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/lbtest"
)

// DashboardFile is the dashboard, relative to this package.
const DashboardFile = "../../charts/l7lb/dashboards/l7lb.json"

var binary string

func TestMain(m *testing.M) { os.Exit(lbtest.RunWithL7LB(m, &binary)) }

// scrapeLabels are added by Prometheus when it scrapes (the target's job
// and instance), not exported by l7lb; the dashboard selects on them.
var scrapeLabels = []string{"job", "instance"}

// Health checks every 2 s with threshold 2, so that states change within
// seconds.
const fastHealth = `    alb.ingress.kubernetes.io/healthcheck-interval-seconds: "2"
    alb.ingress.kubernetes.io/healthcheck-timeout-seconds: "1"
    alb.ingress.kubernetes.io/healthy-threshold-count: "2"
    alb.ingress.kubernetes.io/unhealthy-threshold-count: "2"`

// maxConns is l7lb's --max-conns here: small, so that a few idle
// connections make it reject one.
const maxConns = 8

// exported is what one scrape of /metrics holds: for every series name
// (histogram and summary families expanded into _bucket/_sum/_count and
// quantile series) the label names and the values seen for each.
type exported map[string]map[string]map[string]bool

func (e exported) add(name string, labels []*dto.LabelPair, extra ...string) {
	if e[name] == nil {
		e[name] = map[string]map[string]bool{}
	}
	put := func(l, v string) {
		if e[name][l] == nil {
			e[name][l] = map[string]bool{}
		}
		e[name][l][v] = true
	}
	for _, lp := range labels {
		put(lp.GetName(), lp.GetValue())
	}
	for i := 0; i+1 < len(extra); i += 2 {
		put(extra[i], extra[i+1])
	}
}

func parseExposition(r io.Reader) (exported, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := exported{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				for _, b := range m.GetHistogram().GetBucket() {
					out.add(name+"_bucket", m.GetLabel(), "le", fmt.Sprint(b.GetUpperBound()))
				}
				out.add(name+"_bucket", m.GetLabel(), "le", "+Inf")
				out.add(name+"_sum", m.GetLabel())
				out.add(name+"_count", m.GetLabel())
			case dto.MetricType_SUMMARY:
				for _, q := range m.GetSummary().GetQuantile() {
					out.add(name, m.GetLabel(), "quantile", fmt.Sprint(q.GetQuantile()))
				}
				out.add(name+"_sum", m.GetLabel())
				out.add(name+"_count", m.GetLabel())
			default:
				out.add(name, m.GetLabel())
			}
		}
	}
	return out, nil
}

// query is one PromQL text of the dashboard and where it is.
type query struct {
	where string // panel title / refId, or the variable's name
	expr  string
	// label is the label a label_values() variable lists ("" otherwise).
	label string
}

// dashboardQueries returns every panel target's expr (rows' nested
// panels included) and every query variable's label_values() query.
func dashboardQueries(raw []byte) ([]query, error) {
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	var out []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out = append(out, query{where: fmt.Sprintf("panel %q target %s", p.Title, t.RefID), expr: t.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := ""
		switch x := v.Query.(type) {
		case string:
			q = x
		case map[string]any:
			q, _ = x["query"].(string)
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			return nil, fmt.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q)
		}
		out = append(out, query{where: "variable " + v.Name, expr: m[1], label: m[2]})
	}
	return out, nil
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// grafanaVars are Grafana's interval variables, replaced by a duration
// before the expression is read (template variables only occur inside
// label values, which are strings).
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "${__rate_interval}", "1m", "$__interval", "1m", "$__range", "1h")

// check returns every problem of q against what l7lb exports.
func check(q query, exp exported) []string {
	n, err := extract(grafanaVars.Replace(q.expr))
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", q.where, err)}
	}
	var problems []string
	if len(n.selectors) == 0 {
		problems = append(problems, fmt.Sprintf("%s: %q selects no metric", q.where, q.expr))
	}
	has := func(metric, label string) bool {
		return slices.Contains(scrapeLabels, label) || exp[metric][label] != nil
	}
	var metrics []string
	for _, s := range n.selectors {
		if s.metric == "" {
			problems = append(problems, fmt.Sprintf("%s: a selector without a metric name in %q", q.where, q.expr))
			continue
		}
		if exp[s.metric] == nil {
			problems = append(problems, fmt.Sprintf("%s: metric %s is not exported", q.where, s.metric))
			continue
		}
		metrics = append(metrics, s.metric)
		for _, l := range s.labels {
			if !has(s.metric, l) {
				problems = append(problems, fmt.Sprintf("%s: metric %s has no label %s", q.where, s.metric, l))
			}
		}
		for l, v := range s.equals {
			if vals := exp[s.metric][l]; vals != nil && !vals[v] {
				problems = append(problems, fmt.Sprintf("%s: %s{%s=%q} matches no exported series (values: %v)", q.where, s.metric, l, v, sortedKeys(vals)))
			}
		}
	}
	// A by/on/... label must be one of the expression's metrics' labels.
	// (Without a full parser the scope is the whole expression, not the
	// aggregation it belongs to.)
	grouping := n.grouping
	if q.label != "" {
		grouping = append(grouping, q.label)
	}
	for _, l := range grouping {
		if !slices.ContainsFunc(metrics, func(m string) bool { return has(m, l) }) {
			problems = append(problems, fmt.Sprintf("%s: label %s is exported by none of %v", q.where, l, metrics))
		}
	}
	return problems
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestDashboardQueriesNameExportedSeries(t *testing.T) {
	raw, err := os.ReadFile(DashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	queries, err := dashboardQueries(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) < 30 {
		t.Fatalf("only %d queries in %s", len(queries), DashboardFile)
	}

	cluster, err := fakemilvus.Start(fakemilvus.Options{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	lb := lbtest.StartProcess(t, lbtest.ProcOptions{Binary: binary, Targets: cluster.Addrs(), Annotations: fastHealth,
		Args: []string{"--max-conns", fmt.Sprint(maxConns)}, CAName: "dashboard test CA"})
	exp := driveEvents(t, lb, cluster)

	used := map[string]bool{}
	for _, q := range queries {
		for _, p := range check(q, exp) {
			t.Error(p)
		}
		if n, err := extract(grafanaVars.Replace(q.expr)); err == nil {
			for _, s := range n.selectors {
				used[s.metric] = true
			}
		}
	}
	t.Logf("%d queries, %d metrics: %v", len(queries), len(used), sortedKeys(used))

	// The check must fail on what does not exist: each of these is
	// reported against the same scrape.
	for _, tc := range []struct {
		name, expr, label, want string
	}{
		{"bogus metric", `sum(rate(l7lb_bogus_requests_total{job=~"$job"}[$__rate_interval]))`, "", "metric l7lb_bogus_requests_total is not exported"},
		{"bogus matcher label", `sum(rate(l7lb_requests_total{grpc_status="OK"}[5m]))`, "", "metric l7lb_requests_total has no label grpc_status"},
		{"bogus by label", `sum by (method) (rate(l7lb_requests_total[5m]))`, "", "label method is exported by none of"},
		{"label of another metric", `sum by (tls_version) (rate(l7lb_requests_total[5m]))`, "", "label tls_version is exported by none of"},
		{"bucket of a counter", `histogram_quantile(0.99, sum by (le) (rate(l7lb_requests_total_bucket[5m])))`, "", "metric l7lb_requests_total_bucket is not exported"},
		{"le on a counter", `l7lb_requests_total{le="1"}`, "", "metric l7lb_requests_total has no label le"},
		{"misspelt function", `sum(rat(l7lb_requests_total[5m]))`, "", "unknown function rat"},
		{"value never exported", `l7lb_target_health_state{state="dead"}`, "", `l7lb_target_health_state{state="dead"} matches no exported series`},
		{"variable's label", `l7lb_build_info`, "target_group", "label target_group is exported by none of"},
	} {
		t.Run("reports "+tc.name, func(t *testing.T) {
			got := check(query{where: tc.name, expr: tc.expr, label: tc.label}, exp)
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("%q: problems %q, want one containing %q", tc.expr, got, tc.want)
			}
		})
	}
}

// driveEvents makes l7lb produce every series the dashboard reads and
// returns the scrape that holds them all.
func driveEvents(t *testing.T, lb *lbtest.Proc, cluster *fakemilvus.Cluster) exported {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	creds := credentials.NewTLS(&tls.Config{RootCAs: lb.CA.Pool(), ServerName: lbtest.ServerName})
	cc, err := grpc.NewClient(lb.Addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	mc := milvuspb.NewMilvusServiceClient(cc)
	calls := func(n int) {
		for i := 0; i < n; i++ {
			// Errors are expected while replicas are not ready; the
			// series are what counts here.
			mc.ShowCollections(ctx, &milvuspb.ShowCollectionsRequest{}) //nolint:errcheck
			mc.GetVersion(ctx, &milvuspb.GetVersionRequest{})           //nolint:errcheck
			mc.CheckHealth(ctx, &milvuspb.CheckHealthRequest{})         //nolint:errcheck
		}
	}
	calls(20)

	// An error status: a method no server implements (label other/other,
	// code UNIMPLEMENTED).
	err = cc.Invoke(ctx, "/milvus.proto.milvus.MilvusService/NoSuchMethod", &milvuspb.GetVersionRequest{}, &milvuspb.GetVersionResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown method: %v, want Unimplemented", err)
	}

	// A failed TLS handshake: plaintext HTTP on the TLS listener.
	raw, err := net.Dial("tcp", lb.Addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(raw, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") //nolint:errcheck
	io.Copy(io.Discard, raw)                                 //nolint:errcheck // until l7lb closes it
	raw.Close()

	// Connections over --max-conns: idle ones fill the slots, the rest
	// are reset at accept.
	var idle []net.Conn
	for i := 0; i < maxConns+4; i++ {
		c, err := net.Dial("tcp", lb.Addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	waitFor(t, ctx, lb, "a rejected connection", func(e exported) bool { return e["l7lb_client_connections_rejected_total"] != nil })
	for _, c := range idle {
		c.Close()
	}

	// Retries and an ejection: one replica answers ServiceNotReady, which
	// l7lb retries on another target and counts as a passive failure.
	rs := cluster.Replicas()
	rs[0].SetNotReady(true)
	waitFor(t, ctx, lb, "a retry and an ejection", func(e exported) bool {
		calls(5)
		return e["l7lb_retries_total"] != nil && e["l7lb_target_ejections_total"] != nil
	})
	// Fail-open: no replica is ready, so every target turns unhealthy.
	for _, r := range rs {
		r.SetNotReady(true)
	}
	waitFor(t, ctx, lb, "fail-open", func(e exported) bool { calls(1); return e["l7lb_fail_open_total"] != nil })
	for _, r := range rs {
		r.SetNotReady(false)
	}
	calls(5)
	return scrape(t, lb)
}

func scrape(t *testing.T, lb *lbtest.Proc) exported {
	t.Helper()
	resp, err := http.Get("http://" + lb.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	e, err := parseExposition(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// waitFor scrapes until ok or ctx ends (bounded by the caller's
// deadline), at most every 200 ms.
func waitFor(t *testing.T, ctx context.Context, lb *lbtest.Proc, what string, ok func(exported) bool) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if ok(scrape(t, lb)) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("l7lb's metrics never showed %s", what)
		case <-tick.C:
		}
	}
}
