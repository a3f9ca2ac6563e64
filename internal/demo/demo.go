// Package demo runs the seed scenario end to end on loopback: a 3-replica
// Milvus test cluster, a private CA and a certificate for
// milvus-demo.milvus.io imported into a certificate store, the seed's
// Ingress served by l7lb, and the official Milvus Go SDK talking through it
// with TLS and a server name.
package demo

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/ingress"
	"github.com/l7lb/l7lb/internal/config/manifest"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/runtime"
)

// SeedIngress is the seed's ingress.yaml, byte for byte (examples/ingress.yaml
// holds the same bytes; a test keeps them equal).
//
//go:embed ingress.yaml
var SeedIngress []byte

// The seed's placeholders.
const (
	SeedARN    = "arn:aws:acm:region:account-id:certificate/certificate-id"
	ServerName = "milvus-demo.milvus.io"
)

// Options configure Run.
type Options struct {
	Out io.Writer
	Log *slog.Logger
	// Dir holds the demo's files (certificates, store, filled-in Ingress);
	// empty means a new temporary directory, removed at the end unless
	// KeepRunning.
	Dir string
	// Listen is where the HTTPS:443 listener binds (default 127.0.0.1:0).
	Listen string
	// KeepRunning leaves everything up until ctx ends.
	KeepRunning bool
	// Rows inserted (default 1000), vector dimension (default 64).
	Rows, Dim int
}

// Env is a running demo environment: the test cluster and l7lb in front.
type Env struct {
	Cluster  *fakemilvus.Cluster
	Runtime  *runtime.Runtime
	Addr     string // l7lb's HTTPS address
	CA       *pki.CA
	CAFile   string
	ARN      string
	Dir      string
	Ingress  string // path of the filled-in Ingress file
	StoreDir string
}

// Close stops l7lb and the cluster.
func (e *Env) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.Runtime.Shutdown(ctx) //nolint:errcheck // best effort at the end of a demo
	e.Cluster.Close()
}

