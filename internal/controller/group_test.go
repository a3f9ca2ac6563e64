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

func TestCheckGroupAnnotations(t *testing.T) {
	tests := []struct {
		name string
		ann  map[string]string
		want []string // annotations with a problem
	}{
		{"none", nil, nil},
		{"simple name", map[string]string{annGroupName: "milvus"}, nil},
		{"dots and dashes", map[string]string{annGroupName: "team-a.milvus-1"}, nil},
		{"single character", map[string]string{annGroupName: "a"}, nil},
		{"63 characters", map[string]string{annGroupName: strings.Repeat("a", 63)}, nil},
		{"64 characters", map[string]string{annGroupName: strings.Repeat("a", 64)}, []string{annGroupName}},
		{"empty", map[string]string{annGroupName: ""}, []string{annGroupName}},
		{"upper case", map[string]string{annGroupName: "Milvus"}, []string{annGroupName}},
		{"leading dash", map[string]string{annGroupName: "-milvus"}, []string{annGroupName}},
		{"trailing dot", map[string]string{annGroupName: "milvus."}, []string{annGroupName}},
		{"underscore", map[string]string{annGroupName: "mil_vus"}, []string{annGroupName}},
		{"slash", map[string]string{annGroupName: "ns/milvus"}, []string{annGroupName}},
		{"order 0", map[string]string{annGroupOrder: "0"}, nil},
		{"order bounds", map[string]string{annGroupOrder: "-1000"}, nil},
		{"order upper bound", map[string]string{annGroupOrder: "1000"}, nil},
		{"order spaces", map[string]string{annGroupOrder: " 10 "}, nil},
		{"order too big", map[string]string{annGroupOrder: "1001"}, []string{annGroupOrder}},
		{"order too small", map[string]string{annGroupOrder: "-1001"}, []string{annGroupOrder}},
		{"order not a number", map[string]string{annGroupOrder: "first"}, []string{annGroupOrder}},
		{"order fraction", map[string]string{annGroupOrder: "1.5"}, []string{annGroupOrder}},
		{"order empty", map[string]string{annGroupOrder: ""}, []string{annGroupOrder}},
		{"both bad", map[string]string{annGroupName: "A", annGroupOrder: "x"}, []string{annGroupName, annGroupOrder}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := &networkingv1.Ingress{}
			i.Annotations = tt.ann
			ps := checkGroupAnnotations(i, config.Origin{Object: "Ingress milvus/x"})
			var got []string
			for _, p := range ps {
				got = append(got, p.Annotation)
				if p.Origin.Object != "Ingress milvus/x" {
					t.Errorf("problem origin %q", p.Origin.Object)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems on %v, want %v (%v)", got, tt.want, ps)
			}
		})
	}
}

