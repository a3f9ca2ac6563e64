package controller

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/l7lb/l7lb/internal/config"
)

// TestIsolation: an Ingress with a problem gets a Warning Event naming the
// problem while the others keep being served, whatever the problem is.
func TestIsolation(t *testing.T) {
	tests := []struct {
		name    string
		bad     *networkingv1.Ingress
		extra   []k8sruntime.Object
		wantMsg []string // substrings of the Warning on the bad Ingress
	}{
		{
			name:    "bad annotation value",
			bad:     ing("broken", "broken.milvus.io", map[string]string{"alb.ingress.kubernetes.io/backend-protocol-version": "GRPCX"}),
			wantMsg: []string{"backend-protocol-version", "GRPCX"},
		},
		{
			name:    "bad listen-ports",
			bad:     ing("broken", "broken.milvus.io", map[string]string{"alb.ingress.kubernetes.io/listen-ports": `[{"HTTP":"eighty"}]`}),
			wantMsg: []string{"listen-ports"},
		},
		{
			name: "missing backend Service",
			bad: func() *networkingv1.Ingress {
				i := ing("broken", "broken.milvus.io", nil)
				i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "nowhere"
				return i
			}(),
			wantMsg: []string{"backend Service milvus/nowhere not found"},
		},
		{
			name:    "HTTPS without certificate",
			bad:     ing("broken", "broken.milvus.io", map[string]string{"alb.ingress.kubernetes.io/listen-ports": `[{"HTTPS":443}]`}),
			wantMsg: []string{"needs a certificate"},
		},
		{
			name: "protocol clash with the good Ingress's port",
			// The translator reports this on the later Ingress only when
			// both are translated together: "zz" sorts after "good".
			bad: func() *networkingv1.Ingress {
				i := ing("zz-broken", "broken.milvus.io", map[string]string{"alb.ingress.kubernetes.io/listen-ports": `[{"HTTPS":80}]`})
				i.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"broken.milvus.io"}, SecretName: "broken-tls"}}
				return i
			}(),
			extra:   []k8sruntime.Object{tlsSecretFor("broken-tls", "broken.milvus.io")},
			wantMsg: []string{"port 80 is HTTPS here but HTTP in Ingress milvus/good"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, o := range tt.extra {
				if f, ok := o.(secretFixture); ok {
					s, _ := tlsSecret(t, testNS, f.name, f.hosts...)
					tt.extra[i] = s
				}
			}
			good := ing("good", "good.milvus.io", nil)
			h := newHarness(t, Options{}, objects(backend("milvus-demo"), tt.extra, []k8sruntime.Object{l7lbClass(), good, tt.bad})...)
			snap := h.sync()
			badKey := testNS + "/" + tt.bad.Name
			hosts := servedHosts(snap)
			if !slices.Equal(hosts["milvus/good"], []string{"good.milvus.io"}) {
				t.Errorf("good Ingress not served next to a bad one: served %v", hosts)
			}
			if _, ok := hosts[badKey]; ok {
				t.Errorf("bad Ingress served: %v", hosts)
			}
			evs := h.rec.take()
			be := eventsFor(evs, badKey)
			if len(be) != 1 || be[0].typ != corev1.EventTypeWarning || be[0].reason != reasonFailed {
				t.Fatalf("events on the bad Ingress: %+v", be)
			}
			for _, s := range tt.wantMsg {
				if !strings.Contains(be[0].msg, s) {
					t.Errorf("event %q does not say %q", be[0].msg, s)
				}
			}
			if strings.Contains(be[0].msg, "last good") {
				t.Errorf("event %q claims a last good version it never had", be[0].msg)
			}
			ge := eventsFor(evs, "milvus/good")
			if len(ge) != 1 || ge[0].typ != corev1.EventTypeNormal || ge[0].reason != reasonReconciled {
				t.Errorf("events on the good Ingress: %+v", ge)
			}
			// A resync with nothing changed repeats no Event.
			h.sync()
			if evs := h.rec.take(); len(evs) != 0 {
				t.Errorf("a resync repeated Events: %+v", evs)
			}
		})
	}
}

// secretFixture stands for a TLS Secret made once the test runs.
type secretFixture struct {
	k8sruntime.Object
	name  string
	hosts []string
}

func tlsSecretFor(name string, hosts ...string) k8sruntime.Object {
	return secretFixture{name: name, hosts: hosts}
}

