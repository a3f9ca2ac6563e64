// Package lbtest starts l7lb inside a test process, the way the black-box
// suites under test/ drive it over loopback: a private CA, a certificate
// store holding a leaf for the seed's server name, an Ingress translated
// with explicit endpoints, and a runtime whose listeners bind 127.0.0.1:0.
// Everything is torn down when the test ends.
package lbtest

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/ingress"
	"github.com/l7lb/l7lb/internal/config/manifest"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/runtime"
)

// ServerName is the seed's host name; the leaf certificate is issued for it.
const ServerName = "milvus-demo.milvus.io"

// Service is the seed's Service, the key of its targets in
// Options.Endpoints.
const Service = "milvus/milvus-demo"

// Placeholder is replaced in Options.Ingress by the certificate's ARN.
const Placeholder = "{{ARN}}"

// Ingress returns the seed's Ingress: host ServerName, path "/" to port
// 19530 of Service over gRPC to ip targets, the certificate Placeholder,
// listen-ports as given (e.g. `[{"HTTPS":443}]`) and then annotations,
// lines indented as under metadata.annotations (four spaces), if any.
func Ingress(listenPorts, annotations string) string {
	return ingressWith(listenPorts, annotations, Path("/", "milvus-demo"))
}

// ingressWith is the seed's Ingress with listen-ports, annotations (lines
// indented four spaces, may be empty) and paths (see Path) in its rule.
func ingressWith(listenPorts, annotations string, paths ...string) string {
	if annotations != "" {
		annotations += "\n"
	}
	return `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  namespace: milvus
  name: milvus-demo
  annotations:
    alb.ingress.kubernetes.io/backend-protocol-version: GRPC
    alb.ingress.kubernetes.io/target-type: ip
    alb.ingress.kubernetes.io/listen-ports: '` + listenPorts + `'
    alb.ingress.kubernetes.io/certificate-arn: "` + Placeholder + `"
` + annotations + `spec:
  ingressClassName: alb
  rules:
    - host: ` + ServerName + `
      http:
        paths:
` + strings.Join(paths, "")
}

// Certs is a private CA, a leaf for ServerName signed by it and a
// certificate store (in Dir) holding that leaf under ARN.
type Certs struct {
	CA    *pki.CA
	Store *certstore.Store
	Dir   string
	ARN   string
}

// NewCerts makes a CA named caName, issues the leaf and imports it into a
// new store in a temporary directory.
func NewCerts(t testing.TB, caName string) *Certs {
	t.Helper()
	ca, err := pki.NewCA(caName, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{ServerName}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "store")
	store, err := certstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := store.Import(leaf.CertPEM(), ca.CertPEM(), leaf.KeyPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &Certs{CA: ca, Store: store, Dir: dir, ARN: c.ARN}
}

// Options says what to start.
type Options struct {
	// Ingress is the manifest (YAML) to serve; every Placeholder in it is
	// replaced by the certificate's ARN.
	Ingress string
	// Endpoints are the targets per "namespace/service".
	Endpoints map[string][]config.Endpoint
	// Runtime holds further runtime options (Log, Observer, ...). Certs
	// and Bind are set by Start; a nil Log discards the log.
	Runtime runtime.Options
	// Certs to serve; nil makes new ones with a CA named CAName.
	Certs *Certs
	// CAName names the CA made when Certs is nil ("lbtest CA" if empty).
	CAName string
}

// LB is a running in-process l7lb.
type LB struct {
	Runtime *runtime.Runtime
	// Snapshot is the translated configuration applied (its Warnings
	// included).
	Snapshot *config.Snapshot
	// Addrs are the listeners' addresses by configured port, as bound.
	Addrs map[int]net.Addr
	Certs *Certs
	// CA signed the served certificate; CA.Pool() trusts it.
	CA  *pki.CA
	ARN string
}

// Addr returns the address of the listener for the configured port, or ""
// if there is none.
func (l *LB) Addr(port int) string {
	if a := l.Addrs[port]; a != nil {
		return a.String()
	}
	return ""
}

// Start translates o.Ingress, applies it to a new runtime and registers
// its shutdown with t.Cleanup. Any failure fails the test.
func Start(t testing.TB, o Options) *LB {
	t.Helper()
	cs := o.Certs
	if cs == nil {
		name := o.CAName
		if name == "" {
			name = "lbtest CA"
		}
		cs = NewCerts(t, name)
	}
	snap, err := translate(o.Ingress, cs.ARN, o.Endpoints)
	if err != nil {
		t.Fatal(err)
	}
	ro := o.Runtime
	if ro.Log == nil {
		ro.Log = slog.New(slog.DiscardHandler)
	}
	ro.Certs = cs.Store
	ro.Bind = func(config.Listener) string { return "127.0.0.1:0" }
	rt := runtime.New(ro)
	if err := rt.Apply(snap); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rt.Shutdown(ctx) //nolint:errcheck // end of test
	})
	return &LB{Runtime: rt, Snapshot: snap, Addrs: rt.Addrs(), Certs: cs, CA: cs.CA, ARN: cs.ARN}
}

// StartWithCluster starts a fakemilvus cluster with co, closed when the
// test ends, and l7lb in front of it: unless o.Endpoints has a Service
// entry already, the cluster's replicas are Service's targets.
func StartWithCluster(t testing.TB, co fakemilvus.Options, o Options) (*LB, *fakemilvus.Cluster) {
	t.Helper()
	cl, err := fakemilvus.Start(co)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if _, ok := o.Endpoints[Service]; !ok {
		eps := map[string][]config.Endpoint{Service: Endpoints(cl.Addrs()...)}
		for k, v := range o.Endpoints {
			eps[k] = v
		}
		o.Endpoints = eps
	}
	return Start(t, o), cl
}

// Reload translates doc (Placeholder replaced by the certificate's ARN)
// with endpoints and applies it to the running runtime, as `l7lb serve`
// does when its file changes: listeners and connections stay, the new
// routes apply to requests that start after it returns.
func (l *LB) Reload(doc string, endpoints map[string][]config.Endpoint) error {
	snap, err := translate(doc, l.ARN, endpoints)
	if err != nil {
		return err
	}
	if err := l.Runtime.Apply(snap); err != nil {
		return err
	}
	l.Snapshot = snap
	return nil
}

func translate(doc, arn string, endpoints map[string][]config.Endpoint) (*config.Snapshot, error) {
	doc = strings.ReplaceAll(doc, Placeholder, arn)
	objs, _, err := manifest.Parse("ingress.yaml", []byte(doc))
	if err != nil {
		return nil, err
	}
	return ingress.Translate(objs, ingress.Options{Endpoints: endpoints})
}

// Endpoints turns "host:port" addresses into ready endpoints.
func Endpoints(addrs ...string) []config.Endpoint {
	var eps []config.Endpoint
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		eps = append(eps, config.Endpoint{Address: host, Port: p, Ready: true})
	}
	return eps
}
