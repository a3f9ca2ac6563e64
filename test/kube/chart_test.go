package kube

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestChartInstalls applies charts/l7lb, rendered by helm template with the
// dashboard ConfigMap on, to the real API server with server-side apply
// (strict field validation: an unknown or misplaced field is refused) and
// checks that every rendered object is then stored. The ServiceMonitor
// (off by default) is not applied: this API server has no Prometheus
// Operator CRDs; test/chart checks what it selects and scrapes.
func TestChartInstalls(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	helm := filepath.Join(binDir(), "helm-v4.3.2")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("%s missing: run tools/helm/install.sh", helm)
	}
	ensureNamespace(t, ctx, "l7lb-chart")
	cmd := exec.CommandContext(ctx, helm, "template", "chart", "../../charts/l7lb", "--namespace", "l7lb-chart",
		"--set", "dashboard.enabled=true,ingressClass.name=l7lb-chart-test,accessLog.destination=stdout,accessLog.sample=10,certificates.namespace=l7lb-chart")
	rendered, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "chart.yaml"), rendered, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := shared.kubectlRun(ctx, dir, "apply", "--server-side", "--field-manager=helm-test", "-f", "chart.yaml", "-o", "name")
	if err != nil {
		t.Fatalf("kubectl apply --server-side: %v\n%s", err, out)
	}
	t.Logf("accepted by the API server:\n%s", out)
	want := []string{
		"serviceaccount/chart-l7lb", "clusterrole.rbac.authorization.k8s.io/chart-l7lb-controller",
		"clusterrolebinding.rbac.authorization.k8s.io/chart-l7lb-controller", "role.rbac.authorization.k8s.io/chart-l7lb-leader-election",
		"rolebinding.rbac.authorization.k8s.io/chart-l7lb-leader-election", "service/chart-l7lb", "service/chart-l7lb-metrics", "deployment.apps/chart-l7lb",
		"poddisruptionbudget.policy/chart-l7lb", "ingressclass.networking.k8s.io/l7lb-chart-test", "configmap/chart-l7lb-dashboard",
	}
	for _, name := range want {
		if !strings.Contains(out, name) {
			t.Errorf("%s not in the applied objects", name)
			continue
		}
		got, err := shared.kubectlRun(ctx, dir, "get", "-n", "l7lb-chart", name, "-o", "name")
		if err != nil || strings.TrimSpace(got) != name {
			t.Errorf("kubectl get %s: %v %q", name, err, got)
		}
	}
	// The security settings survived validation and defaulting.
	sc, err := shared.kubectlRun(ctx, dir, "get", "-n", "l7lb-chart", "deployment/chart-l7lb", "-o",
		"jsonpath={.spec.template.spec.securityContext.runAsUser} {.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem} {.spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation}")
	if err != nil || sc != "65532 true false" {
		t.Errorf("Deployment security context = %q (%v); want 65532 true false", sc, err)
	}
	t.Cleanup(func() {
		shared.kubectlRun(ctx, dir, "delete", "--ignore-not-found", "-f", "chart.yaml") //nolint:errcheck // best effort for -count=N
	})
}
