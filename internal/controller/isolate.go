package controller

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/ingress"
	"github.com/l7lb/l7lb/internal/config/manifest"
)

// result is one successful translation.
type result struct {
	snap *config.Snapshot
	// served: the Ingress version actually in snap, by key (the current
	// one, or its last good version when the current one has problems).
	served map[string]*networkingv1.Ingress
	// failed: problems of the current version of an Ingress, by key.
	failed map[string]config.Problems
	// ports: the listener ports carrying an Ingress's rules, by key.
	ports map[string][]int
	// warnings that name an Ingress, by key.
	warnings map[string][]config.Warning
}

// errUnattributable is a translation problem that no Ingress can be
// blamed for; the running snapshot then stays.
var errUnattributable = errors.New("translation failed for no single Ingress")

// translate runs ingress.Translate over the served Ingresses, taking out
// (or rolling back to its last good version) each Ingress the problems
// point at until the rest translates. Every round removes or rolls back at
// least one Ingress, and each can be rolled back once and removed once, so
// the loop ends within 2n+1 rounds.
func (c *Controller) translate(v *view) (*result, error) {
	r := &result{served: map[string]*networkingv1.Ingress{}, failed: map[string]config.Problems{}, ports: map[string][]int{}, warnings: map[string][]config.Warning{}}
	cand := map[string]*networkingv1.Ingress{}
	rolledBack := map[string]bool{}
	for k, ing := range v.served {
		cand[k] = ing
	}
	// fail takes the current version of key out: its last good version
	// (same object, older content) stands in when there is one.
	fail := func(key string, ps config.Problems) {
		r.failed[key] = append(r.failed[key], ps...)
		cur := cand[key]
		if cur == nil {
			return
		}
		if lg := c.lastGood[key]; lg != nil && !rolledBack[key] && lg.UID == cur.UID && lg.ResourceVersion != cur.ResourceVersion {
			cand[key], rolledBack[key] = lg, true
			return
		}
		delete(cand, key)
	}
	for k, ps := range v.problems {
		fail(k, ps)
	}
	// A group conflict is reported on every member, but only the members
	// that changed are taken out: one already served as is is the group's
	// last good state and stays. Should the rolled-back group still
	// disagree (no last good state to keep), every member in it goes.
	for k, ps := range groupConflicts(cand) {
		if lg, cur := c.lastGood[k], cand[k]; lg != nil && lg.UID == cur.UID && lg.ResourceVersion == cur.ResourceVersion {
			r.failed[k] = append(r.failed[k], ps...)
			continue
		}
		fail(k, ps)
	}
	for k, ps := range groupConflicts(cand) {
		if len(r.failed[k]) == 0 {
			r.failed[k] = ps
		}
		delete(cand, k)
	}
	if len(v.classes) == 0 {
		r.snap = &config.Snapshot{Listeners: []config.Listener{}, TargetGroups: []config.TargetGroup{}}
		return r, nil
	}
	opts := ingress.Options{Classes: v.classes, KnownCertificate: c.certs.Known, KnownTrustStore: c.trust.Known}
	with := func(keys []string) manifest.Objects {
		objs := v.objs
		objs.Ingresses = nil
		for _, k := range keys {
			ing := cand[k]
			objs.Ingresses = append(objs.Ingresses, manifest.Ingress{Source: source("Ingress", ing.Namespace, ing.Name), Object: *ing})
		}
		return objs
	}
	// Each Ingress alone first: a broken Ingress also makes the translator
	// report conflicts on the good Ingresses it shares a target group with,
	// and only its own solo problems say which one is to blame. A rolled
	// back version is checked alone too (at most two checks per Ingress).
	for _, k := range sortedKeys(cand) {
		for range 2 {
			if cand[k] == nil {
				break
			}
			_, err := ingress.Translate(with([]string{k}), opts)
			var ps config.Problems
			if err == nil || !errors.As(err, &ps) {
				break
			}
			fail(k, ps)
		}
	}
	for round := 0; round <= 2*len(v.served)+1; round++ {
		keys := sortedKeys(cand)
		snap, err := ingress.Translate(with(keys), opts)
		if err == nil {
			r.snap = snap
			for _, k := range keys {
				r.served[k] = cand[k]
			}
			r.index()
			return r, nil
		}
		var ps config.Problems
		if !errors.As(err, &ps) {
			return nil, fmt.Errorf("translating: %w", err)
		}
		blamed := attribute(ps, cand)
		if len(blamed) == 0 {
			return nil, fmt.Errorf("%w: %v", errUnattributable, err)
		}
		for k, kps := range blamed {
			fail(k, kps)
		}
	}
	return nil, fmt.Errorf("%w: no progress after %d rounds", errUnattributable, 2*len(v.served)+1)
}

func sortedKeys(m map[string]*networkingv1.Ingress) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// attribute maps problems to the Ingresses they concern: by the object
// they name, and for a Service, every Ingress forwarding to it.
func attribute(ps config.Problems, cand map[string]*networkingv1.Ingress) map[string]config.Problems {
	out := map[string]config.Problems{}
	for _, p := range ps {
		kind, key, _ := strings.Cut(p.Origin.Object, " ")
		switch kind {
		case "Ingress":
			if cand[key] != nil {
				out[key] = append(out[key], p)
			}
		case "Service":
			ns, name, _ := strings.Cut(key, "/")
			for k, ing := range cand {
				if ing.Namespace == ns && slices.Contains(backendServices(ing), name) {
					out[k] = append(out[k], p)
				}
			}
		}
	}
	return out
}

// index fills ports and warnings from the snapshot.
func (r *result) index() {
	for _, l := range r.snap.Listeners {
		for _, rule := range l.Rules {
			key, ok := strings.CutPrefix(rule.Origin.Object, "Ingress ")
			if ok && !slices.Contains(r.ports[key], l.Port) {
				r.ports[key] = append(r.ports[key], l.Port)
			}
		}
	}
	for _, w := range r.snap.Warnings {
		// The controller honours group.* itself; the translator, which
		// does not, would call them ignored.
		if w.Annotation == annGroupName || w.Annotation == annGroupOrder {
			continue
		}
		if key, ok := strings.CutPrefix(w.Origin.Object, "Ingress "); ok {
			r.warnings[key] = append(r.warnings[key], w)
		}
	}
}
