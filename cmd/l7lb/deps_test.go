package main

import (
	"bufio"
	"bytes"
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

// unlinkedPackages are client-go packages that go list -deps still lists,
// because client-go's tools/leaderelection imports them (LeaseCandidate,
// resourcelock.New), but whose code must not be linked: the clientset of
// every API group and the generated informers are what made the binary
// 91 MB (63.7 MB stripped) before kubeclient and the controller's own
// informers (issue 13). Calling kubernetes.NewForConfig or
// informers.NewSharedInformerFactory again would link them all back.
var unlinkedPackages = []string{
	"k8s.io/client-go/kubernetes.",     // the clientset itself, not kubernetes/typed/...
	"k8s.io/client-go/informers.",      // the shared informer factory
	"k8s.io/client-go/informers/",      // every generated informer
	"k8s.io/client-go/kubernetes/fake", // the test clientset
}

// TestProductionSymbols: the built binary (TestMain's) holds no symbol of
// unlinkedPackages.
func TestProductionSymbols(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go tool is not on PATH, so the symbols of the l7lb binary cannot be listed")
	}
	out, err := exec.Command("go", "tool", "nm", binary).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go tool nm %s: %v\n%s", binary, err, msg)
	}
	found := map[string]int{}
	first := map[string]string{}
	symbols := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		symbols++
		name := strings.Join(f[2:], " ") // "addr type name", names may hold spaces
		for _, p := range unlinkedPackages {
			if strings.HasPrefix(name, p) {
				if found[p] == 0 {
					first[p] = name
				}
				found[p]++
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if symbols < 1000 {
		t.Fatalf("go tool nm listed %d symbols, expected tens of thousands", symbols)
	}
	for _, p := range unlinkedPackages {
		if found[p] > 0 {
			t.Errorf("the l7lb binary links %d symbols of %s*, e.g. %s: use kubeclient and the controller's own informers, not kubernetes.NewForConfig or k8s.io/client-go/informers", found[p], p, first[p])
		}
	}
}
