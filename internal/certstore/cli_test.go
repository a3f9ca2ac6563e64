package certstore

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/pki"
)

// run calls Command and checks that nothing it printed carries key material.
func run(t *testing.T, keyPEM []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = Command(ctx, args, &out, &errOut)
	all := out.String() + errOut.String()
	if strings.Contains(all, "PRIVATE KEY") {
		t.Errorf("l7lb cert %s printed a PEM private key header", strings.Join(args, " "))
	}
	if lines := strings.Split(string(keyPEM), "\n"); len(lines) > 2 && strings.Contains(all, lines[1]) {
		t.Errorf("l7lb cert %s printed key material", strings.Join(args, " "))
	}
	return code, out.String(), errOut.String()
}

// writeSeedFiles writes the seed's three files (plus ca.pem) for leaf.
func writeSeedFiles(t *testing.T, leaf *pki.Leaf) string {
	t.Helper()
	dir := t.TempDir()
	if err := leaf.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

var importOutRE = regexp.MustCompile(`^\{\n    "CertificateArn": "(arn:l7lb:acm:local:000000000000:certificate/[0-9a-f-]{36})"\n\}\n$`)

func TestCommandImport(t *testing.T) {
	p := newTestPKI(t)
	other := newTestPKI(t)
	good := writeSeedFiles(t, p.leaf)
	foreign := writeSeedFiles(t, other.leaf)
	soon, err := p.inter.IssueExpiringIn(10, host)
	if err != nil {
		t.Fatal(err)
	}
	soonDir := writeSeedFiles(t, soon)
	garbage := filepath.Join(t.TempDir(), "Certificate.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := func(dir, name string) string { return filepath.Join(dir, name) }

	tests := []struct {
		name         string
		args         []string
		wantCode     int
		wantStderr   []string // substrings
		wantNoStderr bool
	}{
		{
			name: "seed command with fileb://",
			args: []string{"import", "--certificate", "fileb://" + f(good, pki.CertificateFile),
				"--certificate-chain", "fileb://" + f(good, pki.ChainFile),
				"--private-key", "fileb://" + f(good, pki.PrivateKeyFile)},
			wantNoStderr: true,
		},
		{
			name: "AWS command name, file:// and = flags",
			args: []string{"import-certificate", "--certificate=file://" + f(good, pki.CertificateFile),
				"--certificate-chain=file://" + f(good, pki.ChainFile),
				"--private-key=file://" + f(good, pki.PrivateKeyFile)},
			wantStderr: []string{"warning: the same certificate is already imported as arn:l7lb:acm:"},
		},
		{
			name:       "bare paths, no chain",
			args:       []string{"import", "--certificate", f(good, pki.CertificateFile), "--private-key", f(good, pki.PrivateKeyFile)},
			wantStderr: []string{"l7lb cert: warning: no certificate chain given"},
		},
		{
			name: "expiring soon",
			args: []string{"import", "--certificate", f(soonDir, pki.CertificateFile),
				"--certificate-chain", f(soonDir, pki.ChainFile), "--private-key", f(soonDir, pki.PrivateKeyFile)},
			wantStderr: []string{"l7lb cert: warning: certificate expires in 9 days"},
		},
		{
			name: "key of another certificate",
			args: []string{"import", "--certificate", "fileb://" + f(good, pki.CertificateFile),
				"--certificate-chain", "fileb://" + f(good, pki.ChainFile),
				"--private-key", "fileb://" + f(foreign, pki.PrivateKeyFile)},
			wantCode:   1,
			wantStderr: []string{"l7lb cert: private key " + f(foreign, pki.PrivateKeyFile) + ": does not match the certificate's public key"},
		},
		{
			name: "chain of another CA",
			args: []string{"import", "--certificate", f(good, pki.CertificateFile),
				"--certificate-chain", f(foreign, pki.ChainFile), "--private-key", f(good, pki.PrivateKeyFile)},
			wantCode:   1,
			wantStderr: []string{"l7lb cert: certificate chain " + f(foreign, pki.ChainFile) + ": does not verify the certificate"},
		},
		{
			name: "garbage certificate",
			args: []string{"import", "--certificate", "fileb://" + garbage,
				"--certificate-chain", f(good, pki.ChainFile), "--private-key", f(good, pki.PrivateKeyFile)},
			wantCode:   1,
			wantStderr: []string{"l7lb cert: certificate " + garbage + ": no PEM data found"},
		},
		{
			name:       "missing file",
			args:       []string{"import", "--certificate", "fileb://" + f(good, "nope.pem"), "--private-key", f(good, pki.PrivateKeyFile)},
			wantCode:   1,
			wantStderr: []string{"l7lb cert: reading certificate: open " + f(good, "nope.pem")},
		},
		{
			name:       "no --certificate",
			args:       []string{"import", "--private-key", f(good, pki.PrivateKeyFile)},
			wantCode:   2,
			wantStderr: []string{"l7lb cert: import: --certificate is required"},
		},
		{
			name:       "no --private-key",
			args:       []string{"import", "--certificate", f(good, pki.CertificateFile)},
			wantCode:   2,
			wantStderr: []string{"l7lb cert: import: --private-key is required"},
		},
		{
			name:       "unknown flag",
			args:       []string{"import", "--region", "us-east-2"},
			wantCode:   2,
			wantStderr: []string{"l7lb cert: import: flag provided but not defined: -region"},
		},
	}
	store := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, p.leaf.KeyPEM(), append(tt.args, "--store", store)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if tt.wantCode == 0 && !importOutRE.MatchString(stdout) {
				t.Errorf("stdout %q is not the AWS CLI's import-certificate shape", stdout)
			}
			if tt.wantCode != 0 && stdout != "" {
				t.Errorf("stdout %q on failure", stdout)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if tt.wantNoStderr && stderr != "" {
				t.Errorf("stderr %q, want none", stderr)
			}
		})
	}
}

