package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/l7lb/l7lb/internal/demo"
)

// TestCertificateRotationProcess: ACM's re-import, in file mode, against
// a running `l7lb serve` process. `l7lb cert import --certificate-arn ARN`
// replaces the served certificate under the same ARN; serve notices the
// store change and reloads, after which every new handshake presents the
// new certificate's serial number, while a gRPC connection opened before
// goes on serving RPCs with the certificate its handshake got.
func TestCertificateRotationProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster := startCluster(t)
	seed := importSeedCertificate(t, ctx)
	serve := startSeedServe(t, ctx, cluster, seed, "--admin", "off")
	tlsConf := &tls.Config{RootCAs: seed.ca.Pool(), ServerName: demo.ServerName}

	// servedSerial makes a new handshake and returns the serial number of
	// the certificate l7lb presents.
	servedSerial := func() *big.Int {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", serve.addr, tlsConf)
		if err != nil {
			t.Fatalf("handshake: %v\n%s", err, serve.stderr.String())
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	oldSerial := servedSerial()

	// Connections open before the rotation: a raw gRPC one (whose peer
	// certificate each RPC reports) and the Milvus Go SDK.
	cc, err := grpc.NewClient(serve.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	mc := milvuspb.NewMilvusServiceClient(cc)
	sdk, err := demo.Connect(ctx, serve.addr, demo.ServerName, seed.ca.Pool())
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close(ctx)
	// rpcs sends n RPCs on each open connection and returns the serial
	// number the raw connection's handshake saw.
	rpcs := func(what string, n int) *big.Int {
		t.Helper()
		var serial *big.Int
		for i := 0; i < n; i++ {
			var p peer.Peer
			if _, err := mc.GetVersion(ctx, &milvuspb.GetVersionRequest{}, grpc.Peer(&p)); err != nil {
				t.Fatalf("%s: GetVersion %d on the open connection: %v", what, i, err)
			}
			serial = p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber
			if _, err := sdk.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil {
				t.Fatalf("%s: SDK ListCollections %d: %v", what, i, err)
			}
		}
		return serial
	}
	if s := rpcs("before", 20); s.Cmp(oldSerial) != 0 {
		t.Fatalf("the open connection's certificate has serial %X, new handshakes %X", s, oldSerial)
	}

	// The renewed certificate: a new key and serial, same name and CA.
	leaf, err := seed.ca.Issue([]string{demo.ServerName}, nil, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := leaf.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := l7lb(ctx, "cert", "import", "--store", seed.store, "--certificate-arn", seed.arn,
		"--certificate", "fileb://"+filepath.Join(dir, "Certificate.pem"),
		"--certificate-chain", "fileb://"+filepath.Join(dir, "CertificateChain.pem"),
		"--private-key", "fileb://"+filepath.Join(dir, "PrivateKey.pem")).Output()
	if err != nil {
		t.Fatalf("cert import --certificate-arn: %v\n%s", err, out)
	}
	var imported struct{ CertificateArn string }
	if err := json.Unmarshal(out, &imported); err != nil || imported.CertificateArn != seed.arn {
		t.Fatalf("re-import printed %q (%v); want the same ARN %s", out, err, seed.arn)
	}
	// serve polls its store every second; its log says when the reload
	// is applied (waitLog is bounded: 15 s).
	waitLog(t, serve.stderr, "configuration reloaded")
	took := time.Since(start)
	newSerial := servedSerial()
	if newSerial.Cmp(leaf.Cert.SerialNumber) != 0 {
		t.Fatalf("after the reload new handshakes present serial %X, want the re-imported %X (old %X)", newSerial, leaf.Cert.SerialNumber, oldSerial)
	}
	t.Logf("re-import to reload: %v; served serial %X -> %X", took.Round(10*time.Millisecond), oldSerial, newSerial)

	if s := rpcs("after the rotation", 20); s.Cmp(oldSerial) != 0 {
		t.Errorf("the connection opened before the rotation now reports serial %X, want its own %X: it was not kept", s, oldSerial)
	}
	serve.terminate(t)
}
