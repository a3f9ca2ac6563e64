package route

import (
	"math"
	"net/http"
	"net/netip"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/l7lb/l7lb/internal/config"
)

func TestWildcard(t *testing.T) {
	tests := []struct {
		p, s string
		fold bool
		want bool
	}{
		{"*", "", false, true},
		{"*", "anything", false, true},
		{"abc", "abc", false, true},
		{"abc", "ABC", false, false},
		{"abc", "ABC", true, true},
		{"a?c", "abc", false, true},
		{"a?c", "ac", false, false},
		{"*.example.com", "a.b.example.com", true, true},
		{"*.example.com", "example.com", true, false},
		{"books_*", "books_2024", false, true},
		{"books_*", "book", false, false},
		{"*a*b*c*", "xxaxxbxxcxx", false, true},
		{"*a*b*c*", "xxaxxcxxbxx", false, false},
		{"a*", "a", false, true},
		{"?", "", false, false},
		{"", "", false, true},
		{"", "x", false, false},
	}
	for _, tc := range tests {
		if got := wildcard(tc.p, tc.s, tc.fold); got != tc.want {
			t.Errorf("wildcard(%q, %q, %v) = %v, want %v", tc.p, tc.s, tc.fold, got, tc.want)
		}
	}
}

// conditionTable has one rule per kind of condition, in front of a
// catch-all, so a request names the first condition it meets.
func conditionTable() *Table[string] {
	rules := []config.Rule{
		{Name: "header", Conditions: []config.Condition{{Field: config.ConditionHTTPHeader, HeaderName: "dbname", Values: []string{"analytics", "report?"}}}},
		{Name: "host-and-method", Conditions: []config.Condition{
			{Field: config.ConditionHostHeader, Values: []string{"*.milvus.io"}},
			{Field: config.ConditionHTTPRequestMethod, Values: []string{"PUT", "DELETE"}},
		}},
		{Name: "path", Conditions: []config.Condition{{Field: config.ConditionPathPattern, Values: []string{"/v2/vectordb/*/search"}}}},
		{Name: "query", Conditions: []config.Condition{{Field: config.ConditionQueryString, QueryString: []config.QueryPair{{Key: "version", Value: "v2*"}, {Value: "canary"}}}}},
		{Name: "source", Conditions: []config.Condition{{Field: config.ConditionSourceIP, Values: []string{"10.0.0.0/8", "2001:db8::/32"}}}},
		{Name: "any"},
	}
	for i := range rules {
		rules[i].Path, rules[i].PathType, rules[i].TargetGroup = "/", config.PathPrefix, rules[i].Name
	}
	return Compile(rules, func(tg string) string { return tg })
}

func TestConditions(t *testing.T) {
	tab := conditionTable()
	v4 := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"h2 header, case-insensitive value", Request{Fields: []hpack.HeaderField{{Name: "dbname", Value: "ANALYTICS"}}, Client: v4}, "header"},
		{"h2 header, wildcard", Request{Fields: []hpack.HeaderField{{Name: "dbname", Value: "report7"}}, Client: v4}, "header"},
		{"h2 header, other value", Request{Fields: []hpack.HeaderField{{Name: "dbname", Value: "default"}}, Client: v4}, "any"},
		{"h2 header, second of two", Request{Fields: []hpack.HeaderField{{Name: "dbname", Value: "x"}, {Name: "dbname", Value: "analytics"}}, Client: v4}, "header"},
		{"net/http header", Request{Header: http.Header{"Dbname": {"analytics"}}, Client: v4}, "header"},
		{"host and method both hold", Request{Host: "a.milvus.io", Method: "PUT", Client: v4}, "host-and-method"},
		{"host holds, method does not (ANDed)", Request{Host: "a.milvus.io", Method: "GET", Client: v4}, "any"},
		{"method is case-sensitive", Request{Host: "a.milvus.io", Method: "put", Client: v4}, "any"},
		{"path pattern", Request{Path: "/v2/vectordb/entities/search", Client: v4}, "path"},
		{"path pattern is case-sensitive", Request{Path: "/v2/vectordb/entities/SEARCH", Client: v4}, "any"},
		{"query key and value", Request{Query: "a=1&Version=V2.4", Client: v4}, "query"},
		{"query value only, any key", Request{Query: "track=canary", Client: v4}, "query"},
		{"query percent-encoded", Request{Query: "version=v2%2E6", Client: v4}, "query"},
		{"query no match", Request{Query: "version=v1", Client: v4}, "any"},
		{"source v4", Request{Client: netip.MustParseAddr("10.1.2.3")}, "source"},
		{"source v4-mapped v6", Request{Client: netip.MustParseAddr("::ffff:10.1.2.3")}, "source"},
		{"source v6", Request{Client: netip.MustParseAddr("2001:db8::1")}, "source"},
		{"source outside", Request{Client: netip.MustParseAddr("2001:db9::1")}, "any"},
	}
	for _, tc := range tests {
		r, need := tab.Match(&tc.req)
		if need || r == nil || r.Dest != tc.want {
			t.Errorf("%s: got %v (needBody %v), want %s", tc.name, r, need, tc.want)
		}
	}
}

