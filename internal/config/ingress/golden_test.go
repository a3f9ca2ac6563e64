package ingress

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/manifest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

// goldenCases translate testdata inputs and compare the Snapshot, as
// indented JSON, with testdata/<name>.golden.json. Regenerate with
//
//	go test ./internal/config/ingress -update
//
// and review the diff: it is the behaviour change.
var goldenCases = []struct {
	name  string
	files []string
	opts  func(t *testing.T) Options
}{
	// The seed's ingress.yaml, byte for byte, plus local endpoints.
	{name: "seed", files: []string{"seed.yaml", "seed-endpointslices.yaml"}},
	{name: "seed-flag-endpoints", files: []string{"seed.yaml"}, opts: flagOpts(
		"milvus/milvus-demo=127.0.0.1:19531,127.0.0.1:19532,[::1]:19533")},
	{name: "seed-flag-dns", files: []string{"seed.yaml", "seed-endpointslices.yaml"}, opts: flagOpts(
		"milvus/milvus-demo=dns:milvus-demo.milvus.svc.cluster.local:19530")},
	{name: "multiport", files: []string{"multiport.yaml"}},
	{name: "merged", files: []string{"merged.yaml"}},
	{name: "exact-prefix", files: []string{"exact-prefix.yaml"}},
	{name: "default-backend", files: []string{"default-backend.yaml"}},
	{name: "endpoints-v1", files: []string{"endpoints-v1.yaml"}},
	{name: "service-override", files: []string{"service-override.yaml"}},
	{name: "unknown-annotations", files: []string{"unknown-annotations.yaml"}},
	{name: "ingressclass", files: []string{"ingressclass.yaml"}},
	{name: "algorithms", files: []string{"algorithms.yaml"}},
	{name: "tls-access", files: []string{"tls-access.yaml"}},
	{name: "mtls-redirect", files: []string{"mtls-redirect.yaml"}, opts: func(*testing.T) Options {
		// Both trust stores exist: the ARN of a-verify and the name "partners".
		return Options{KnownTrustStore: func(ref string) bool {
			return ref == "partners" || ref == "arn:l7lb:elasticloadbalancing:local:000000000000:truststore/clients/0123456789abcdef"
		}}
	}},
	{name: "actions", files: []string{"actions.yaml"}},
	{name: "conditions", files: []string{"conditions.yaml"}},
}

func flagOpts(values ...string) func(t *testing.T) Options {
	return func(t *testing.T) Options {
		t.Helper()
		o := Options{Endpoints: map[string][]config.Endpoint{}, DNS: map[string]config.DNSSource{}}
		for _, v := range values {
			key, eps, dns, err := ParseEndpointsFlag(v)
			if err != nil {
				t.Fatal(err)
			}
			if dns != nil {
				o.DNS[key] = *dns
			} else {
				o.Endpoints[key] = eps
			}
		}
		return o
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			var paths []string
			for _, f := range tc.files {
				paths = append(paths, filepath.Join("testdata", f))
			}
			objs, _, err := manifest.LoadFiles(paths...)
			if err != nil {
				t.Fatalf("LoadFiles: %v", err)
			}
			var opts Options
			if tc.opts != nil {
				opts = tc.opts(t)
			}
			snap, err := Translate(objs, opts)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			got, err := json.MarshalIndent(snap, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')

			// Determinism: a second run gives the same bytes.
			again, _ := Translate(objs, opts)
			if b, _ := json.MarshalIndent(again, "", "  "); !bytes.Equal(append(b, '\n'), got) {
				t.Fatal("Translate is not deterministic")
			}

			golden := filepath.Join("testdata", tc.name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("snapshot differs from %s (run with -update and review the diff):\n%s", golden, got)
			}
		})
	}
}
