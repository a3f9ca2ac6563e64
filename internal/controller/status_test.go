package controller

import (
	"context"
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

func lb(ip, host string, ports ...int32) networkingv1.IngressLoadBalancerIngress {
	e := networkingv1.IngressLoadBalancerIngress{IP: ip, Hostname: host}
	for _, p := range ports {
		e.Ports = append(e.Ports, networkingv1.IngressPortStatus{Port: p, Protocol: corev1.ProtocolTCP})
	}
	return e
}

// TestStatus: what status.loadBalancer a served Ingress gets, from
// --publish-address or the publish Service, and who may write it.
func TestStatus(t *testing.T) {
	publishSvc := &corev1.Service{}
	publishSvc.Namespace, publishSvc.Name = "l7lb", "l7lb"
	publishSvc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "lb.example.com"}, {IP: "192.0.2.7"}}
	tests := []struct {
		name   string
		opts   Options
		extra  []k8sruntime.Object
		follow bool // not the leader
		ann    map[string]string
		want   []networkingv1.IngressLoadBalancerIngress
	}{
		{
			name: "publish IP",
			opts: Options{PublishAddresses: []string{"127.0.0.1"}},
			want: []networkingv1.IngressLoadBalancerIngress{lb("127.0.0.1", "", 80)},
		},
		{
			name: "publish host name and IPv6, two listeners",
			opts: Options{PublishAddresses: []string{"l7lb.example.com", "2001:db8::1"}},
			ann:  map[string]string{"alb.ingress.kubernetes.io/listen-ports": `[{"HTTP":8080},{"HTTP":80}]`},
			want: []networkingv1.IngressLoadBalancerIngress{lb("", "l7lb.example.com", 80, 8080), lb("2001:db8::1", "", 80, 8080)},
		},
		{
			name:  "publish Service",
			opts:  Options{PublishService: "l7lb/l7lb"},
			extra: []k8sruntime.Object{publishSvc},
			want:  []networkingv1.IngressLoadBalancerIngress{lb("", "lb.example.com", 80), lb("192.0.2.7", "", 80)},
		},
		{
			name:  "publish addresses win over the Service",
			opts:  Options{PublishAddresses: []string{"10.1.1.1"}, PublishService: "l7lb/l7lb"},
			extra: []k8sruntime.Object{publishSvc},
			want:  []networkingv1.IngressLoadBalancerIngress{lb("10.1.1.1", "", 80)},
		},
		{
			name: "publish Service missing: no status",
			opts: Options{PublishService: "l7lb/absent"},
		},
		{
			name: "no address at all: no status",
		},
		{
			name:   "follower writes nothing",
			opts:   Options{PublishAddresses: []string{"127.0.0.1"}},
			follow: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := ing("demo", "demo.milvus.io", tt.ann)
			h := newHarness(t, tt.opts, objects(backend("milvus-demo"), tt.extra, []k8sruntime.Object{l7lbClass(), i})...)
			h.c.leader.Store(!tt.follow)
			h.sync()
			got := h.status("demo")
			if !equalStatus(got, tt.want) {
				t.Fatalf("status = %+v, want %+v", got, tt.want)
			}
			want := 0
			if len(tt.want) > 0 {
				want = 1
			}
			if n := h.statusUpdates(); n != want {
				t.Errorf("%d status updates, want %d", n, want)
			}
			// The informer brings the written status back; the next sync
			// finds it right and writes nothing.
			if len(tt.want) > 0 {
				cur, err := h.client.NetworkingV1().Ingresses(testNS).Get(context.Background(), "demo", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				h.store(cur, false)
				h.sync()
				if n := h.statusUpdates(); n != want {
					t.Errorf("a resync rewrote an unchanged status (%d updates)", n)
				}
			}
		})
	}
}

