package lbtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/fakemilvus"
)

// Two Milvus clusters behind one l7lb endpoint, as in a blue/green upgrade
// or a database moved to its own cluster: cluster ClusterOne is the seed's
// Service, cluster ClusterTwo the Service ServiceTwo. Each has its own
// engine, so data created on one is absent on the other, and its replicas
// are named "one/replica-N" and "two/replica-N" in the
// fakemilvus.ReplicaHeader header and trailer, which says per RPC which
// cluster served it.
const (
	ClusterOne = "one"
	ClusterTwo = "two"
	// ServiceTwo is the second cluster's Service, milvus-two in the
	// Ingress.
	ServiceTwo = "milvus/milvus-two"
)

// RoutingIngress is the seed's Ingress (internet-facing, TLS on 443 with
// the Placeholder certificate, host ServerName, gRPC to ip targets) with
// annotations (lines indented four spaces) and paths (see Path) in its
// one rule.
func RoutingIngress(annotations string, paths ...string) string {
	return ingressWith(`[{"HTTPS":443}]`, "    alb.ingress.kubernetes.io/scheme: internet-facing\n"+strings.TrimRight(annotations, "\n"), paths...)
}

// Path is one path of an Ingress rule: Prefix p, or Exact when p names a
// gRPC method ("/pkg.Service/Method"), to port 19530 of service
// (milvus-demo or milvus-two), or to the actions.${service} annotation
// (port use-annotation) for any other name.
func Path(p, service string) string {
	pathType := "Prefix"
	if strings.Count(p, "/") > 1 {
		pathType = "Exact"
	}
	port := "number: 19530"
	if service != "milvus-demo" && service != "milvus-two" {
		port = "name: use-annotation"
	}
	return fmt.Sprintf(`        - path: %s
          pathType: %s
          backend:
            service:
              name: %s
              port:
                %s
`, p, pathType, service, port)
}

// TwoClusters is two fakemilvus clusters of two replicas each and l7lb
// in front of both.
type TwoClusters struct {
	One, Two  *fakemilvus.Cluster
	LB        *LB
	Addr      string // the HTTPS listener of port 443
	Endpoints map[string][]config.Endpoint
}

// StartTwoClusters starts both clusters and l7lb serving doc (a
// RoutingIngress), all stopped when the test ends.
func StartTwoClusters(t testing.TB, doc string) *TwoClusters {
	t.Helper()
	start := func(name string) *fakemilvus.Cluster {
		cl, err := fakemilvus.Start(fakemilvus.Options{Name: name, Replicas: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	e := &TwoClusters{One: start(ClusterOne), Two: start(ClusterTwo)}
	e.Endpoints = map[string][]config.Endpoint{
		Service:    Endpoints(e.One.Addrs()...),
		ServiceTwo: Endpoints(e.Two.Addrs()...),
	}
	e.LB = Start(t, Options{Ingress: doc, Endpoints: e.Endpoints, CAName: "routing CA"})
	e.Addr = e.LB.Addr(443)
	return e
}

// Reload applies doc to the running l7lb, as `serve` does on a changed
// file; a refusal fails the test.
func (e *TwoClusters) Reload(t testing.TB, doc string) {
	t.Helper()
	if err := e.LB.Reload(doc, e.Endpoints); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// Served sums the served-RPC counters of a cluster's replicas.
func Served(cl *fakemilvus.Cluster) int64 {
	var n int64
	for _, r := range cl.Replicas() {
		n += r.Served()
	}
	return n
}
