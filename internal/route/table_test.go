package route

import (
	"testing"

	"github.com/l7lb/l7lb/internal/config"
)

func TestMatch(t *testing.T) {
	rules := []config.Rule{
		{Name: "exact", Host: "milvus-demo.milvus.io", Path: "/milvus.proto.milvus.MilvusService/Search", PathType: config.PathExact},
		{Name: "prefix-svc", Host: "milvus-demo.milvus.io", Path: "/milvus.proto.milvus.MilvusService", PathType: config.PathPrefix},
		{Name: "wild", Host: "*.example.com", Path: "/", PathType: config.PathPrefix},
		{Name: "api", Path: "/api/", PathType: config.PathPrefix},
		{Name: "root-demo", Host: "milvus-demo.milvus.io", Path: "/", PathType: config.PathPrefix},
	}
	for i := range rules {
		rules[i].TargetGroup = rules[i].Name
	}
	tab := Compile(rules, func(tg string) string { return tg })
	tests := []struct {
		host, path, want string
	}{
		{"milvus-demo.milvus.io", "/milvus.proto.milvus.MilvusService/Search", "exact"},
		{"MILVUS-demo.milvus.io", "/milvus.proto.milvus.MilvusService/Query", "prefix-svc"},
		{"milvus-demo.milvus.io", "/milvus.proto.milvus.MilvusServiceX/Query", "root-demo"},
		{"a.example.com", "/x", "wild"},
		{"a.b.example.com", "/x", ""},
		{"example.com", "/x", ""},
		{"other", "/api", "api"},
		{"other", "/api/v1", "api"},
		{"other", "/apiv1", ""},
		{"", "/grpc.health.v1.Health/Check", ""},
	}
	for _, tc := range tests {
		r, _ := tab.Match(&Request{Host: tc.host, Path: tc.path})
		got := ""
		if r != nil {
			got = r.Dest
		}
		if got != tc.want {
			t.Errorf("Match(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{
		"a.b:443": "a.b", "a.b": "a.b", "[::1]:443": "::1", "127.0.0.1:8443": "127.0.0.1", "::1": "::1", "": "",
	} {
		if got := HostOnly(in); got != want {
			t.Errorf("HostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	rules := []config.Rule{
		{Name: "a", Host: "a.milvus.io", Path: "/x", PathType: config.PathPrefix},
		{Name: "b", Host: "*.example.com", Path: "/", PathType: config.PathPrefix},
		{Name: "demo", Host: "milvus-demo.milvus.io", Path: "/", PathType: config.PathPrefix},
	}
	tab := Compile(rules, func(tg string) int { return len(tg) })
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := tab.Match(&Request{Host: "milvus-demo.milvus.io", Path: "/milvus.proto.milvus.MilvusService/Search"}); r == nil {
			b.Fatal("no match")
		}
	}
}
