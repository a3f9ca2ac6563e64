package kube

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/controller"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/runtime"
)

const (
	serverName = "milvus-demo.milvus.io"
	// seedARN is the certificate-arn in the seed's ingress.yaml; the
	// certificate is imported under it so the file applies unchanged.
	seedARN     = "arn:aws:acm:region:account-id:certificate/certificate-id"
	controlNS   = "l7lb"
	targetGroup = "milvus/milvus-demo:19530"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 100 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s; last: %s", within, what, last)
}

// createIngress creates ing in namespace milvus.
func createIngress(t *testing.T, ctx context.Context, ing *networkingv1.Ingress) {
	t.Helper()
	if _, err := shared.client.NetworkingV1().Ingresses("milvus").Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Ingress %s: %v", ing.Name, err)
	}
}

// deleteIngressesAtEnd deletes the named Ingresses of namespace milvus
// when t ends, so that the test can run again against the same API server
// (go test -count=N). Missing ones are fine: the test may have deleted
// them, or never got to create them.
func deleteIngressesAtEnd(t *testing.T, names ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, name := range names {
			err := shared.client.NetworkingV1().Ingresses("milvus").Delete(ctx, name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete Ingress %s: %v", name, err)
			}
		}
	})
}

func ensureNamespace(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	_, err := shared.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("namespace %s: %v", name, err)
	}
}

// backend is the 3-replica Milvus test cluster published as Service
// milvus/milvus-demo with one EndpointSlice per replica (a slice has one
// port list, and the replicas listen on different loopback ports).
type backend struct {
	cluster *fakemilvus.Cluster
	ca      *pki.CA
}

func startBackend(t *testing.T, ctx context.Context) *backend {
	t.Helper()
	cl, err := fakemilvus.Start(fakemilvus.Options{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ensureNamespace(t, ctx, "milvus")
	ensureNamespace(t, ctx, controlNS)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "milvus", Name: "milvus-demo"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Port: 19530, Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := shared.client.CoreV1().Services("milvus").Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	b := &backend{cluster: cl}
	for i := range cl.Replicas() {
		b.setSlice(t, ctx, i, true)
	}
	ca, err := pki.NewCA("l7lb kube test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{serverName}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	store := certstore.KubeStore{Client: shared.client, Namespace: controlNS}
	if _, _, err := store.Import(ctx, leaf.CertPEM(), leaf.ChainPEM(), leaf.KeyPEM(), seedARN, time.Now()); err != nil {
		t.Fatalf("importing the certificate into the cluster store: %v", err)
	}
	b.ca = ca
	return b
}

func sliceName(i int) string { return "milvus-demo-" + strconv.Itoa(i) }

// setSlice creates or updates replica i's EndpointSlice: ready, or
// terminating (draining) when ready is false.
func (b *backend) setSlice(t *testing.T, ctx context.Context, i int, ready bool) {
	t.Helper()
	_, portText, _ := net.SplitHostPort(b.cluster.Replicas()[i].Addr())
	port, _ := strconv.Atoi(portText)
	p32 := int32(port)
	term := !ready
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "milvus", Name: sliceName(i), Labels: map[string]string{discoveryv1.LabelServiceName: "milvus-demo"}},
		// The API server refuses loopback IPs in IPv4 EndpointSlices, and
		// the test backend only listens on loopback. An FQDN slice accepts
		// "127.0.0.1" (it is a well-formed DNS name of four labels), and
		// l7lb dials it as the address it is.
		AddressType: discoveryv1.AddressTypeFQDN,
		Ports:       []discoveryv1.EndpointPort{{Port: &p32}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"127.0.0.1"},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready, Terminating: &term},
		}},
	}
	api := shared.client.DiscoveryV1().EndpointSlices("milvus")
	cur, err := api.Get(ctx, es.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, es, metav1.CreateOptions{})
	case err == nil:
		es.ResourceVersion = cur.ResourceVersion
		_, err = api.Update(ctx, es, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("EndpointSlice %s: %v", es.Name, err)
	}
}

func (b *backend) deleteSlice(t *testing.T, ctx context.Context, i int) {
	t.Helper()
	if err := shared.client.DiscoveryV1().EndpointSlices("milvus").Delete(ctx, sliceName(i), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (b *backend) served() []int64 {
	var out []int64
	for _, r := range b.cluster.Replicas() {
		out = append(out, r.Served())
	}
	return out
}

// replica is one in-process `l7lb controller`: the controller package
// driving a runtime whose listeners bind 127.0.0.1:0.
type replica struct {
	ctl    *controller.Controller
	rt     *runtime.Runtime
	cancel context.CancelFunc
	done   chan error
}

type replicaOptions struct {
	identity string
	publish  string
	classes  []string
	lease    string
}

func startReplica(t *testing.T, o replicaOptions) *replica {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("replica", o.identity)
	ctl, err := controller.New(controller.Options{
		Client: shared.client, Log: log, Namespace: controlNS,
		Classes: o.classes, PublishAddresses: []string{o.publish},
		Identity: o.identity, LeaseName: o.lease,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rt := runtime.New(runtime.Options{Log: log, Certs: ctl.Certificates(), TrustStores: ctl.TrustStores(), Bind: func(config.Listener) string { return "127.0.0.1:0" }})
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{ctl: ctl, rt: rt, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- ctl.Run(ctx, rt) }()
	t.Cleanup(r.stop)
	return r
}

// stop ends the controller (releasing its Lease) and its listeners.
func (r *replica) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	<-r.done
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.rt.Shutdown(sctx) //nolint:errcheck // test teardown
}

// addr is the bound address of the listener for port 443.
func (r *replica) addr(t *testing.T) string {
	t.Helper()
	var a string
	eventually(t, 30*time.Second, "a listener for port 443", func() (bool, string) {
		if na := r.rt.Addrs()[443]; na != nil {
			a = na.String()
			return true, ""
		}
		return false, fmt.Sprintf("listeners %v", r.rt.Addrs())
	})
	return a
}

// readyTargets counts the target group's ready, not draining targets.
func (r *replica) readyTargets() (ready, all int) {
	g := r.rt.Group(targetGroup)
	if g == nil {
		return 0, 0
	}
	for _, tg := range g.Targets() {
		all++
		if tg.Endpoint.Ready && !tg.Endpoint.Terminating {
			ready++
		}
	}
	return ready, all
}
