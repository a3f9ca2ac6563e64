// Package route holds the compiled, immutable route table of one listener:
// rules of host, path and conditions, evaluated in order, mapping a request
// to an action (forward to one target group or to several by weight, a
// fixed response, or a redirect).
package route

import (
	"math/rand/v2"
	"strings"

	"github.com/l7lb/l7lb/internal/config"
)

// Rule is one compiled rule.
type Rule[T any] struct {
	Name string
	// host is lower-case; "" matches any host; wildcard means host holds
	// the suffix ".example.com" of a "*.example.com" pattern.
	host     string
	wildcard bool
	path     string
	exact    bool
	conds    []cond
	// needsBody: a condition reads the request's first message.
	needsBody bool

	// Dest is the target group of a forward to one group (the zero T for
	// other actions and weighted forwards; use Pick).
	Dest T
	// weighted holds a weighted forward's groups with cumulative weights.
	weighted []weightedDest[T]
	total    uint32

	// Kind says what the rule does; Fixed and Redirect are set for their
	// kinds.
	Kind     ActionKind
	Fixed    *config.FixedResponse
	Redirect *config.Redirect
}

type weightedDest[T any] struct {
	dest T
	// upTo is the sum of the weights up to and including this one.
	upTo uint32
}

// ActionKind is what a rule does with a request it matched.
type ActionKind uint8

const (
	Forward ActionKind = iota
	FixedResponse
	Redirect
)

// Table is a list of rules evaluated in order. It is immutable once built
// and safe for concurrent use.
type Table[T any] struct {
	rules []Rule[T]
	// needsBody: some rule reads the first message.
	needsBody bool
}

// Compile builds a table from configuration rules; dest resolves a target
// group by name. Rules keep their order. The configuration is trusted to
// be valid (the translator checked it): values that do not parse are
// left out of a condition, which then matches less.
func Compile[T any](rules []config.Rule, dest func(targetGroup string) T) *Table[T] {
	t := &Table[T]{rules: make([]Rule[T], 0, len(rules))}
	for _, r := range rules {
		cr := Rule[T]{Name: r.Name, path: r.Path, exact: r.PathType == config.PathExact}
		h := strings.ToLower(r.Host)
		if strings.HasPrefix(h, "*.") {
			cr.wildcard = true
			h = h[1:]
		}
		cr.host = h
		for _, c := range r.Conditions {
			cc := compileCond(c)
			cr.needsBody = cr.needsBody || cc.field == config.ConditionCollection
			cr.conds = append(cr.conds, cc)
		}
		t.needsBody = t.needsBody || cr.needsBody
		switch a := r.Action; {
		case a == nil:
			cr.Dest = dest(r.TargetGroup)
		case a.Type == config.ActionFixedResponse:
			cr.Kind, cr.Fixed = FixedResponse, a.FixedResponse
		case a.Type == config.ActionRedirect:
			cr.Kind, cr.Redirect = Redirect, a.Redirect
		default: // a weighted forward
			for _, w := range a.TargetGroups {
				if w.Weight <= 0 {
					continue // never picked
				}
				cr.total += uint32(w.Weight)
				cr.weighted = append(cr.weighted, weightedDest[T]{dest: dest(w.TargetGroup), upTo: cr.total})
			}
			if len(cr.weighted) > 0 {
				cr.Dest = cr.weighted[0].dest
			}
			if len(cr.weighted) < 2 {
				cr.weighted = nil // one group left: no draw needed
			}
		}
		t.rules = append(t.rules, cr)
	}
	return t
}

// Len is the number of rules.
func (t *Table[T]) Len() int { return len(t.rules) }

// NeedsBody reports whether any rule reads the request's first message.
func (t *Table[T]) NeedsBody() bool { return t.needsBody }

// Stage is how much of a request is known when it is matched.
type Stage uint8

const (
	// Headers: the first message may still come; a rule that needs it
	// and matches otherwise makes Match report needBody.
	Headers Stage = iota
	// Body: Request.Collection holds the first message's collection
	// ("" when it names none).
	Body
	// NoBody: the request's body will not be read (not gRPC); rules that
	// need it do not match.
	NoBody
)

// Match returns the first rule matching req. When a rule that reads the
// first message is reached at Stage Headers, it returns needBody and no
// rule: match again at Stage Body once the message is there. Rules before
// it did not match, so nothing is decided early. It allocates nothing.
func (t *Table[T]) Match(req *Request) (r *Rule[T], needBody bool) {
	for i := range t.rules {
		r := &t.rules[i]
		if !r.matchHost(req.Host) || !r.matchPath(req.Path) {
			continue
		}
		if r.needsBody && req.Stage == Headers {
			if r.matchConds(req, false) {
				return nil, true
			}
			continue
		}
		if len(r.conds) > 0 && !r.matchConds(req, true) {
			continue
		}
		return r, false
	}
	return nil, false
}

// Pick returns the target group of a forward: Dest, or for a weighted
// forward a draw proportional to the weights. It takes no lock and
// allocates nothing: math/rand/v2's top-level source is per-thread.
func (r *Rule[T]) Pick() T {
	if r.weighted == nil {
		return r.Dest
	}
	n := rand.Uint32N(r.total)
	// An action has at most five target groups (the ALB's limit), so a
	// scan is as fast as a search.
	for i := range r.weighted {
		if n < r.weighted[i].upTo {
			return r.weighted[i].dest
		}
	}
	return r.weighted[len(r.weighted)-1].dest
}

// NeedsBody reports whether the rule reads the first message.
func (r *Rule[T]) NeedsBody() bool { return r.needsBody }

func (r *Rule[T]) matchHost(host string) bool {
	switch {
	case r.host == "":
		return true
	case r.wildcard:
		// "*.example.com" matches exactly one more label, as Ingress
		// wildcards do: "a.example.com" but not "a.b.example.com".
		if len(host) <= len(r.host) || !strings.EqualFold(host[len(host)-len(r.host):], r.host) {
			return false
		}
		return !strings.Contains(host[:len(host)-len(r.host)], ".")
	default:
		return strings.EqualFold(host, r.host)
	}
}

// matchPath implements Ingress path semantics: Exact compares the whole
// path; Prefix matches element-wise, so "/foo" matches "/foo" and "/foo/bar"
// but not "/foobar", and a trailing slash in the rule is ignored.
func (r *Rule[T]) matchPath(path string) bool {
	if r.exact {
		return path == r.path
	}
	p := strings.TrimSuffix(r.path, "/")
	if p == "" {
		return true
	}
	if !strings.HasPrefix(path, p) {
		return false
	}
	return len(path) == len(p) || path[len(p)] == '/'
}

// HostOnly strips an optional port from an :authority or Host value.
func HostOnly(authority string) string {
	if authority == "" {
		return ""
	}
	if authority[0] == '[' { // [v6]:port
		if i := strings.IndexByte(authority, ']'); i > 0 {
			return authority[1:i]
		}
		return authority
	}
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && strings.IndexByte(authority, ':') == i {
		return authority[:i]
	}
	return authority
}