// TestLastGoodVersion: an Ingress that breaks is served from its last
// version that translated, and the Warning says so; fixed, it is served
// as is again; deleted, its last good version is forgotten.
func TestLastGoodVersion(t *testing.T) {
	v1 := ing("demo", "demo.milvus.io", nil)
	other := ing("other", "other.milvus.io", nil)
	h := newHarness(t, Options{}, objects(backend("milvus-demo"), []k8sruntime.Object{l7lbClass(), v1, other})...)
	h.sync()
	h.rec.take()

	// v2 breaks and changes the host: v1's host stays served.
	v2 := revise(v1, map[string]string{"alb.ingress.kubernetes.io/backend-protocol-version": "GRPCX"})
	v2.Spec.Rules[0].Host = "new.milvus.io"
	h.store(v2, true)
	snap := h.sync()
	if got := servedHosts(snap)["milvus/demo"]; !slices.Equal(got, []string{"demo.milvus.io"}) {
		t.Fatalf("broken update: served hosts %v, want the last good version's", got)
	}
	ev := eventsFor(h.rec.take(), "milvus/demo")
	if len(ev) != 1 || ev[0].typ != corev1.EventTypeWarning || !strings.Contains(ev[0].msg, "GRPCX") || !strings.Contains(ev[0].msg, "serving its last good version") {
		t.Fatalf("events: %+v", ev)
	}
	if got := h.c.lastGood["milvus/demo"]; got.ResourceVersion != v1.ResourceVersion {
		t.Errorf("last good version moved to %s", got.ResourceVersion)
	}

	// A second broken version still falls back to v1.
	v3 := revise(v2, map[string]string{"alb.ingress.kubernetes.io/listen-ports": `[{"HTTP":"x"}]`})
	h.store(v3, true)
	if got := servedHosts(h.sync())["milvus/demo"]; !slices.Equal(got, []string{"demo.milvus.io"}) {
		t.Fatalf("second broken update: served hosts %v", got)
	}
	if ev := eventsFor(h.rec.take(), "milvus/demo"); len(ev) != 1 || !strings.Contains(ev[0].msg, "listen-ports") {
		t.Errorf("events after the second broken update: %+v", ev)
	}

	// Fixed: the new host is served, a Normal Event follows.
	v4 := revise(v3, map[string]string{"alb.ingress.kubernetes.io/backend-protocol-version": "GRPC", "alb.ingress.kubernetes.io/listen-ports": `[{"HTTP":80}]`})
	h.store(v4, true)
	if got := servedHosts(h.sync())["milvus/demo"]; !slices.Equal(got, []string{"new.milvus.io"}) {
		t.Fatalf("fixed: served hosts %v", got)
	}
	if ev := eventsFor(h.rec.take(), "milvus/demo"); len(ev) != 1 || ev[0].typ != corev1.EventTypeNormal {
		t.Errorf("events after the fix: %+v", ev)
	}

	// Deleted: gone from the snapshot and from lastGood.
	h.remove(v4)
	snap = h.sync()
	if _, ok := servedHosts(snap)["milvus/demo"]; ok {
		t.Errorf("deleted Ingress still served")
	}
	if _, ok := h.c.lastGood["milvus/demo"]; ok {
		t.Errorf("deleted Ingress still has a last good version")
	}
	if got := servedHosts(snap)["milvus/other"]; len(got) != 1 {
		t.Errorf("other Ingress not served: %v", servedHosts(snap))
	}
}

// TestNoClassesServed: without a served class the snapshot is empty, not
// an error.
func TestNoClassesServed(t *testing.T) {
	h := newHarness(t, Options{}, objects(backend("milvus-demo"), []k8sruntime.Object{ing("demo", "demo.milvus.io", nil)})...)
	snap := h.sync()
	if len(snap.Listeners) != 0 || len(snap.TargetGroups) != 0 {
		t.Errorf("snapshot without served classes: %+v", snap)
	}
	if !h.c.Ready() {
		t.Errorf("not ready after a sync")
	}
}

