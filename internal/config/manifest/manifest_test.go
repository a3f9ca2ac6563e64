package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l7lb/l7lb/internal/config"
)

func TestSeedByteForByte(t *testing.T) {
	objs, warnings, err := LoadFiles("testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 || len(objs.Ingresses) != 1 || objs.Len() != 1 {
		t.Fatalf("got %d objects, warnings %v", objs.Len(), warnings)
	}
	ing := objs.Ingresses[0]
	want := config.Origin{File: "testdata/seed.yaml", Line: 1, Object: "Ingress milvus/milvus-demo"}
	if ing.Origin != want {
		t.Errorf("origin %+v, want %+v", ing.Origin, want)
	}
	if got := ing.Object.Annotations["alb.ingress.kubernetes.io/listen-ports"]; got != `[{"HTTPS":443}]` {
		t.Errorf("listen-ports %q", got)
	}
	if p := ing.Object.Spec.Rules[0].HTTP.Paths[0]; p.Backend.Service.Port.Number != 19530 || string(*p.PathType) != "Prefix" {
		t.Errorf("path %+v", p)
	}
	for _, tc := range []struct {
		path []any
		line int
	}{
		{[]any{"metadata", "annotations", "alb.ingress.kubernetes.io/certificate-arn"}, 11},
		{[]any{"spec"}, 13},
		{[]any{"spec", "rules", 0, "http", "paths", 0}, 19},
		{[]any{"spec", "rules", 0, "http", "paths", 0, "backend", "service", "port", "number"}, 25},
		{[]any{"spec", "tls"}, 13}, // missing: nearest parent
	} {
		if got := ing.At(tc.path...).Line; got != tc.line {
			t.Errorf("At(%v) line %d, want %d", tc.path, got, tc.line)
		}
	}
	if got := ing.AtFieldPath("spec.rules[0].http.paths[0].backend").Line; got != 21 {
		t.Errorf("AtFieldPath line %d, want 21", got)
	}
}

func TestParseKinds(t *testing.T) {
	const in = `# leading comment
---
apiVersion: v1
kind: Service
metadata: {name: milvus}
spec:
  ports: [{name: grpc, port: 19530, targetPort: 19530}]
---
# only a comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: milvus}
---
apiVersion: v1
kind: List
items:
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: s1, namespace: milvus, labels: {kubernetes.io/service-name: milvus}}
    addressType: IPv4
    endpoints: [{addresses: [10.0.0.1]}]
  - apiVersion: v1
    kind: Endpoints
    metadata: {name: milvus, namespace: milvus}
    subsets: [{addresses: [{ip: 10.0.0.2}], ports: [{port: 19530}]}]
  - apiVersion: networking.k8s.io/v1
    kind: IngressClass
    metadata: {name: alb}
    spec: {controller: ingress.k8s.aws/alb}
`
	objs, warnings, err := Parse("in.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Services) != 1 || len(objs.EndpointSlices) != 1 || len(objs.Endpoints) != 1 || len(objs.IngressClasses) != 1 {
		t.Fatalf("objects: %+v", objs)
	}
	if s := objs.Services[0]; s.Object.Namespace != "default" || s.Origin.Object != "Service default/milvus" || s.Origin.Line != 3 {
		t.Errorf("service defaulting/origin: %q %+v", s.Object.Namespace, s.Origin)
	}
	if o := objs.Endpoints[0].Origin; o.Line != 23 || o.Object != "Endpoints milvus/milvus" {
		t.Errorf("List item origin %+v", o)
	}
	if o := objs.IngressClasses[0].Origin; o.Object != "IngressClass alb" {
		t.Errorf("cluster-scoped origin %+v", o)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "in.yaml:11: ConfigMap milvus/cfg: v1 ConfigMap is not used by l7lb; skipped") {
		t.Errorf("warnings %v", config.Problems(warnings))
	}
}

func TestParseAnchors(t *testing.T) {
	const in = `apiVersion: v1
kind: Service
metadata:
  name: a
  labels: &l {app: milvus}
  annotations:
    <<: {alb.ingress.kubernetes.io/target-type: ip}
spec:
  selector: *l
  ports: [{port: 0x50}]
`
	objs, _, err := Parse("a.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	s := objs.Services[0].Object
	if s.Spec.Selector["app"] != "milvus" || s.Annotations["alb.ingress.kubernetes.io/target-type"] != "ip" || s.Spec.Ports[0].Port != 80 {
		t.Errorf("decoded %+v", s)
	}
}

func TestParseProblems(t *testing.T) {
	const ingHead = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: x\n  namespace: ns\n"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"flow sequence not closed", "a: 1\nb: 2\nc: [oops\n", []string{"f.yaml:3: invalid YAML: did not find expected ',' or ']'"}},
		{"bad indentation", "a: 1\nb: 2\n  c: 3\n", []string{"f.yaml:3: invalid YAML: mapping values are not allowed"}},
		{"tab", "a: 1\n\tb: 2\n", []string{"f.yaml:2: invalid YAML:"}},
		{"error in second document", ingHead + "spec: {}\n---\na: b: c\n", []string{"f.yaml:8: invalid YAML:"}},
		{"unknown field", ingHead + "spec:\n  rules:\n  - host: a\n    htttp: {}\n", []string{`f.yaml:9: Ingress ns/x: unknown field "spec.rules[0].htttp"`}},
		{"unknown top-level field", ingHead + "specs: {}\n", []string{`f.yaml:6: Ingress ns/x: unknown field "specs"`}},
		{"wrong type", ingHead + "spec:\n  rules: {}\n", []string{"f.yaml:7: Ingress ns/x: invalid object: cannot unmarshal"}},
		{"duplicate key", ingHead + "spec: {}\nspec: {}\n", []string{`f.yaml:7: invalid YAML: duplicate key "spec" (first at line 6)`}},
		{"missing name", "apiVersion: v1\nkind: Service\nmetadata: {namespace: a}\n", []string{"f.yaml:3: Service: metadata.name is required"}},
		{"missing kind", "apiVersion: v1\nmetadata: {name: a}\n", []string{"f.yaml:1: object default/a: apiVersion and kind are required"}},
		{"not a mapping", "- a\n- b\n", []string{"f.yaml:1: a Kubernetes object must be a YAML mapping"}},
		{"old Ingress API", "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: a}\n", []string{"f.yaml:1: Ingress default/a: apiVersion extensions/v1beta1 of Ingress is not supported"}},
		{"defined twice", ingHead + "---\n" + ingHead, []string{"f.yaml:7: Ingress ns/x: defined twice; first at f.yaml:1"}},
		{"all problems reported", ingHead + "specs: {}\n---\n" + "apiVersion: v1\nkind: Service\nmetadata: {}\n", []string{"2 problems:", `unknown field "specs"`, "metadata.name is required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse("f.yaml", []byte(tc.in))
			if err == nil {
				t.Fatal("no error")
			}
			if _, ok := err.(config.Problems); !ok {
				t.Errorf("error is %T, want config.Problems", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadFilesDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n")
	write("a.yml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n")
	write("notes.txt", "not yaml: [")
	objs, _, err := LoadFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Services) != 2 || objs.Services[0].Object.Name != "a" || objs.Services[1].Object.Name != "b" {
		t.Errorf("services %+v", objs.Services)
	}

	write("c.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n")
	_, _, err = LoadFiles(dir, filepath.Join(dir, "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:1: Service default/a: defined twice; first at "+filepath.Join(dir, "a.yml")+":1") ||
		!strings.Contains(err.Error(), "missing.yaml: cannot read manifest") {
		t.Errorf("error %v", err)
	}
}