// Start brings up the cluster, the certificate and l7lb serving the seed's
// Ingress, as the seed's steps 1-3 do.
func Start(dir, listen string, log *slog.Logger) (*Env, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	env := &Env{Dir: dir}
	cl, err := fakemilvus.Start(fakemilvus.Options{Replicas: 3, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("start the Milvus test cluster: %w", err)
	}
	env.Cluster = cl
	fail := func(err error) (*Env, error) { cl.Close(); return nil, err }

	// Step 2: a certificate, imported into a local store for an ARN.
	ca, err := pki.NewCA("l7lb demo CA", 24*time.Hour)
	if err != nil {
		return fail(err)
	}
	inter, err := ca.NewIntermediate("l7lb demo intermediate CA")
	if err != nil {
		return fail(err)
	}
	leaf, err := inter.Issue([]string{ServerName}, nil, 24*time.Hour)
	if err != nil {
		return fail(err)
	}
	certDir := filepath.Join(dir, "certs")
	if err := leaf.WriteFiles(certDir); err != nil {
		return fail(err)
	}
	env.CA = ca
	env.CAFile = filepath.Join(certDir, "ca.pem")
	env.StoreDir = filepath.Join(dir, "store")
	store, err := certstore.Open(env.StoreDir)
	if err != nil {
		return fail(err)
	}
	c, _, err := store.Import(leaf.CertPEM(), leaf.ChainPEM(), leaf.KeyPEM(), time.Now())
	if err != nil {
		return fail(fmt.Errorf("import the demo certificate: %w", err))
	}
	env.ARN = c.ARN

	// Step 3: the seed's Ingress with the ARN filled in, its Service's
	// endpoints being the three replicas.
	filled := bytes.Replace(SeedIngress, []byte(SeedARN), []byte(env.ARN), 1)
	env.Ingress = filepath.Join(dir, "ingress.yaml")
	if err := os.WriteFile(env.Ingress, filled, 0o644); err != nil {
		return fail(err)
	}
	objs, _, err := manifest.LoadFiles(env.Ingress)
	if err != nil {
		return fail(err)
	}
	var eps []config.Endpoint
	for _, r := range cl.Replicas() {
		host, port, _ := net.SplitHostPort(r.Addr())
		var p int
		fmt.Sscan(port, &p)
		eps = append(eps, config.Endpoint{Address: host, Port: p, Ready: true})
	}
	snap, err := ingress.Translate(objs, ingress.Options{
		Endpoints:        map[string][]config.Endpoint{"milvus/milvus-demo": eps},
		KnownCertificate: store.Has,
	})
	if err != nil {
		return fail(err)
	}
	rt := runtime.New(runtime.Options{Log: log, Certs: store, Bind: func(config.Listener) string { return listen }})
	if err := rt.Apply(snap); err != nil {
		return fail(err)
	}
	env.Runtime = rt
	env.Addr = rt.Addrs()[443].String()
	return env, nil
}

// Run is `l7lb-demo` (cmd/l7lb-demo).
func Run(ctx context.Context, opts Options) error {
	out := opts.Out
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Rows == 0 {
		opts.Rows = 1000
	}
	if opts.Dim == 0 {
		opts.Dim = 64
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "l7lb-demo-")
		if err != nil {
			return err
		}
		dir = d
		if !opts.KeepRunning {
			defer os.RemoveAll(d)
		}
	}
	fmt.Fprintln(out, "l7lb demo: the seed's Layer-7 load balancer for Milvus, end to end on this machine")
	env, err := Start(dir, opts.Listen, opts.Log)
	if err != nil {
		return err
	}
	defer env.Close()
	fmt.Fprintf(out, "1. Milvus test cluster: 3 proxies at %s\n", strings.Join(env.Cluster.Addrs(), ", "))
	fmt.Fprintf(out, "2. certificate for %s imported: {\"CertificateArn\": %q}\n", ServerName, env.ARN)
	fmt.Fprintf(out, "3. serving the seed's ingress.yaml (that ARN filled in) on %s: HTTPS, HTTP/2, gRPC to the 3 proxies\n", env.Addr)

	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	client, err := Connect(cctx, env.Addr, ServerName, env.CA.Pool())
	if err != nil {
		return fmt.Errorf("connect the Milvus Go SDK through l7lb: %w", err)
	}
	defer client.Close(context.Background())
	fmt.Fprintf(out, "4. Milvus Go SDK connected to %s with TLS, server name %s, one HTTP/2 connection\n", env.Addr, ServerName)
	before := served(env)
	rep, err := Session{Collection: "demo", Rows: opts.Rows, Dim: opts.Dim, TopK: 10, Queries: 20, Seed: 7}.Run(cctx, client)
	if err != nil {
		return fmt.Errorf("demo session: %w", err)
	}
	after := served(env)
	fmt.Fprintf(out, "   created collection \"demo\", inserted %d vectors of dim %d, built an index, loaded it\n", rep.Inserted, opts.Dim)
	fmt.Fprintf(out, "   %d searches (top 10): every hit list equals a brute-force search; query id in [1,2,3]: %d rows; count(*) = %d\n",
		rep.Searches, rep.QueryRows, rep.CountStar)
	total := int64(0)
	for i := range after {
		total += after[i] - before[i]
	}
	fmt.Fprintf(out, "5. %d RPCs over one client connection, balanced per RPC:\n", total)
	for i, r := range env.Cluster.Replicas() {
		n := after[i] - before[i]
		fmt.Fprintf(out, "   %s (%s): %d RPCs (%.0f%%)\n", r.Name(), r.Addr(), n, 100*float64(n)/float64(max(total, 1)))
	}
	if opts.KeepRunning {
		_, port, _ := net.SplitHostPort(env.Addr)
		fmt.Fprintf(out, "\nStill running (Ctrl-C to stop). Connect your own client:\n")
		fmt.Fprintf(out, "  address      %s\n  server name  %s\n  CA file      %s\n", env.Addr, ServerName, env.CAFile)
		fmt.Fprintf(out, "  pymilvus     connections.connect(\"default\", host=\"127.0.0.1\", port=\"%s\", secure=True, server_name=\"%s\", server_pem_path=\"%s\")\n",
			port, ServerName, env.CAFile)
		fmt.Fprintf(out, "  grpcurl      grpcurl -cacert %s -servername %s %s grpc.health.v1.Health/Check\n", env.CAFile, ServerName, env.Addr)
		<-ctx.Done()
	}
	fmt.Fprintln(out, "demo finished: OK")
	return nil
}

func served(env *Env) []int64 {
	var out []int64
	for _, r := range env.Cluster.Replicas() {
		out = append(out, r.Served())
	}
	return out
}