func TestGroupConflicts(t *testing.T) {
	const (
		ssl    = "alb.ingress.kubernetes.io/ssl-policy"
		scheme = "alb.ingress.kubernetes.io/scheme"
		other  = "alb.ingress.kubernetes.io/healthcheck-path" // not Exclusive
	)
	m := func(group string, ann map[string]string) *networkingv1.Ingress {
		i := &networkingv1.Ingress{}
		i.Annotations = map[string]string{}
		if group != "" {
			i.Annotations[annGroupName] = group
		}
		for k, v := range ann {
			i.Annotations[k] = v
		}
		return i
	}
	tests := []struct {
		name    string
		members map[string]*networkingv1.Ingress
		want    []string // keys in conflict
		says    string
	}{
		{
			name: "same value on all",
			members: map[string]*networkingv1.Ingress{
				"a/x": m("g", map[string]string{ssl: "p1"}), "a/y": m("g", map[string]string{ssl: "p1"}),
			},
		},
		{
			name: "on one member only",
			members: map[string]*networkingv1.Ingress{
				"a/x": m("g", map[string]string{ssl: "p1"}), "a/y": m("g", nil),
			},
		},
		{
			name: "disagree",
			members: map[string]*networkingv1.Ingress{
				"a/x": m("g", map[string]string{ssl: "p1"}), "a/y": m("g", map[string]string{ssl: "p2"}), "a/z": m("g", nil),
			},
			want: []string{"a/x", "a/y", "a/z"},
			says: `IngressGroup g: conflicting alb.ingress.kubernetes.io/ssl-policy: "p1" on Ingress a/x, "p2" on Ingress a/y`,
		},
		{
			name: "only the group in conflict",
			members: map[string]*networkingv1.Ingress{
				"a/x": m("g", map[string]string{scheme: "internal"}), "b/y": m("g", map[string]string{scheme: "internet-facing"}),
				"a/ok": m("h", map[string]string{scheme: "internal"}),
			},
			want: []string{"a/x", "b/y"},
			says: "conflicting alb.ingress.kubernetes.io/scheme",
		},
		{
			name: "different groups may differ",
			members: map[string]*networkingv1.Ingress{
				"a/x": m("g", map[string]string{ssl: "p1"}), "a/y": m("h", map[string]string{ssl: "p2"}),
			},
		},
		{
			name: "implicit groups of one may differ",
			members: map[string]*networkingv1.Ingress{
				"a/x": m("", map[string]string{ssl: "p1"}), "a/y": m("", map[string]string{ssl: "p2"}),
			},
		},
		{
			name: "non-Exclusive annotations may differ",
			members: map[string]*networkingv1.Ingress{
				"a/x": m("g", map[string]string{other: "/a"}), "a/y": m("g", map[string]string{other: "/b"}),
			},
		},
		{
			name: "empty value disagrees with a set one",
			members: map[string]*networkingv1.Ingress{
				"a/x": m("g", map[string]string{ssl: ""}), "a/y": m("g", map[string]string{ssl: "p2"}),
			},
			want: []string{"a/x", "a/y"},
			says: `"" on Ingress a/x, "p2" on Ingress a/y`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 3 { // map order must not matter
				got := groupConflicts(tt.members)
				keys := make([]string, 0, len(got))
				for k, ps := range got {
					keys = append(keys, k)
					if len(ps) != 1 || ps[0].Annotation != annGroupName || !strings.Contains(ps[0].Message, tt.says) || ps[0].Origin.Object != "Ingress "+k {
						t.Errorf("%s: %+v, want a message with %q", k, ps, tt.says)
					}
				}
				slices.Sort(keys)
				if !slices.Equal(keys, tt.want) {
					t.Fatalf("conflicts on %v, want %v", keys, tt.want)
				}
			}
		})
	}
}

// TestGroupConflictKeepsLastGoodState: a member changed to disagree on an
// Exclusive annotation gets a Warning Event, so do the other members, and
// the group stays served as it was.
func TestGroupConflictKeepsLastGoodState(t *testing.T) {
	// load-balancer-name: an Exclusive annotation that changes nothing
	// served (ssl-redirect, used before, now empties the HTTP listener).
	const inbound = "alb.ingress.kubernetes.io/load-balancer-name"
	group := map[string]string{annGroupName: "milvus", inbound: "milvus-lb"}
	a, b := ing("a", "a.milvus.io", group), ing("b", "b.milvus.io", group)
	loner := ing("loner", "loner.milvus.io", map[string]string{inbound: "other-lb"})
	h := newHarness(t, Options{PublishAddresses: []string{"127.0.0.1"}}, objects(backend("milvus-demo"), []k8sruntime.Object{l7lbClass(), a, b, loner})...)
	snap := h.sync()
	want := map[string][]string{"milvus/a": {"a.milvus.io"}, "milvus/b": {"b.milvus.io"}, "milvus/loner": {"loner.milvus.io"}}
	if got := servedHosts(snap); !equalHosts(got, want) {
		t.Fatalf("before: served %v", got)
	}
	h.rec.take()
	h.refresh() // the status written comes back

	// b changes its host and disagrees with a.
	b2 := revise(h.get("b"), map[string]string{inbound: "other-lb"})
	b2.Spec.Rules[0].Host = "b2.milvus.io"
	h.store(b2, true)
	snap = h.sync()
	if got := servedHosts(snap); !equalHosts(got, want) {
		t.Errorf("after the conflict: served %v, want the group's last good state %v", got, want)
	}
	evs := h.rec.take()
	for _, k := range []string{"milvus/a", "milvus/b"} {
		ev := eventsFor(evs, k)
		if len(ev) != 1 || ev[0].typ != corev1.EventTypeWarning || !strings.Contains(ev[0].msg, "IngressGroup milvus: conflicting "+inbound) {
			t.Errorf("events on %s: %+v", k, ev)
		}
	}
	if ev := eventsFor(evs, "milvus/loner"); len(ev) != 0 {
		t.Errorf("events on the Ingress outside the group: %+v", ev)
	}
	for _, k := range []string{"a", "b"} {
		if st := h.status(k); len(st) != 1 {
			t.Errorf("status of %s cleared by the conflict: %+v", k, st)
		}
	}

	// Resolved: b's new version is served.
	b3 := revise(b2, map[string]string{inbound: "milvus-lb"})
	h.store(b3, true)
	snap = h.sync()
	want["milvus/b"] = []string{"b2.milvus.io"}
	if got := servedHosts(snap); !equalHosts(got, want) {
		t.Errorf("resolved: served %v, want %v", got, want)
	}
}