func TestCommandRoundTrip(t *testing.T) {
	p := newTestPKI(t)
	dir := writeSeedFiles(t, p.leaf)
	store := filepath.Join(t.TempDir(), "store")
	// The store comes from the environment here; --store is covered above.
	t.Setenv(EnvStore, store)
	key := p.leaf.KeyPEM()

	code, stdout, stderr := run(t, key, "import",
		"--certificate", "fileb://"+filepath.Join(dir, pki.CertificateFile),
		"--certificate-chain", "fileb://"+filepath.Join(dir, pki.ChainFile),
		"--private-key", "fileb://"+filepath.Join(dir, pki.PrivateKeyFile))
	if code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	arn := importOutRE.FindStringSubmatch(stdout)[1]
	if _, err := os.Stat(filepath.Join(store, strings.TrimPrefix(arn, ARNPrefix), keyFile)); err != nil {
		t.Fatalf("import did not use $%s: %v", EnvStore, err)
	}

	code, stdout, stderr = run(t, key, "list")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, stderr)
	}
	var list struct {
		CertificateSummaryList []map[string]any
	}
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("list output %q: %v", stdout, err)
	}
	if n := len(list.CertificateSummaryList); n != 1 {
		t.Fatalf("list has %d certificates", n)
	}
	sum := list.CertificateSummaryList[0]
	for k, want := range map[string]any{
		"CertificateArn":                  arn,
		"DomainName":                      host,
		"SubjectAlternativeNameSummaries": []any{host, "127.0.0.1"},
		"Status":                          "ISSUED",
		"Type":                            "IMPORTED",
		"KeyAlgorithm":                    "EC_prime256v1",
	} {
		if got := sum[k]; !jsonEqual(got, want) {
			t.Errorf("list %s = %v, want %v", k, got, want)
		}
	}
	if !strings.HasPrefix(stdout, "{\n    \"CertificateSummaryList\": [\n        {\n") {
		t.Errorf("list output is not 4-space indented:\n%s", stdout)
	}

	for _, args := range [][]string{
		{"describe", arn},
		{"describe", "--certificate-arn", arn},
		{"describe-certificate", arn, "--store", store}, // flags after the ARN
	} {
		code, stdout, stderr = run(t, key, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var d struct{ Certificate map[string]any }
		if err := json.Unmarshal([]byte(stdout), &d); err != nil {
			t.Fatalf("describe output %q: %v", stdout, err)
		}
		for k, want := range map[string]any{
			"CertificateArn":          arn,
			"DomainName":              host,
			"SubjectAlternativeNames": []any{host, "127.0.0.1"},
			"Issuer":                  "CN=Test Intermediate,O=l7lb test PKI",
			"Status":                  "ISSUED",
			"Type":                    "IMPORTED",
			"KeyAlgorithm":            "EC_prime256v1",
			"NotAfter":                p.leaf.Cert.NotAfter.UTC().Format("2006-01-02T15:04:05") + "+00:00",
		} {
			if got := d.Certificate[k]; !jsonEqual(got, want) {
				t.Errorf("%v: %s = %v, want %v", args, k, got, want)
			}
		}
	}

	code, stdout, stderr = run(t, key, "delete", arn)
	if code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("delete: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, cmd := range []string{"describe", "delete"} {
		code, _, stderr = run(t, key, cmd, arn)
		if code != 1 || !strings.HasPrefix(stderr, "l7lb cert: ") || !strings.Contains(stderr, "certificate not found: "+arn) {
			t.Errorf("%s after delete: exit %d, stderr %q", cmd, code, stderr)
		}
	}
	code, stdout, _ = run(t, key, "list")
	if code != 0 || stdout != "{\n    \"CertificateSummaryList\": []\n}\n" {
		t.Errorf("empty list: exit %d, %q", code, stdout)
	}
}

func TestCommandUsage(t *testing.T) {
	store := t.TempDir()
	arn := ARN("0b5c1f7e-52f0-4b8e-9c1a-3f3f2d7c9e10")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"no command", nil, 2, "", "usage: l7lb cert"},
		{"unknown command", []string{"renew"}, 2, "", `l7lb cert: unknown command "renew"`},
		{"help", []string{"help"}, 0, "usage: l7lb cert", ""},
		{"import -h", []string{"import", "-h"}, 0, "-certificate-chain", ""},
		{"describe without ARN", []string{"describe", "--store", store}, 2, "", "l7lb cert: describe: a certificate ARN is required"},
		{"describe two ARNs", []string{"describe", arn, arn + "x"}, 2, "", `unexpected argument`},
		{"list with argument", []string{"list", "x", "--store", store}, 2, "", `l7lb cert: list: unexpected argument "x"`},
		{"describe unknown ARN", []string{"describe", arn, "--store", store}, 1, "", "l7lb cert: certstore: certificate not found: " + arn},
		{"delete AWS ARN", []string{"delete", "--certificate-arn", "arn:aws:acm:region:account-id:certificate/certificate-id", "--store", store}, 1, "", "not an l7lb certificate ARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, nil, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) || (tt.wantStdout == "" && stdout != "") {
				t.Errorf("stdout %q, want %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) || (tt.wantStderr == "" && stderr != "") {
				t.Errorf("stderr %q, want %q", stderr, tt.wantStderr)
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
