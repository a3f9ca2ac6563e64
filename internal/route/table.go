// Package route holds the compiled, immutable route table of one listener:
// host and path rules, evaluated in order, mapping a request to a
// destination (a target group at run time).
package route

import (
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
	Dest     T
}

// Table is a list of rules evaluated in order. It is immutable once built
// and safe for concurrent use.
type Table[T any] struct {
	rules []Rule[T]
}

// Compile builds a table from configuration rules; dest resolves each
// rule's target group. Rules keep their order.
func Compile[T any](rules []config.Rule, dest func(config.Rule) T) *Table[T] {
	t := &Table[T]{rules: make([]Rule[T], 0, len(rules))}
	for _, r := range rules {
		cr := Rule[T]{Name: r.Name, path: r.Path, exact: r.PathType == config.PathExact, Dest: dest(r)}
		h := strings.ToLower(r.Host)
		if strings.HasPrefix(h, "*.") {
			cr.wildcard = true
			h = h[1:]
		}
		cr.host = h
		t.rules = append(t.rules, cr)
	}
	return t
}

// Len is the number of rules.
func (t *Table[T]) Len() int { return len(t.rules) }

// Match returns the first rule matching host (without port, any case) and
// path. It allocates nothing.
func (t *Table[T]) Match(host, path string) (*Rule[T], bool) {
	for i := range t.rules {
		r := &t.rules[i]
		if !r.matchHost(host) || !r.matchPath(path) {
			continue
		}
		return r, true
	}
	return nil, false
}

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