// TestGroupNewMemberConflicts: a new member that disagrees with the group
// is not served; the members already served stay.
func TestGroupNewMemberConflicts(t *testing.T) {
	const ssl = "alb.ingress.kubernetes.io/ssl-policy"
	a := ing("a", "a.milvus.io", map[string]string{annGroupName: "milvus", ssl: "p1"})
	h := newHarness(t, Options{}, objects(backend("milvus-demo"), []k8sruntime.Object{l7lbClass(), a})...)
	h.sync()
	h.rec.take()
	n := ing("new", "new.milvus.io", map[string]string{annGroupName: "milvus", ssl: "p2"})
	h.store(n, true)
	got := servedHosts(h.sync())
	if _, ok := got["milvus/new"]; ok {
		t.Errorf("conflicting new member served: %v", got)
	}
	if _, ok := got["milvus/a"]; !ok {
		t.Errorf("member already served dropped by a newcomer's conflict: %v", got)
	}
	if ev := eventsFor(h.rec.take(), "milvus/new"); len(ev) != 1 || ev[0].typ != corev1.EventTypeWarning {
		t.Errorf("events on the new member: %+v", ev)
	}
}

// TestGroupAnnotationProblems: a bad group name or order is the Ingress's
// problem (a Warning), not the translator's ignored annotation; a good one
// raises no warning.
func TestGroupAnnotationProblems(t *testing.T) {
	tests := []struct {
		name   string
		ann    map[string]string
		served bool
		says   string
	}{
		{"good name and order", map[string]string{annGroupName: "milvus", annGroupOrder: "5"}, true, ""},
		{"bad name", map[string]string{annGroupName: "Milvus_Group"}, false, "group name \"Milvus_Group\""},
		{"bad order", map[string]string{annGroupName: "milvus", annGroupOrder: "2000"}, false, "group order \"2000\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{}, objects(backend("milvus-demo"), []k8sruntime.Object{l7lbClass(), ing("demo", "demo.milvus.io", tt.ann)})...)
			_, served := servedHosts(h.sync())["milvus/demo"]
			if served != tt.served {
				t.Errorf("served = %v, want %v", served, tt.served)
			}
			ev := eventsFor(h.rec.take(), "milvus/demo")
			if len(ev) != 1 {
				t.Fatalf("events: %+v", ev)
			}
			if tt.says == "" {
				if ev[0].typ != corev1.EventTypeNormal {
					t.Errorf("a good group annotation made an Event %+v", ev[0])
				}
				return
			}
			if ev[0].typ != corev1.EventTypeWarning || !strings.Contains(ev[0].msg, tt.says) {
				t.Errorf("event %+v, want a Warning with %q", ev[0], tt.says)
			}
		})
	}
}

func equalHosts(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestGroupConflictWithoutLastGood: a group that disagrees from the start
// has no last good state: none of its members is served, each gets a
// Warning, and Ingresses outside the group are served.
func TestGroupConflictWithoutLastGood(t *testing.T) {
	const ssl = "alb.ingress.kubernetes.io/ssl-policy"
	a := ing("a", "a.milvus.io", map[string]string{annGroupName: "milvus", ssl: "p1"})
	b := ing("b", "b.milvus.io", map[string]string{annGroupName: "milvus", ssl: "p2"})
	c := ing("c", "c.milvus.io", map[string]string{ssl: "p3"})
	h := newHarness(t, Options{}, objects(backend("milvus-demo"), []k8sruntime.Object{l7lbClass(), a, b, c})...)
	got := servedHosts(h.sync())
	if !equalHosts(got, map[string][]string{"milvus/c": {"c.milvus.io"}}) {
		t.Errorf("served %v, want only milvus/c", got)
	}
	evs := h.rec.take()
	for _, k := range []string{"milvus/a", "milvus/b"} {
		if ev := eventsFor(evs, k); len(ev) != 1 || ev[0].typ != corev1.EventTypeWarning || strings.Contains(ev[0].msg, "last good version") {
			t.Errorf("events on %s: %+v", k, ev)
		}
	}
}