// TestServedClasses: which classes are served, and which Ingresses belong.
func TestServedClasses(t *testing.T) {
	ic := func(name, ctl string, dflt bool) *networkingv1.IngressClass {
		c := &networkingv1.IngressClass{Spec: networkingv1.IngressClassSpec{Controller: ctl}}
		c.Name = name
		if dflt {
			c.Annotations = map[string]string{annDefaultClass: "true"}
		}
		return c
	}
	tests := []struct {
		name    string
		flag    []string
		classes []*networkingv1.IngressClass
		want    []string
	}{
		{"ours only", nil, []*networkingv1.IngressClass{ic("l7lb", ControllerName, false), ic("nginx", "k8s.io/ingress-nginx", false)}, []string{"l7lb"}},
		{"flag without IngressClass", []string{"alb"}, nil, []string{"alb"}},
		{"flag with LBC's IngressClass", []string{"alb"}, []*networkingv1.IngressClass{ic("alb", "ingress.k8s.aws/alb", false)}, []string{"alb"}},
		{"flag naming another controller's class", []string{"nginx"}, []*networkingv1.IngressClass{ic("nginx", "k8s.io/ingress-nginx", false)}, nil},
		{"flag and ours, no duplicate", []string{"l7lb", "alb"}, []*networkingv1.IngressClass{ic("l7lb", ControllerName, false)}, []string{"alb", "l7lb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{Classes: tt.flag})
			if got := h.c.servedClasses(tt.classes); !slices.Equal(got, tt.want) {
				t.Errorf("servedClasses = %v, want %v", got, tt.want)
			}
		})
	}

	className := func(s string) *string { return &s }
	ingTests := []struct {
		name     string
		ann      string
		spec     *string
		defaults []string
		want     string
		ok       bool
	}{
		{"annotation wins", "alb", className("l7lb"), nil, "alb", true},
		{"spec", "", className("l7lb"), nil, "l7lb", true},
		{"single default", "", nil, []string{"l7lb"}, "l7lb", true},
		{"two defaults: none", "", nil, []string{"a", "b"}, "", false},
		{"no class", "", nil, nil, "", false},
	}
	for _, tt := range ingTests {
		t.Run("classOf "+tt.name, func(t *testing.T) {
			i := &networkingv1.Ingress{}
			if tt.ann != "" {
				i.Annotations = map[string]string{annIngressClass: tt.ann}
			}
			i.Spec.IngressClassName = tt.spec
			got, ok := classOf(i, tt.defaults)
			if got != tt.want || ok != tt.ok {
				t.Errorf("classOf = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestAttribute: problems map to the Ingress they name, or to every
// Ingress forwarding to the Service they name.
func TestAttribute(t *testing.T) {
	a, b := ing("a", "a.io", nil), ing("b", "b.io", nil)
	b.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "other"
	cand := map[string]*networkingv1.Ingress{"milvus/a": a, "milvus/b": b}
	p := func(obj string) config.Problem {
		return config.Problem{Origin: config.Origin{Object: obj}, Message: obj}
	}
	tests := []struct {
		name string
		ps   config.Problems
		want map[string]int
	}{
		{"ingress", config.Problems{p("Ingress milvus/a")}, map[string]int{"milvus/a": 1}},
		{"not a candidate", config.Problems{p("Ingress milvus/gone")}, map[string]int{}},
		{"service", config.Problems{p("Service milvus/milvus-demo")}, map[string]int{"milvus/a": 1}},
		{"service in another namespace", config.Problems{p("Service other/milvus-demo")}, map[string]int{}},
		{"unattributable", config.Problems{p(""), p("IngressClass alb")}, map[string]int{}},
		{"both", config.Problems{p("Ingress milvus/b"), p("Service milvus/other")}, map[string]int{"milvus/b": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := attribute(tt.ps, cand)
			if len(got) != len(tt.want) {
				t.Fatalf("attribute = %v, want counts %v", got, tt.want)
			}
			for k, n := range tt.want {
				if len(got[k]) != n {
					t.Errorf("%s: %d problems, want %d", k, len(got[k]), n)
				}
			}
		})
	}
}

// TestJoinProblemsBounded: an Event message stays under the API's limit.
func TestJoinProblemsBounded(t *testing.T) {
	var ps config.Problems
	for range 100 {
		ps = append(ps, config.Problem{Origin: config.Origin{Object: "Ingress milvus/x"}, Message: strings.Repeat("m", 50)})
	}
	msg := joinProblems(ps)
	if len(msg) != maxEventMessage || !strings.HasSuffix(msg, "...") {
		t.Errorf("message of %d bytes, ends %q", len(msg), msg[len(msg)-3:])
	}
	if got := joinProblems(ps[:2]); strings.Count(got, "; ") != 1 {
		t.Errorf("two problems joined as %q", got)
	}
}
