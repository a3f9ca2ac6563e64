package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/truststore"
)

// The unit tests drive the controller without starting its informers: the
// objects go into the fake clientset (what status updates talk to) and
// straight into the informers' stores (what sync reads), and sync is
// called directly, so every step is deterministic and nothing waits.

const testNS = "milvus"

// fakeApplier records the snapshots applied.
type fakeApplier struct {
	mu    sync.Mutex
	snaps []*config.Snapshot
	err   error
}

func (a *fakeApplier) Apply(s *config.Snapshot) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.snaps = append(a.snaps, s)
	return nil
}

func (a *fakeApplier) last(t *testing.T) *config.Snapshot {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.snaps) == 0 {
		t.Fatal("no snapshot applied")
	}
	return a.snaps[len(a.snaps)-1]
}

// recorded is one Event.
type recorded struct {
	object, typ, reason, msg string
}

// fakeRecorder is an EventRecorder keeping the Events in memory.
type fakeRecorder struct {
	mu     sync.Mutex
	events []recorded
}

func (r *fakeRecorder) Event(obj k8sruntime.Object, typ, reason, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ing := obj.(*networkingv1.Ingress)
	r.events = append(r.events, recorded{object: ing.Namespace + "/" + ing.Name, typ: typ, reason: reason, msg: msg})
}

// take returns the Events recorded since the last take.
func (r *fakeRecorder) take() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func eventsFor(evs []recorded, key string) []recorded {
	var out []recorded
	for _, e := range evs {
		if e.object == key {
			out = append(out, e)
		}
	}
	return out
}

// harness is a Controller over a fake clientset.
type harness struct {
	t      *testing.T
	c      *Controller
	client *fake.Clientset
	rec    *fakeRecorder
	app    *fakeApplier
}

func newHarness(t *testing.T, opts Options, objs ...k8sruntime.Object) *harness {
	t.Helper()
	client := fake.NewClientset(objs...)
	opts.Client = client
	if opts.Namespace == "" {
		opts.Namespace = "l7lb"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, c: c, client: client, rec: &fakeRecorder{}, app: &fakeApplier{}}
	c.events = h.rec
	c.leader.Store(true)
	for _, o := range objs {
		h.store(o, false)
	}
	return h
}

// store puts o into the informer store sync reads; with apply it also
// creates or updates o in the fake API server.
func (h *harness) store(o k8sruntime.Object, apply bool) {
	h.t.Helper()
	var inf cache.SharedIndexInformer
	switch obj := o.(type) {
	case *networkingv1.Ingress:
		inf = h.c.informers.ingresses
		if apply {
			h.upsert(obj)
		}
	case *networkingv1.IngressClass:
		inf = h.c.informers.classes
	case *corev1.Service:
		inf = h.c.informers.services
	case *discoveryv1.EndpointSlice:
		inf = h.c.informers.slices
	case *corev1.Secret:
		inf = h.secretInformer(obj)
	default:
		h.t.Fatalf("no store for %T", o)
	}
	if err := inf.GetStore().Update(o); err != nil {
		h.t.Fatal(err)
	}
}

// secretInformer is the informer that would see s: the trust stores' for
// a trust store Secret of the certificate namespace, the TLS Secrets'
// otherwise.
func (h *harness) secretInformer(s *corev1.Secret) cache.SharedIndexInformer {
	if s.Labels[truststore.KubeLabelStore] == "true" && s.Namespace == h.c.opts.CertNamespace {
		return h.c.informers.trust
	}
	return h.c.informers.secrets
}

