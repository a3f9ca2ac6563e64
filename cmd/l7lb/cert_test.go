package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/pki"
)

// TestCertSeedCommand runs the seed's step 2 through the command table; the
// details of `l7lb cert` are tested in internal/certstore.
func TestCertSeedCommand(t *testing.T) {
	ca, err := pki.NewCA("Test Root", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := ca.NewIntermediate("Test Intermediate")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := inter.Issue([]string{"milvus-demo.milvus.io"}, nil, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := leaf.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "store")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"cert", "import",
		"--certificate", "fileb://" + filepath.Join(dir, pki.CertificateFile),
		"--certificate-chain", "fileb://" + filepath.Join(dir, pki.ChainFile),
		"--private-key", "fileb://" + filepath.Join(dir, pki.PrivateKeyFile),
		"--store", store}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("l7lb cert import: exit %d: %s", code, stderr.String())
	}
	want := regexp.MustCompile(`^\{\n    "CertificateArn": "arn:l7lb:acm:local:000000000000:certificate/[0-9a-f-]{36}"\n\}\n$`)
	if !want.Match(stdout.Bytes()) {
		t.Errorf("stdout %q is not the AWS CLI shape", stdout.String())
	}
	// The 12h certificate is inside the 30-day window.
	if !strings.Contains(stderr.String(), "l7lb cert: warning: certificate expires in") {
		t.Errorf("stderr %q lacks the expiry warning", stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"cert", "bogus"}, &stdout, &stderr); code != 2 {
		t.Errorf("l7lb cert bogus: exit %d, want 2", code)
	}
}
