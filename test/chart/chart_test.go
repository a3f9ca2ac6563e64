// Package chart checks charts/l7lb with the helm that tools/helm/install.sh
// builds (v4.3.2 from the Go module proxy, cached in ~/.cache/l7lb): helm
// lint, helm template, and that the chart and deploy/ (kustomize, rendered
// by the kubectl that tools/kube/install.sh builds) describe the same
// Deployment, RBAC and IngressClass. The tests skip only when a binary is
// absent and L7LB_REQUIRE_TOOLS is unset; .ci/run installs both and sets it.
package chart

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func tool(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("L7LB_KUBE_BIN")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "l7lb")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("L7LB_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s missing (L7LB_REQUIRE_TOOLS is set): run tools/helm/install.sh and tools/kube/install.sh", p)
		}
		t.Skipf("%s missing: run tools/helm/install.sh and tools/kube/install.sh", p)
	}
	return p
}

func helm(t *testing.T) string    { return tool(t, "helm-v4.3.2") }
func kubectl(t *testing.T) string { return tool(t, "kubectl-v1.37.2") }

func run(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

func TestLint(t *testing.T) {
	h := helm(t)
	for _, set := range []string{"", "dashboard.enabled=true,ingressClass.default=true", "leaderElection.enabled=false,podDisruptionBudget.minAvailable=null,podDisruptionBudget.maxUnavailable=1"} {
		args := []string{"lint", "--strict", "charts/l7lb"}
		if set != "" {
			args = append(args, "--set", set)
		}
		out := run(t, h, args...)
		t.Logf("helm %s:\n%s", strings.Join(args, " "), out)
		if !bytes.Contains(out, []byte("0 chart(s) failed")) {
			t.Errorf("helm lint with %q did not pass:\n%s", set, out)
		}
	}
}

// objects parses a multi-document YAML stream into kind/name → object.
func objects(t *testing.T, stream []byte) map[string]map[string]any {
	t.Helper()
	m := map[string]map[string]any{}
	for _, doc := range strings.Split(string(stream), "\n---") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("parsing rendered YAML: %v\n%s", err, doc)
		}
		if o == nil {
			continue
		}
		md, _ := o["metadata"].(map[string]any)
		m[fmt.Sprintf("%v/%v", o["kind"], md["name"])] = o
	}
	return m
}

// helmLabels are the labels the chart adds that deploy/ does not have; the
// comparison drops them wherever labels or selectors appear.
var helmLabels = []string{"app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"}

func normalise(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if k == "labels" || k == "matchLabels" || k == "selector" {
				if lm, ok := c.(map[string]any); ok {
					for _, l := range helmLabels {
						delete(lm, l)
					}
				}
			}
			normalise(c)
		}
	case []any:
		for _, c := range x {
			normalise(c)
		}
	}
}

func TestChartMatchesDeploy(t *testing.T) {
	chart := objects(t, run(t, helm(t), "template", "l7lb", "charts/l7lb", "--namespace", "l7lb", "--set", "image.tag=latest"))
	kust := objects(t, run(t, kubectl(t), "kustomize", "deploy"))
	same := []string{
		"Deployment/l7lb", "ServiceAccount/l7lb", "ClusterRole/l7lb-controller", "ClusterRoleBinding/l7lb-controller",
		"Role/l7lb-leader-election", "RoleBinding/l7lb-leader-election", "IngressClass/l7lb", "Service/l7lb",
	}
	for _, key := range same {
		c, k := chart[key], kust[key]
		if c == nil || k == nil {
			t.Errorf("%s: in chart %v, in deploy/ %v", key, c != nil, k != nil)
			continue
		}
		normalise(c)
		normalise(k)
		if !reflect.DeepEqual(c, k) {
			cy, _ := yaml.Marshal(c)
			ky, _ := yaml.Marshal(k)
			t.Errorf("%s differs after dropping helm's labels %v\nchart:\n%s\ndeploy/:\n%s", key, helmLabels, cy, ky)
		}
	}
	// The chart adds a PodDisruptionBudget; deploy/ adds the Namespace
	// (helm install --create-namespace makes it).
	if chart["PodDisruptionBudget/l7lb"] == nil {
		t.Error("chart renders no PodDisruptionBudget by default")
	}
}

// TestArgsAreControllerFlags renders every optional flag and checks that
// `l7lb controller` accepts each name: it parses them, then fails only for
// want of a Kubernetes configuration (exit 1, never 2 for a usage error).
func TestArgsAreControllerFlags(t *testing.T) {
	out := run(t, helm(t), "template", "x", "charts/l7lb", "-s", "templates/deployment.yaml",
		"--set", "certificates.namespace=certs,logLevel=debug,logFormat=json,publish.addresses={10.0.0.1}")
	var d struct {
		Spec struct {
			Template struct {
				Spec struct{ Containers []struct{ Args []string } }
			}
		}
	}
	if err := yaml.Unmarshal(bytes.TrimPrefix(bytes.TrimSpace(out), []byte("---")), &d); err != nil {
		t.Fatal(err)
	}
	args := d.Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"--cert-namespace=certs", "--log-level=debug", "--log-format=json", "--publish-address=10.0.0.1"} {
		if !contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	bin := filepath.Join(t.TempDir(), "l7lb")
	run(t, "go", "build", "-o", bin, "./cmd/l7lb")
	cmd := exec.Command(bin, append(args, "--kubeconfig="+filepath.Join(t.TempDir(), "missing"), "--health-address=")...)
	o, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code == 2 || err == nil {
		t.Fatalf("l7lb %s: exit %d (want 1: flags parsed, no Kubernetes configuration)\n%s", strings.Join(args, " "), code, o)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