func (h *harness) upsert(ing *networkingv1.Ingress) {
	h.t.Helper()
	ings := h.client.NetworkingV1().Ingresses(ing.Namespace)
	if _, err := ings.Update(context.Background(), ing, metav1.UpdateOptions{}); err == nil {
		return
	}
	if _, err := ings.Create(context.Background(), ing, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

// refresh copies every Ingress from the fake API server into the informer
// store, as the informer would (status written by sync included).
func (h *harness) refresh() {
	h.t.Helper()
	list, err := h.client.NetworkingV1().Ingresses("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	for i := range list.Items {
		h.store(&list.Items[i], false)
	}
}

// remove deletes o from the informer store.
func (h *harness) remove(o k8sruntime.Object) {
	h.t.Helper()
	var inf cache.SharedIndexInformer
	switch obj := o.(type) {
	case *networkingv1.Ingress:
		inf = h.c.informers.ingresses
	case *corev1.Service:
		inf = h.c.informers.services
	case *corev1.Secret:
		inf = h.secretInformer(obj)
	default:
		h.t.Fatalf("no store for %T", o)
	}
	if err := inf.GetStore().Delete(o); err != nil {
		h.t.Fatal(err)
	}
}

// sync runs one sync and fails the test on an error.
func (h *harness) sync() *config.Snapshot {
	h.t.Helper()
	if err := h.c.sync(context.Background(), h.app); err != nil {
		h.t.Fatalf("sync: %v", err)
	}
	return h.app.last(h.t)
}

// status is the Ingress's status.loadBalancer.ingress in the fake API.
func (h *harness) status(name string) []networkingv1.IngressLoadBalancerIngress {
	h.t.Helper()
	ing, err := h.client.NetworkingV1().Ingresses(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return ing.Status.LoadBalancer.Ingress
}

// statusUpdates counts UpdateStatus calls made so far.
func (h *harness) statusUpdates() int {
	n := 0
	for _, a := range h.client.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

// served lists the Ingresses (by key) with a rule in snap, and the hosts.
func servedHosts(snap *config.Snapshot) map[string][]string {
	out := map[string][]string{}
	for _, l := range snap.Listeners {
		for _, r := range l.Rules {
			key := strings.TrimPrefix(r.Origin.Object, "Ingress ")
			if !slices.Contains(out[key], r.Host) {
				out[key] = append(out[key], r.Host)
			}
		}
	}
	return out
}

func listener(snap *config.Snapshot, port int) *config.Listener {
	for i := range snap.Listeners {
		if snap.Listeners[i].Port == port {
			return &snap.Listeners[i]
		}
	}
	return nil
}

// Fixtures.

// backend is a Service "milvus-demo" with a gRPC port and one ready
// endpoint.
func backend(name string) []k8sruntime.Object {
	ready := true
	portName := "grpc"
	port := int32(19530)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name, UID: types.UID("svc-" + name), ResourceVersion: "1"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: portName, Port: port, Protocol: corev1.ProtocolTCP}}},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name + "-abc", ResourceVersion: "1",
			Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
	}
	return []k8sruntime.Object{svc, slice}
}

func l7lbClass() *networkingv1.IngressClass {
	return &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: "l7lb", ResourceVersion: "1"},
		Spec:       networkingv1.IngressClassSpec{Controller: ControllerName},
	}
}

// ing is an HTTP Ingress of class l7lb for host, forwarding to milvus-demo.
// Options: extra annotations (a "" value deletes one).
func ing(name, host string, extra map[string]string) *networkingv1.Ingress {
	class := "l7lb"
	prefix := networkingv1.PathTypePrefix
	ann := map[string]string{
		"alb.ingress.kubernetes.io/backend-protocol-version": "GRPC",
		"alb.ingress.kubernetes.io/target-type":              "ip",
		"alb.ingress.kubernetes.io/listen-ports":             `[{"HTTP":80}]`,
	}
	for k, v := range extra {
		if v == "" {
			delete(ann, k)
			continue
		}
		ann[k] = v
	}
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name, Annotations: ann,
			UID: types.UID("uid-" + name), ResourceVersion: "1"},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "milvus-demo", Port: networkingv1.ServiceBackendPort{Number: 19530}},
				}}},
			}}}},
		},
	}
}

// revise returns a copy of in with the next resourceVersion and the
// annotations changed as in ing's extra.
func revise(in *networkingv1.Ingress, extra map[string]string) *networkingv1.Ingress {
	out := in.DeepCopy()
	var rv int
	fmt.Sscan(out.ResourceVersion, &rv) //nolint:errcheck // test fixtures always have one
	out.ResourceVersion = fmt.Sprint(rv + 1)
	for k, v := range extra {
		if v == "" {
			delete(out.Annotations, k)
			continue
		}
		out.Annotations[k] = v
	}
	return out
}

// tlsSecret is a kubernetes.io/tls Secret for hosts, issued by a test CA.
func tlsSecret(t *testing.T, ns, name string, hosts ...string) (*corev1.Secret, *pki.Leaf) {
	t.Helper()
	root, err := pki.NewCA("Test Root", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := root.Issue(hosts, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1"},
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       leaf.CertPEM(),
			corev1.TLSPrivateKeyKey: leaf.KeyPEM(),
		},
	}, leaf
}

func objects(groups ...[]k8sruntime.Object) []k8sruntime.Object {
	var out []k8sruntime.Object
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// get is the Ingress as the fake API server has it.
func (h *harness) get(name string) *networkingv1.Ingress {
	h.t.Helper()
	i, err := h.client.NetworkingV1().Ingresses(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return i
}
