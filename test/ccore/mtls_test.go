package ccore

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"

	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/pki"
)

// mtlsResult is what client.py's mTLS probe prints.
type mtlsResult struct {
	GRPCVersion string `json:"grpc_version"`
	Ready       bool   `json:"ready"`
	OK          bool   `json:"ok"`
	Code        string `json:"code"`
	Details     string `json:"details"`
	Replica     string `json:"replica"`
}

// TestPymilvusTransportClientCertificate: gRPC C-core on pymilvus's
// channel, with grpc.ssl_channel_credentials(root, private_key,
// certificate_chain) as pymilvus builds it for client_pem_path and
// client_key_path, against l7lb with mutual-authentication verify and a
// trust store holding CA1: a CA1 certificate gets its call served; none,
// or one of CA2, is refused (UNAVAILABLE, the channel never ready), and
// the target sees nothing.
func TestPymilvusTransportClientCertificate(t *testing.T) {
	py := pythonWithGRPC(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certs := lbtest.NewCerts(t, "C-core mTLS CA")
	var cas [2]*pki.CA
	for i, name := range []string{"clients CA1", "clients CA2"} {
		ca, err := pki.NewCA(name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cas[i] = ca
	}
	lb, cl := lbtest.StartVerify(t, certs, cas[0])
	replica := cl.Replicas()[0]
	caFile := write("server-ca.pem", lb.CA.CertPEM())
	client := func(ca *pki.CA, name string) (pem, key string) {
		l, err := ca.IssueWith(pki.LeafOptions{CommonName: name, NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", l.CertPEM()), write(name+".key", l.KeyPEM())
	}
	goodPEM, goodKey := client(cas[0], "pymilvus-ca1")
	badPEM, badKey := client(cas[1], "pymilvus-ca2")

	cases := []struct {
		name      string
		pem, key  string
		ok        bool
		readyWait float64 // seconds client.py waits for the channel
	}{
		{"CA1 certificate", goodPEM, goodKey, true, 10},
		// A refused channel never becomes ready; 2 s shows it without
		// waiting pymilvus's 10 s.
		{"no certificate", "", "", false, 2},
		{"CA2 certificate", badPEM, badKey, false, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := map[string]any{"mode": "mtls", "target": lb.Addr(443), "server_name": lbtest.ServerName, "server_pem_path": caFile,
				"client_pem_path": tc.pem, "client_key_path": tc.key, "ready_timeout": tc.readyWait,
				"call": request(t, "ShowCollections", &milvuspb.ShowCollectionsRequest{}, 0)}
			pb, _ := json.Marshal(plan)
			planFile := write("plan-"+strings.ReplaceAll(tc.name, " ", "-")+".json", pb)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			before := replica.Served()
			cmd := exec.CommandContext(ctx, py, "client.py", planFile)
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("client.py: %v\n%s", err, stderr)
			}
			var res mtlsResult
			if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
				t.Fatalf("client.py printed %q: %v", out, err)
			}
			t.Logf("grpcio %s: ready %v, %s %s", res.GRPCVersion, res.Ready, res.Code, res.Details)
			served := replica.Served() - before
			if tc.ok {
				if !res.Ready || !res.OK || res.Code != "OK" || res.Replica != replica.Name() || served != 1 {
					t.Errorf("with a CA1 certificate: ready %v, ok %v, code %s (%s), replica %q, served %d; want ready, OK from %s, 1 served",
						res.Ready, res.OK, res.Code, res.Details, res.Replica, served, replica.Name())
				}
				if got := replica.LastMetadata().Get("x-amzn-mtls-clientcert-subject"); len(got) != 1 || got[0] != "CN=pymilvus-ca1" {
					t.Errorf("the target got x-amzn-mtls-clientcert-subject %q, want [CN=pymilvus-ca1]", got)
				}
				return
			}
			if res.Ready || res.OK || res.Code != "UNAVAILABLE" || served != 0 {
				t.Errorf("refused client: ready %v, ok %v, code %s (%s), served %d; want never ready, UNAVAILABLE, 0 served",
					res.Ready, res.OK, res.Code, res.Details, served)
			}
		})
	}
}
