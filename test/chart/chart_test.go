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
	for _, set := range []string{"", "dashboard.enabled=true,ingressClass.default=true", "leaderElection.enabled=false,podDisruptionBudget.minAvailable=null,podDisruptionBudget.maxUnavailable=1",
		"serviceMonitor.enabled=true,accessLog.destination=stdout,accessLog.sample=10,certificates.namespace=certs", "metrics.enabled=false"} {
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
		"Role/l7lb-leader-election", "RoleBinding/l7lb-leader-election", "IngressClass/l7lb", "Service/l7lb", "Service/l7lb-metrics",
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
	if chart["ServiceMonitor/l7lb"] != nil {
		t.Error("chart renders a ServiceMonitor by default (it needs the Prometheus Operator's CRDs)")
	}
}

// TestArgsAreControllerFlags renders every optional flag and checks that
// `l7lb controller` accepts each name: it parses them, then fails only for
// want of a Kubernetes configuration (exit 1, never 2 for a usage error).
func TestArgsAreControllerFlags(t *testing.T) {
	out := run(t, helm(t), "template", "x", "charts/l7lb", "-s", "templates/deployment.yaml",
		"--set", "certificates.namespace=certs,logLevel=debug,logFormat=json,publish.addresses={10.0.0.1},metrics.port=9100,accessLog.destination=stdout,accessLog.sample=10")
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
	for _, want := range []string{"--cert-namespace=certs", "--log-level=debug", "--log-format=json", "--publish-address=10.0.0.1",
		"--admin=:9100", "--access-log=stdout", "--access-log-sample=10"} {
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

// TestServiceMonitor: serviceMonitor.enabled renders a ServiceMonitor that
// selects exactly the metrics Service (by its labels, in its namespace) and
// scrapes the port the container serves /metrics on; and the metrics port
// is never on the load balancer's Service.
func TestServiceMonitor(t *testing.T) {
	objs := objects(t, run(t, helm(t), "template", "rel", "charts/l7lb", "--namespace", "lb",
		"--set", "serviceMonitor.enabled=true,serviceMonitor.interval=15s,serviceMonitor.labels.release=prom,metrics.port=9100"))
	var sm struct {
		APIVersion string `json:"apiVersion"`
		Metadata   struct {
			Namespace string
			Labels    map[string]string
		}
		Spec struct {
			Selector          struct{ MatchLabels map[string]string } `json:"selector"`
			NamespaceSelector struct{ MatchNames []string }           `json:"namespaceSelector"`
			Endpoints         []struct{ Port, Path, Interval string } `json:"endpoints"`
		}
	}
	convert(t, objs["ServiceMonitor/rel-l7lb"], &sm)
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Metadata.Namespace != "lb" || sm.Metadata.Labels["release"] != "prom" {
		t.Errorf("ServiceMonitor %+v", sm)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" || sm.Spec.Endpoints[0].Interval != "15s" {
		t.Errorf("endpoints %+v", sm.Spec.Endpoints)
	}
	if !reflect.DeepEqual(sm.Spec.NamespaceSelector.MatchNames, []string{"lb"}) {
		t.Errorf("namespaceSelector %+v", sm.Spec.NamespaceSelector)
	}
	type service struct {
		Metadata struct{ Labels map[string]string }
		Spec     struct {
			Type     string
			Selector map[string]string
			Ports    []struct {
				Name       string
				Port       int
				TargetPort string `json:"targetPort"`
			}
		}
	}
	// Which Services the selector picks: the metrics one only.
	picked := []string{}
	for key, o := range objs {
		if !strings.HasPrefix(key, "Service/") {
			continue
		}
		var svc service
		convert(t, o, &svc)
		match := true
		for k, v := range sm.Spec.Selector.MatchLabels {
			match = match && svc.Metadata.Labels[k] == v
		}
		if match {
			picked = append(picked, key)
			if svc.Spec.Type != "ClusterIP" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].Port != 9100 || svc.Spec.Ports[0].TargetPort != "metrics" {
				t.Errorf("%s: %+v", key, svc.Spec)
			}
		}
		for _, p := range svc.Spec.Ports {
			if key == "Service/rel-l7lb" && p.Name == "metrics" {
				t.Error("the metrics port is on the load balancer's Service")
			}
		}
	}
	if !reflect.DeepEqual(picked, []string{"Service/rel-l7lb-metrics"}) {
		t.Errorf("the ServiceMonitor selects %v, want the metrics Service only", picked)
	}
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args  []string
						Ports []struct {
							Name          string
							ContainerPort int `json:"containerPort"`
						}
					}
				}
			}
		}
	}
	convert(t, objs["Deployment/rel-l7lb"], &d)
	c := d.Spec.Template.Spec.Containers[0]
	if !contains(c.Args, "--admin=:9100") {
		t.Errorf("args %q lack --admin=:9100", c.Args)
	}
	found := false
	for _, p := range c.Ports {
		found = found || (p.Name == "metrics" && p.ContainerPort == 9100)
	}
	if !found {
		t.Errorf("container ports %+v lack metrics 9100", c.Ports)
	}

	// Without metrics there is nothing to scrape: no port, no Service, and
	// asking for a ServiceMonitor is an error that says why.
	off := objects(t, run(t, helm(t), "template", "rel", "charts/l7lb", "--set", "metrics.enabled=false"))
	if off["Service/rel-l7lb-metrics"] != nil {
		t.Error("metrics Service rendered with metrics.enabled=false")
	}
	cmd := exec.Command(helm(t), "template", "rel", "charts/l7lb", "--set", "metrics.enabled=false,serviceMonitor.enabled=true")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("serviceMonitor.enabled needs metrics.enabled")) {
		t.Errorf("ServiceMonitor without metrics: %v\n%s", err, out)
	}
}

// convert decodes a rendered object into a typed view of it.
func convert(t *testing.T, o map[string]any, into any) {
	t.Helper()
	if o == nil {
		t.Fatal("object not rendered")
	}
	b, err := yaml.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatal(err)
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
