package ingress

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/l7lb/l7lb/internal/config"
)

// The user-facing JSON of conditions.${name}, as LBC reads it
// (pkg/ingress/config_types.go RuleCondition), plus l7lb's own
// collectionConfig (only in l7lb.io/conditions.${name}).
type albCondition struct {
	Field                   string               `json:"field"`
	HostHeaderConfig        *albValues           `json:"hostHeaderConfig"`
	HTTPHeaderConfig        *albHTTPHeaderConfig `json:"httpHeaderConfig"`
	HTTPRequestMethodConfig *albValues           `json:"httpRequestMethodConfig"`
	PathPatternConfig       *albValues           `json:"pathPatternConfig"`
	QueryStringConfig       *albQueryConfig      `json:"queryStringConfig"`
	SourceIPConfig          *albValues           `json:"sourceIPConfig"`
	CollectionConfig        *albValues           `json:"collectionConfig"`
}

type albValues struct {
	Values []string `json:"values"`
}

type albHTTPHeaderConfig struct {
	HTTPHeaderName string   `json:"httpHeaderName"`
	Values         []string `json:"values"`
}

type albQueryConfig struct {
	Values []struct {
		Key   *string `json:"key"`
		Value string  `json:"value"`
	} `json:"values"`
}

const (
	conditionsExample     = `[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"dbname","values":["analytics"]}}]`
	l7lbConditionsExample = `[{"field":"collection","collectionConfig":{"values":["books","logs_*"]}}]`
	albConditionFields    = "host-header, http-header, http-request-method, path-pattern, query-string or source-ip"
	// maxConditionValue is the ALB's limit on one pattern.
	maxConditionValue = 128
)

// routingState remembers, per Ingress, the routing annotations parsed so
// far (a service named by several paths is parsed once, so its problems
// are reported once) and which ones some backend used.
type routingState struct {
	conds map[string]condParse // Ingress key + "\x00" + service
	used  map[string]bool      // Ingress key + "\x00" + annotation
}

type condParse struct {
	conds []config.Condition
	ok    bool
}

func (t *translator) routingUsed(m *ingressModel, key string) {
	if t.routing.used == nil {
		t.routing.used = map[string]bool{}
	}
	t.routing.used[m.key+"\x00"+key] = true
}

// ruleConditions returns the conditions of the paths whose backend is
// service svcName: the Ingress's conditions.${svcName} and
// l7lb.io/conditions.${svcName}, ANDed. As in LBC they apply whatever the
// backend's port, use-annotation or not.
func (t *translator) ruleConditions(m *ingressModel, svcName string) ([]config.Condition, bool) {
	ck := m.key + "\x00" + svcName
	if p, ok := t.routing.conds[ck]; ok {
		return p.conds, p.ok
	}
	var out []config.Condition
	ok := true
	for _, key := range []string{annConditionsPrefix + svcName, annL7LBConditionsPrefix + svcName} {
		raw, set := m.ann.get(key)
		if !set {
			continue
		}
		t.routingUsed(m, key)
		cs, good := t.parseConditions(m.ann.origin(key), key, raw, strings.HasPrefix(key, l7lbPrefix))
		ok = ok && good
		out = append(out, cs...)
	}
	if t.routing.conds == nil {
		t.routing.conds = map[string]condParse{}
	}
	t.routing.conds[ck] = condParse{out, ok}
	return out, ok
}

func (t *translator) parseConditions(o config.Origin, key, raw string, ours bool) ([]config.Condition, bool) {
	example := conditionsExample
	if ours {
		example = l7lbConditionsExample
	}
	var in []albCondition
	if err := decodeStrict(raw, &in); err != nil {
		t.problem(o, key, "invalid JSON: %v; expected a list like %s", err, example)
		return nil, false
	}
	if len(in) == 0 {
		t.problem(o, key, "empty list; expected a list like %s", example)
		return nil, false
	}
	var out []config.Condition
	ok := true
	for i, c := range in {
		cond, err := convertCondition(c, ours)
		if err != nil {
			t.problem(o, key, "condition %d (field %q): %v", i, c.Field, err)
			ok = false
			continue
		}
		out = append(out, cond)
	}
	return out, ok
}

