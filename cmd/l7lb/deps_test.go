package main

import (
	"os/exec"
	"strings"
	"testing"
)

// forbiddenDeps are packages the production binary must not link (issue
// 13): they are the demo's and the tests', they weigh tens of megabytes,
// and some run code at start (gopsutil's init, Milvus's paramtable). Each
// entry matches the package itself and everything under it.
var forbiddenDeps = []struct{ prefix, why string }{
	{"github.com/milvus-io/milvus/client", "the Milvus Go SDK (the demo's client; belongs in cmd/l7lb-demo)"},
	{"github.com/milvus-io/milvus/pkg", "Milvus's pkg (paramtable, etcd client; pulled in by the SDK)"},
	{"github.com/shirou/gopsutil", "gopsutil (its init runs, and may panic, at every start)"},
	{"github.com/l7lb/l7lb/internal/fakemilvus", "the test double (l7lb-demo testserver)"},
	{"github.com/l7lb/l7lb/internal/demo", "the demo (go run ./cmd/l7lb-demo)"},
}

// TestProductionDeps: `go list -deps` of this command names none of
// forbiddenDeps. milvus-proto's go-api is allowed: the metrics take method
// names from its descriptors.
func TestProductionDeps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go tool is not on PATH, so the dependencies of cmd/l7lb cannot be listed")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps ./cmd/l7lb: %v\n%s", err, msg)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 10 {
		t.Fatalf("go list -deps ./cmd/l7lb listed %d packages, expected hundreds: %q", len(pkgs), pkgs)
	}
	for _, p := range pkgs {
		for _, f := range forbiddenDeps {
			if p == f.prefix || strings.HasPrefix(p, f.prefix+"/") {
				t.Errorf("cmd/l7lb links %s: %s", p, f.why)
			}
		}
	}
}
