package ingress

import (
	"fmt"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/l7lb/l7lb/internal/config"
)

// indexedPath is a path with its position in the spec, for messages.
type indexedPath struct {
	i int
	p networkingv1.HTTPIngressPath
}

// buildRules fills m.rules and m.defaultRule in the precedence documented
// in the package comment.
func (t *translator) buildRules(m *ingressModel) {
	spec := m.ing.Object.Spec
	for ri, r := range spec.Rules {
		at := func(path ...any) config.Origin { return m.ing.At(append([]any{"spec", "rules", ri}, path...)...) }
		if r.Host != "" && !validHost(r.Host) {
			t.problem(at("host"), "", "host %q is not a lower-case DNS name or *.wildcard", r.Host)
			continue
		}
		if r.HTTP == nil {
			// LBC skips such a rule too; say so, since it is likely an
			// unfinished edit.
			t.warn(at(), "", "rule for host %q has no http paths; ignored", r.Host)
			continue
		}
		for _, ip := range sortPaths(r.HTTP.Paths) {
			o := at("http", "paths", ip.i)
			path, pt, ok := t.normalizePath(ip.p, o)
			if !ok {
				continue
			}
			rule, ok := t.backendRule(m, ip.p.Backend, func(p ...any) config.Origin {
				return at(append([]any{"http", "paths", ip.i, "backend"}, p...)...)
			})
			if !ok {
				continue
			}
			rule.Name = fmt.Sprintf("%s#%d", m.key, len(m.rules)+1)
			rule.Host, rule.Path, rule.PathType, rule.Origin = r.Host, path, pt, o
			m.rules = append(m.rules, rule)
		}
	}
	if spec.DefaultBackend != nil {
		o := m.ing.At("spec", "defaultBackend")
		rule, ok := t.backendRule(m, *spec.DefaultBackend, func(p ...any) config.Origin {
			return m.ing.At(append([]any{"spec", "defaultBackend"}, p...)...)
		})
		if ok {
			rule.Name = fmt.Sprintf("%s#%d", m.key, len(m.rules)+1)
			rule.Path, rule.PathType, rule.Origin = "/", config.PathPrefix, o
			m.defaultRule = &rule
		}
	}
	t.warnUnusedRouting(m)
}

// backendRule resolves what a rule does for one backend: its conditions
// (conditions.${service}), and its action (actions.${service} when the port
// is use-annotation) or its target group. The caller fills in the name,
// host and path.
func (t *translator) backendRule(m *ingressModel, b networkingv1.IngressBackend, at func(...any) config.Origin) (config.Rule, bool) {
	if b.Service == nil {
		_, ok := t.backendTargetGroup(m, b, at) // reports the problem
		return config.Rule{}, ok
	}
	conds, condsOK := t.ruleConditions(m, b.Service.Name)
	var rule config.Rule
	ok := false
	if b.Service.Port.Name == useAnnotationPort {
		rule.TargetGroup, rule.Action, ok = t.ruleAction(m, b.Service.Name, at("service", "port"))
	} else {
		rule.TargetGroup, ok = t.backendTargetGroup(m, b, at)
	}
	rule.Conditions = conds
	return rule, ok && condsOK
}

// sortPaths orders one rule's paths as LBC's sortIngressPaths does: Exact,
// then Prefix longest first (stable), then ImplementationSpecific or
// missing pathType in spec order. Unknown types go last and are reported by
// normalizePath.
func sortPaths(paths []networkingv1.HTTPIngressPath) []indexedPath {
	var exact, prefix, other []indexedPath
	for i, p := range paths {
		ip := indexedPath{i, p}
		switch {
		case p.PathType != nil && *p.PathType == networkingv1.PathTypeExact:
			exact = append(exact, ip)
		case p.PathType != nil && *p.PathType == networkingv1.PathTypePrefix:
			prefix = append(prefix, ip)
		default:
			other = append(other, ip)
		}
	}
	slices.SortStableFunc(prefix, func(a, b indexedPath) int { return len(b.p.Path) - len(a.p.Path) })
	return slices.Concat(exact, prefix, other)
}

// normalizePath validates a path and maps it onto the model's Exact and
// Prefix matches; see the package comment for ImplementationSpecific.
func (t *translator) normalizePath(p networkingv1.HTTPIngressPath, o config.Origin) (string, config.PathType, bool) {
	pt := networkingv1.PathTypeImplementationSpecific
	if p.PathType != nil {
		pt = *p.PathType
	}
	switch pt {
	case networkingv1.PathTypeExact, networkingv1.PathTypePrefix:
		if !strings.HasPrefix(p.Path, "/") {
			t.problem(o, "", "path %q must start with \"/\"", p.Path)
			return "", "", false
		}
		if strings.ContainsAny(p.Path, "*?") {
			t.problem(o, "", "%s path %q must not contain wildcards (* or ?)", pt, p.Path)
			return "", "", false
		}
		return p.Path, config.PathType(pt), true
	case networkingv1.PathTypeImplementationSpecific:
		return t.albPathPattern(p.Path, o)
	default:
		t.problem(o, "", "unknown pathType %q; expected Exact, Prefix or ImplementationSpecific", pt)
		return "", "", false
	}
}

// albPathPattern maps an ALB path-pattern (LBC's reading of an
// ImplementationSpecific path) onto Exact or Prefix.
func (t *translator) albPathPattern(path string, o config.Origin) (string, config.PathType, bool) {
	switch {
	case path == "" || path == "*" || path == "/*":
		return "/", config.PathPrefix, true
	case !strings.HasPrefix(path, "/"):
		t.problem(o, "", "path %q must start with \"/\"", path)
		return "", "", false
	case !strings.ContainsAny(path, "*?"):
		t.warn(o, "", "ImplementationSpecific path %q is an ALB path pattern without wildcards and matches only that exact path; use pathType: Prefix to match everything below it", path)
		return path, config.PathExact, true
	case strings.HasSuffix(path, "/*") && !strings.ContainsAny(path[:len(path)-2], "*?"):
		base := path[:len(path)-1]
		t.warn(o, "", "ImplementationSpecific path %q treated as Prefix %q, which also matches %q itself", path, base, strings.TrimSuffix(base, "/"))
		return base, config.PathPrefix, true
	default:
		t.problem(o, "", "ALB wildcard path pattern %q is not supported by l7lb yet; use pathType Prefix or Exact (a trailing \"/*\" is accepted)", path)
		return "", "", false
	}
}

// validHost accepts what Kubernetes accepts for spec.rules[].host: a
// lower-case DNS name, optionally with a leading "*." wildcard label.
func validHost(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}
