package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/pki"
)

// TestValidateTrustStore: `l7lb validate` checks the trust store a
// mutual-authentication verify entry names against the store, as serve
// does: one created with `l7lb truststore create` (by ARN or by name)
// passes; an ARN or name not there is refused with the annotation, the
// Ingress and the ARN named.
func TestValidateTrustStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	certs := lbtest.NewCerts(t, "validate CA")
	dir := t.TempDir()
	ca, err := pki.NewCA("clients CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bundle := writeFile(t, dir, "ca-bundle.pem", ca.CertPEM())
	out, err := l7lb(ctx, "truststore", "create", "--name", "clients", "--ca-certificates-bundle", "fileb://"+bundle, "--store", certs.Dir).Output()
	if err != nil {
		t.Fatalf("truststore create: %v\n%s", err, out)
	}
	var created struct {
		TrustStores []struct{ TrustStoreArn string }
	}
	if err := json.Unmarshal(out, &created); err != nil || len(created.TrustStores) != 1 {
		t.Fatalf("truststore create printed %s (%v)", out, err)
	}
	arn := created.TrustStores[0].TrustStoreArn
	// Same name, another id: a trust store deleted and created again.
	otherID := arn[:strings.LastIndexByte(arn, '/')+1] + "0123456789abcdef"
	missing := "arn:l7lb:elasticloadbalancing:local:000000000000:truststore/partners/0123456789abcdef"

	tests := []struct {
		name     string
		store    string
		exit     int
		contains []string
	}{
		{"created, by ARN", arn, 0, []string{"ok: 1 listeners"}},
		{"created, by name", "clients", 0, []string{"ok: 1 listeners"}},
		{"ARN not in the store", missing, 1, []string{"ingress.yaml:", "Ingress milvus/milvus-demo", "alb.ingress.kubernetes.io/mutual-authentication", "port 443", "trust store " + missing + " not found"}},
		{"ARN of a deleted trust store", otherID, 1, []string{"Ingress milvus/milvus-demo", "alb.ingress.kubernetes.io/mutual-authentication", "trust store " + otherID + " not found"}},
		{"name not in the store", "partners", 1, []string{"Ingress milvus/milvus-demo", "alb.ingress.kubernetes.io/mutual-authentication", "trust store partners not found"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := lbtest.Ingress(`[{"HTTPS":443}]`, `    alb.ingress.kubernetes.io/mutual-authentication: '[{"port":443,"mode":"verify","trustStore":"`+tc.store+`"}]'`)
			doc = strings.ReplaceAll(doc, lbtest.Placeholder, certs.ARN)
			f := writeFile(t, dir, "ingress.yaml", []byte(doc))
			out := expectRun(t, ctx, []string{"validate", "-f", f, "--store", certs.Dir, "--endpoints", "milvus/milvus-demo=127.0.0.1:19530"}, tc.exit, tc.contains)
			t.Logf("%s", out)
		})
	}
}
