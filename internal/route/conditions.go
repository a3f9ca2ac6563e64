package route

import (
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"

	"golang.org/x/net/http2/hpack"

	"github.com/l7lb/l7lb/internal/config"
)

// Request is what rules look at. Exactly one of Fields (HTTP/2, lower-case
// names) and Header (net/http) carries the headers.
type Request struct {
	// Host is the host without port, Path the path without query, Query
	// the raw query (after "?", still percent-encoded).
	Host, Path, Query, Method string
	Fields                    []hpack.HeaderField
	Header                    http.Header
	// Client is the address of the connection's peer as l7lb sees it.
	Client netip.Addr
	Stage  Stage
	// Collection is the first message's collection_name (Stage Body).
	Collection string
}

// cond is a compiled condition.
type cond struct {
	field config.ConditionField
	// name is the http-header's lower-case name, canonical its net/http
	// form.
	name, canonical string
	values          []string
	pairs           []config.QueryPair
	prefixes        []netip.Prefix
}

func compileCond(c config.Condition) cond {
	cc := cond{field: c.Field, values: c.Values, pairs: c.QueryString}
	if c.Field == config.ConditionHTTPHeader {
		cc.name = strings.ToLower(c.HeaderName)
		cc.canonical = textproto.CanonicalMIMEHeaderKey(c.HeaderName)
	}
	if c.Field == config.ConditionSourceIP {
		for _, v := range c.Values {
			if p, err := netip.ParsePrefix(v); err == nil {
				cc.prefixes = append(cc.prefixes, p.Masked())
			}
		}
	}
	return cc
}

// matchConds reports whether every condition holds; with body false the
// conditions that read the first message are taken as holding (they are
// checked once it is there).
func (r *Rule[T]) matchConds(req *Request, body bool) bool {
	for i := range r.conds {
		c := &r.conds[i]
		if c.field == config.ConditionCollection && !body {
			continue
		}
		if !c.match(req) {
			return false
		}
	}
	return true
}

func (c *cond) match(req *Request) bool {
	switch c.field {
	case config.ConditionHostHeader:
		return anyWildcard(c.values, req.Host, true)
	case config.ConditionPathPattern:
		return anyWildcard(c.values, req.Path, false)
	case config.ConditionHTTPRequestMethod:
		for _, v := range c.values {
			if v == req.Method {
				return true
			}
		}
		return false
	case config.ConditionHTTPHeader:
		if req.Header != nil {
			for _, v := range req.Header[c.canonical] {
				if anyWildcard(c.values, v, true) {
					return true
				}
			}
			return false
		}
		for i := range req.Fields {
			if f := &req.Fields[i]; f.Name == c.name && anyWildcard(c.values, f.Value, true) {
				return true
			}
		}
		return false
	case config.ConditionQueryString:
		return c.matchQuery(req.Query)
	case config.ConditionSourceIP:
		a := req.Client.Unmap()
		for _, p := range c.prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	case config.ConditionCollection:
		return req.Stage == Body && anyWildcard(c.values, req.Collection, false)
	}
	return false
}

// matchQuery reports whether any pair of the query matches any pattern
// pair. Keys and values are compared decoded, without regard to case, as
// the ALB compares them.
func (c *cond) matchQuery(q string) bool {
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, v = unescape(k), unescape(v)
		for _, p := range c.pairs {
			if (p.Key == "" || wildcard(p.Key, k, true)) && wildcard(p.Value, v, true) {
				return true
			}
		}
	}
	return false
}

// unescape decodes a query component; it allocates only when there is
// something to decode.
func unescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}

func anyWildcard(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if wildcard(p, s, fold) {
			return true
		}
	}
	return false
}

// wildcard matches s against an ALB pattern: "*" is any run of characters
// (also none), "?" exactly one; fold compares ASCII letters without regard
// to case. It backtracks only to the last "*", so it runs in
// O(len(p)*len(s)) at worst and allocates nothing.
func wildcard(p, s string, fold bool) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && (p[pi] == '?' || sameByte(p[pi], s[si], fold)):
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func sameByte(a, b byte, fold bool) bool {
	if a == b {
		return true
	}
	if !fold {
		return false
	}
	if 'A' <= a && a <= 'Z' {
		a += 'a' - 'A'
	}
	if 'A' <= b && b <= 'Z' {
		b += 'a' - 'A'
	}
	return a == b
}