func TestCollectionStages(t *testing.T) {
	rules := []config.Rule{
		{Name: "grpc-search", Path: "/milvus.proto.milvus.MilvusService/Search", PathType: config.PathExact, TargetGroup: "search"},
		{Name: "books", Path: "/", PathType: config.PathPrefix, TargetGroup: "b",
			Conditions: []config.Condition{{Field: config.ConditionHTTPHeader, HeaderName: "dbname", Values: []string{"lib"}},
				{Field: config.ConditionCollection, Values: []string{"books", "books_*"}}}},
		{Name: "rest", Path: "/", PathType: config.PathPrefix, TargetGroup: "rest"},
	}
	tab := Compile(rules, func(tg string) string { return tg })
	if !tab.NeedsBody() || !tab.rules[1].NeedsBody() || tab.rules[0].NeedsBody() {
		t.Fatal("NeedsBody wrong")
	}
	lib := []hpack.HeaderField{{Name: "dbname", Value: "lib"}}
	// A rule before the collection rule decides at once.
	if r, need := tab.Match(&Request{Path: "/milvus.proto.milvus.MilvusService/Search", Fields: lib}); need || r.Dest != "search" {
		t.Errorf("earlier rule: %v %v", r, need)
	}
	// Other conditions of the collection rule fail: no need to wait.
	if r, need := tab.Match(&Request{Path: "/milvus.proto.milvus.MilvusService/Query"}); need || r.Dest != "rest" {
		t.Errorf("header fails: %v %v", r, need)
	}
	if r, need := tab.Match(&Request{Path: "/milvus.proto.milvus.MilvusService/Query", Fields: lib}); !need || r != nil {
		t.Errorf("headers stage: %v %v, want needBody", r, need)
	}
	for coll, want := range map[string]string{"books": "b", "books_2": "b", "Books": "rest", "": "rest"} {
		r, need := tab.Match(&Request{Path: "/milvus.proto.milvus.MilvusService/Query", Fields: lib, Stage: Body, Collection: coll})
		if need || r.Dest != want {
			t.Errorf("collection %q: %v %v, want %s", coll, r, need, want)
		}
	}
	if r, need := tab.Match(&Request{Path: "/v2/vectordb/entities/query", Fields: lib, Stage: NoBody}); need || r.Dest != "rest" {
		t.Errorf("no body: %v %v", r, need)
	}
}

// TestPickFollowsWeights draws many times and checks each group's share
// against its weight within 5 standard deviations of the binomial
// (a false alarm about once in 3 million runs).
func TestPickFollowsWeights(t *testing.T) {
	rules := []config.Rule{{Name: "w", Path: "/", PathType: config.PathPrefix, Action: &config.Action{Type: config.ActionForward,
		TargetGroups: []config.WeightedTargetGroup{{TargetGroup: "blue", Weight: 80}, {TargetGroup: "green", Weight: 20}, {TargetGroup: "off", Weight: 0}}}}}
	r, _ := Compile(rules, func(tg string) string { return tg }).Match(&Request{Path: "/"})
	const n = 100000
	got := map[string]int{}
	for range n {
		got[r.Pick()]++
	}
	if got["off"] != 0 {
		t.Errorf("weight 0 got %d picks", got["off"])
	}
	for tg, w := range map[string]float64{"blue": 0.8, "green": 0.2} {
		sd := math.Sqrt(n * w * (1 - w))
		if d := math.Abs(float64(got[tg]) - n*w); d > 5*sd {
			t.Errorf("%s: %d of %d picks, want %.0f ± %.0f", tg, got[tg], n, n*w, 5*sd)
		}
	}
	one, _ := Compile([]config.Rule{{Name: "one", Path: "/", PathType: config.PathPrefix, Action: &config.Action{Type: config.ActionForward,
		TargetGroups: []config.WeightedTargetGroup{{TargetGroup: "blue", Weight: 0}, {TargetGroup: "green", Weight: 5}}}}},
		func(tg string) string { return tg }).Match(&Request{Path: "/"})
	for range 100 {
		if one.Pick() != "green" {
			t.Fatal("100/0 flipped: a weight-0 group was picked")
		}
	}
}

func BenchmarkMatchConditions(b *testing.B) {
	tab := conditionTable()
	req := Request{Host: "x.milvus.io", Path: "/milvus.proto.milvus.MilvusService/Search", Method: "POST", Query: "",
		Fields: []hpack.HeaderField{{Name: "content-type", Value: "application/grpc"}, {Name: "dbname", Value: "default"}},
		Client: netip.MustParseAddr("192.0.2.1")}
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := tab.Match(&req); r == nil || r.Dest != "any" {
			b.Fatal("wrong rule")
		}
	}
}

func BenchmarkPickWeighted(b *testing.B) {
	rules := []config.Rule{{Name: "w", Path: "/", PathType: config.PathPrefix, Action: &config.Action{Type: config.ActionForward,
		TargetGroups: []config.WeightedTargetGroup{{TargetGroup: "blue", Weight: 50}, {TargetGroup: "green", Weight: 50}}}}}
	r, _ := Compile(rules, func(tg string) string { return tg }).Match(&Request{Path: "/"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r.Pick() == "" {
				b.Fatal("no pick")
			}
		}
	})
}