// convertCondition checks one condition as the ALB would and puts it in
// the form the route table compiles.
func convertCondition(c albCondition, ours bool) (config.Condition, error) {
	f := config.ConditionField(c.Field)
	given := map[config.ConditionField]bool{
		config.ConditionHostHeader: c.HostHeaderConfig != nil, config.ConditionHTTPHeader: c.HTTPHeaderConfig != nil,
		config.ConditionHTTPRequestMethod: c.HTTPRequestMethodConfig != nil, config.ConditionPathPattern: c.PathPatternConfig != nil,
		config.ConditionQueryString: c.QueryStringConfig != nil, config.ConditionSourceIP: c.SourceIPConfig != nil,
		config.ConditionCollection: c.CollectionConfig != nil,
	}
	if _, known := given[f]; !known {
		if ours {
			return config.Condition{}, fmt.Errorf("unknown condition field; expected collection (the ALB's fields go in %s${name})", annConditionsPrefix)
		}
		return config.Condition{}, fmt.Errorf("unknown condition field; expected %s", albConditionFields)
	}
	if ours != (f == config.ConditionCollection) {
		if ours {
			return config.Condition{}, fmt.Errorf("the ALB's condition fields go in %s${name}; %s${name} takes only collection", annConditionsPrefix, annL7LBConditionsPrefix)
		}
		return config.Condition{}, fmt.Errorf("collection is l7lb's own condition; put it in %s${name}", annL7LBConditionsPrefix)
	}
	cfgName := configName(f)
	for g, set := range given {
		if set && g != f {
			return config.Condition{}, fmt.Errorf("%s does not belong to field %s; use %s", configName(g), f, cfgName)
		}
	}
	if !given[f] {
		return config.Condition{}, fmt.Errorf("missing %s", cfgName)
	}
	out := config.Condition{Field: f}
	var values []string
	switch f {
	case config.ConditionHostHeader:
		values = c.HostHeaderConfig.Values
	case config.ConditionHTTPHeader:
		values = c.HTTPHeaderConfig.Values
		name := c.HTTPHeaderConfig.HTTPHeaderName
		if name == "" || len(name) > 40 || strings.ContainsAny(name, "*? :") || !isToken(name) {
			return out, fmt.Errorf("httpHeaderName %q must be a header name of 1-40 characters without wildcards", name)
		}
		out.HeaderName = strings.ToLower(name)
	case config.ConditionHTTPRequestMethod:
		values = c.HTTPRequestMethodConfig.Values
	case config.ConditionPathPattern:
		values = c.PathPatternConfig.Values
	case config.ConditionSourceIP:
		values = c.SourceIPConfig.Values
	case config.ConditionCollection:
		values = c.CollectionConfig.Values
	case config.ConditionQueryString:
		if len(c.QueryStringConfig.Values) == 0 {
			return out, fmt.Errorf("%s.values is empty", cfgName)
		}
		for j, p := range c.QueryStringConfig.Values {
			if p.Value == "" {
				return out, fmt.Errorf("%s.values[%d].value is empty (the ALB requires it; use \"*\" for any value)", cfgName, j)
			}
			key := ""
			if p.Key != nil {
				key = *p.Key
			}
			if len(key) > maxConditionValue || len(p.Value) > maxConditionValue {
				return out, fmt.Errorf("%s.values[%d] is longer than %d characters", cfgName, j, maxConditionValue)
			}
			out.QueryString = append(out.QueryString, config.QueryPair{Key: key, Value: p.Value})
		}
		return out, nil
	}
	if len(values) == 0 {
		return out, fmt.Errorf("%s.values is empty", cfgName)
	}
	for j, v := range values {
		if v == "" || len(v) > maxConditionValue {
			return out, fmt.Errorf("%s.values[%d] %q must be 1-%d characters", cfgName, j, v, maxConditionValue)
		}
		switch f {
		case config.ConditionHostHeader:
			v = strings.ToLower(v)
		case config.ConditionHTTPRequestMethod:
			if !isMethod(v) {
				return out, fmt.Errorf("%s.values[%d] %q must be a method in capitals (A-Z, \"-\", \"_\"), such as GET or POST; methods are compared with case", cfgName, j, v)
			}
		case config.ConditionPathPattern:
			if !strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "*") {
				return out, fmt.Errorf("%s.values[%d] %q must start with \"/\" (or a wildcard)", cfgName, j, v)
			}
		case config.ConditionSourceIP:
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return out, fmt.Errorf("%s.values[%d] %q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", cfgName, j, v)
			}
			v = p.Masked().String()
		}
		if !slices.Contains(out.Values, v) {
			out.Values = append(out.Values, v)
		}
	}
	return out, nil
}

func configName(f config.ConditionField) string {
	switch f {
	case config.ConditionHostHeader:
		return "hostHeaderConfig"
	case config.ConditionHTTPHeader:
		return "httpHeaderConfig"
	case config.ConditionHTTPRequestMethod:
		return "httpRequestMethodConfig"
	case config.ConditionPathPattern:
		return "pathPatternConfig"
	case config.ConditionQueryString:
		return "queryStringConfig"
	case config.ConditionSourceIP:
		return "sourceIPConfig"
	default:
		return "collectionConfig"
	}
}

func isMethod(s string) bool {
	if len(s) > 40 {
		return false
	}
	for _, c := range s {
		if (c < 'A' || c > 'Z') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// isToken reports whether s is an RFC 9110 token (a header name).
func isToken(s string) bool {
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", c):
		default:
			return false
		}
	}
	return true
}

// warnUnusedRouting names actions and conditions annotations that no
// backend of their Ingress refers to: LBC ignores them, and so does l7lb,
// but a misspelt service name is the likely cause.
func (t *translator) warnUnusedRouting(m *ingressModel) {
	keys := make([]string, 0, len(m.ann.ann))
	for k := range m.ann.ann {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var name, how string
		switch {
		case strings.HasPrefix(k, annActionsPrefix):
			name, how = strings.TrimPrefix(k, annActionsPrefix), " with port use-annotation"
		case strings.HasPrefix(k, annConditionsPrefix):
			name = strings.TrimPrefix(k, annConditionsPrefix)
		case strings.HasPrefix(k, annL7LBConditionsPrefix):
			name = strings.TrimPrefix(k, annL7LBConditionsPrefix)
		default:
			continue
		}
		if !t.routing.used[m.key+"\x00"+k] {
			t.warn(m.ann.origin(k), k, "no backend of Ingress %s names service %q%s, so this annotation does nothing", m.key, name, how)
		}
	}
}

// routingAnnotation reports whether k is a routing annotation with a
// service name after its prefix.
func routingAnnotation(k string) bool {
	for _, p := range []string{annActionsPrefix, annConditionsPrefix, annL7LBConditionsPrefix} {
		if strings.HasPrefix(k, p) && len(k) > len(p) {
			return true
		}
	}
	return false
}