// TestStatusClearedLeavingClass: an Ingress that leaves the served classes
// (or breaks with no last good version) has the status l7lb wrote cleared;
// another controller's status is left alone.
func TestStatusClearedLeavingClass(t *testing.T) {
	tests := []struct {
		name   string
		change func(*networkingv1.Ingress) *networkingv1.Ingress
		want   []networkingv1.IngressLoadBalancerIngress
	}{
		{
			name: "class changed",
			change: func(i *networkingv1.Ingress) *networkingv1.Ingress {
				out := revise(i, nil)
				other := "nginx"
				out.Spec.IngressClassName = &other
				return out
			},
		},
		{
			name: "legacy class annotation to another class",
			change: func(i *networkingv1.Ingress) *networkingv1.Ingress {
				return revise(i, map[string]string{annIngressClass: "nginx"})
			},
		},
		{
			name: "class removed",
			change: func(i *networkingv1.Ingress) *networkingv1.Ingress {
				out := revise(i, nil)
				out.Spec.IngressClassName = nil
				return out
			},
		},
		{
			name: "broken update keeps its last good version and status",
			change: func(i *networkingv1.Ingress) *networkingv1.Ingress {
				return revise(i, map[string]string{"alb.ingress.kubernetes.io/backend-protocol-version": "GRPCX"})
			},
			want: []networkingv1.IngressLoadBalancerIngress{lb("127.0.0.1", "", 80)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			demo := ing("demo", "demo.milvus.io", nil)
			h := newHarness(t, Options{PublishAddresses: []string{"127.0.0.1"}}, objects(backend("milvus-demo"), []k8sruntime.Object{l7lbClass(), demo})...)
			h.sync()
			cur, err := h.client.NetworkingV1().Ingresses(testNS).Get(context.Background(), "demo", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(cur.Status.LoadBalancer.Ingress) != 1 {
				t.Fatalf("no status written: %+v", cur.Status)
			}
			next := tt.change(cur)
			h.store(next, true)
			snap := h.sync()
			if got := h.status("demo"); !equalStatus(got, tt.want) {
				t.Errorf("status = %+v, want %+v", got, tt.want)
			}
			_, served := servedHosts(snap)["milvus/demo"]
			if served != (tt.want != nil) {
				t.Errorf("served = %v with status %+v", served, tt.want)
			}
		})
	}

	t.Run("another controller's status left alone", func(t *testing.T) {
		demo := ing("demo", "demo.milvus.io", nil)
		other := "nginx"
		demo.Spec.IngressClassName = &other
		foreign := []networkingv1.IngressLoadBalancerIngress{lb("203.0.113.9", "", 80)}
		demo.Status.LoadBalancer.Ingress = foreign
		h := newHarness(t, Options{PublishAddresses: []string{"127.0.0.1"}}, objects(backend("milvus-demo"), []k8sruntime.Object{l7lbClass(), demo})...)
		h.sync()
		if got := h.status("demo"); !equalStatus(got, foreign) || h.statusUpdates() != 0 {
			t.Errorf("status = %+v after %d updates, want the other controller's", got, h.statusUpdates())
		}
	})
}

// TestStatusUpdateErrors: NotFound and Conflict wait for the informer;
// anything else fails the sync (which Run retries).
func TestStatusUpdateErrors(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantErr bool
	}{
		{"not found", errNotFound(), false},
		{"conflict", errConflict(), false},
		{"server error", errors.New("etcd on fire"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{PublishAddresses: []string{"127.0.0.1"}}, objects(backend("milvus-demo"), []k8sruntime.Object{l7lbClass(), ing("demo", "demo.milvus.io", nil)})...)
			h.client.PrependReactor("update", "ingresses", func(a k8stesting.Action) (bool, k8sruntime.Object, error) {
				return a.GetSubresource() == "status", nil, tt.err
			})
			err := h.c.sync(context.Background(), h.app)
			if (err != nil) != tt.wantErr {
				t.Errorf("sync error %v, want error %v", err, tt.wantErr)
			}
			if len(h.app.snaps) != 1 {
				t.Errorf("snapshot not applied before the status write")
			}
		})
	}
}

func TestStatusHelpers(t *testing.T) {
	if got := wantStatus([]string{"a.example", "10.0.0.1"}, []int{443, 80}); !equalStatus(got, []networkingv1.IngressLoadBalancerIngress{lb("", "a.example", 80, 443), lb("10.0.0.1", "", 80, 443)}) {
		t.Errorf("wantStatus = %+v", got)
	}
	writtenTests := []struct {
		name  string
		st    []networkingv1.IngressLoadBalancerIngress
		addrs []string
		want  bool
	}{
		{"ours", []networkingv1.IngressLoadBalancerIngress{lb("1.1.1.1", ""), lb("", "x.io")}, []string{"1.1.1.1", "x.io"}, true},
		{"mixed", []networkingv1.IngressLoadBalancerIngress{lb("1.1.1.1", ""), lb("2.2.2.2", "")}, []string{"1.1.1.1"}, false},
		{"empty status", nil, []string{"1.1.1.1"}, false},
		{"no addresses", []networkingv1.IngressLoadBalancerIngress{lb("1.1.1.1", "")}, nil, false},
	}
	for _, tt := range writtenTests {
		if got := written(tt.st, tt.addrs); got != tt.want {
			t.Errorf("written %s = %v, want %v", tt.name, got, tt.want)
		}
	}
	for _, tt := range []struct{ in, ns, name string }{{"a/b", "a", "b"}, {"b", "", "b"}, {"a/b/c", "a", "b/c"}} {
		if ns, name := splitKey(tt.in); ns != tt.ns || name != tt.name {
			t.Errorf("splitKey(%q) = %q, %q", tt.in, ns, name)
		}
	}
	a := []networkingv1.IngressLoadBalancerIngress{lb("1.1.1.1", "", 80)}
	for _, b := range [][]networkingv1.IngressLoadBalancerIngress{nil, {lb("1.1.1.1", "", 443)}, {lb("1.1.1.1", "")}, {lb("", "1.1.1.1", 80)}} {
		if equalStatus(a, b) {
			t.Errorf("equalStatus(%+v, %+v)", a, b)
		}
	}
	if !equalStatus(a, slices.Clone(a)) {
		t.Errorf("equalStatus of equal statuses")
	}
}

func errNotFound() error {
	return apierrors.NewNotFound(networkingv1.Resource("ingresses"), "demo")
}

func errConflict() error {
	return apierrors.NewConflict(networkingv1.Resource("ingresses"), "demo", errors.New("changed"))
}
