package lbtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/runtime"
	"github.com/l7lb/l7lb/internal/truststore"
)

// CreateTrustStore runs `l7lb truststore create` (its package's Command,
// which cmd/l7lb calls) for a bundle holding ca's certificate, in the
// store directory dir, and returns the ARN it prints.
func CreateTrustStore(t testing.TB, dir, name string, ca *pki.CA) string {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), name+"-bundle.pem")
	if err := os.WriteFile(bundle, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"create", "--name", name, "--ca-certificates-bundle", "fileb://" + bundle, "--store", dir}
	if rc := truststore.Command(context.Background(), args, &stdout, &stderr); rc != 0 {
		t.Fatalf("l7lb truststore %s: exit %d: %s", strings.Join(args, " "), rc, stderr.String())
	}
	var out struct {
		TrustStores []struct{ TrustStoreArn string }
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out.TrustStores) != 1 {
		t.Fatalf("l7lb truststore create printed %q: %v", stdout.String(), err)
	}
	return out.TrustStores[0].TrustStoreArn
}

// StartVerify starts l7lb with the seed's Ingress, mutual-authentication
// verify on port 443 against a trust store "clients" holding ca, before
// a cluster of one replica.
func StartVerify(t testing.TB, certs *Certs, ca *pki.CA) (*LB, *fakemilvus.Cluster) {
	t.Helper()
	arn := CreateTrustStore(t, certs.Dir, "clients", ca)
	trust, err := truststore.Open(certs.Dir)
	if err != nil {
		t.Fatal(err)
	}
	doc := Ingress(`[{"HTTPS":443}]`, `    alb.ingress.kubernetes.io/mutual-authentication: '[{"port":443,"mode":"verify","trustStore":"`+arn+`"}]'`)
	return StartWithCluster(t, fakemilvus.Options{Replicas: 1}, Options{Ingress: doc, Certs: certs, Runtime: runtime.Options{TrustStores: trust}})
}
