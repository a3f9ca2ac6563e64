package ingress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/l7lb/l7lb/internal/config"
)

// Routing annotations: names with a suffix naming the backend service
// they apply to, as in LBC.
const (
	annActionsPrefix        = albPrefix + "actions."
	annConditionsPrefix     = albPrefix + "conditions."
	annL7LBConditionsPrefix = l7lbPrefix + "conditions."
)

// Limits the ALB sets on rules (and so does l7lb, so that a
// configuration that works here also works there).
const (
	maxForwardTargetGroups = 5
	maxWeight              = 999
	maxFixedBody           = 1024
)

// The user-facing JSON of actions.${name}, as LBC reads it
// (pkg/ingress/config_types.go). Pointers tell "absent" from "empty".
type albAction struct {
	Type                string            `json:"type"`
	TargetGroupARN      *string           `json:"targetGroupARN"`
	ForwardConfig       *albForwardConfig `json:"forwardConfig"`
	FixedResponseConfig *albFixedResponse `json:"fixedResponseConfig"`
	RedirectConfig      *albRedirect      `json:"redirectConfig"`
}

type albForwardConfig struct {
	TargetGroups                []albTargetGroupTuple `json:"targetGroups"`
	TargetGroupStickinessConfig *struct {
		Enabled         *bool  `json:"enabled"`
		DurationSeconds *int64 `json:"durationSeconds"`
	} `json:"targetGroupStickinessConfig"`
}

type albTargetGroupTuple struct {
	TargetGroupARN *string             `json:"targetGroupARN"`
	ServiceName    *string             `json:"serviceName"`
	ServicePort    *intstr.IntOrString `json:"servicePort"`
	Weight         *int64              `json:"weight"`
}

type albFixedResponse struct {
	ContentType *string `json:"contentType"`
	MessageBody *string `json:"messageBody"`
	StatusCode  string  `json:"statusCode"`
}

type albRedirect struct {
	Host       *string `json:"host"`
	Path       *string `json:"path"`
	Port       *string `json:"port"`
	Protocol   *string `json:"protocol"`
	Query      *string `json:"query"`
	StatusCode string  `json:"statusCode"`
}

const (
	actionExample     = `{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"milvus-blue","servicePort":19530,"weight":90},{"serviceName":"milvus-green","servicePort":19530,"weight":10}]}}`
	fixedContentTypes = "text/plain, text/css, text/html, application/javascript or application/json"
)

// decodeStrict reads JSON into v, refusing fields v does not have (a typo
// in a field name would otherwise be silently ignored) and trailing data.
func decodeStrict(raw string, v any) error {
	d := json.NewDecoder(bytes.NewReader([]byte(raw)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

// ruleAction resolves the action of a backend whose port is
// use-annotation: the Ingress's actions.${service} annotation. A forward
// to one target group comes back as its name, other actions as an
// Action. at locates the backend's port, for the missing-annotation case.
func (t *translator) ruleAction(m *ingressModel, svcName string, at config.Origin) (string, *config.Action, bool) {
	key := annActionsPrefix + svcName
	raw, ok := m.ann.get(key)
	if !ok {
		t.problem(at, key, "backend service %q uses port name use-annotation, but Ingress %s has no annotation %s; add it (for example %s) or give the backend a real port",
			svcName, m.key, key, actionExample)
		return "", nil, false
	}
	t.routingUsed(m, key)
	o := m.ann.origin(key)
	var a albAction
	if err := decodeStrict(raw, &a); err != nil {
		t.problem(o, key, "invalid JSON: %v; expected an action like %s", err, actionExample)
		return "", nil, false
	}
	switch config.ActionType(a.Type) {
	case config.ActionForward:
		return t.forwardAction(m, key, a)
	case config.ActionFixedResponse:
		fr, ok := t.fixedResponse(o, key, a)
		if !ok {
			return "", nil, false
		}
		return "", &config.Action{Type: config.ActionFixedResponse, FixedResponse: fr}, true
	case config.ActionRedirect:
		rd, ok := t.redirect(o, key, a)
		if !ok {
			return "", nil, false
		}
		return "", &config.Action{Type: config.ActionRedirect, Redirect: rd}, true
	case "":
		t.problem(o, key, "missing \"type\"; expected forward, fixed-response or redirect")
	default:
		t.problem(o, key, "unknown action type %q; expected forward, fixed-response or redirect", a.Type)
	}
	return "", nil, false
}

// forwardAction builds a forward: each entry's Service port becomes a
// target group like any backend's.
func (t *translator) forwardAction(m *ingressModel, key string, a albAction) (string, *config.Action, bool) {
	o := m.ann.origin(key)
	bad := func(format string, args ...any) (string, *config.Action, bool) {
		t.problem(o, key, format, args...)
		return "", nil, false
	}
	if a.FixedResponseConfig != nil || a.RedirectConfig != nil {
		return bad("a forward action takes forwardConfig only, not fixedResponseConfig or redirectConfig")
	}
	if a.TargetGroupARN != nil {
		return bad("targetGroupARN names an AWS target group, which l7lb cannot reach; use forwardConfig.targetGroups with serviceName and servicePort")
	}
	fc := a.ForwardConfig
	if fc == nil {
		return bad("a forward action needs forwardConfig; expected like %s", actionExample)
	}
	if s := fc.TargetGroupStickinessConfig; s != nil && s.Enabled != nil && *s.Enabled {
		// The ALB keeps a client on one target group with its AWSALBTG
		// cookie; gRPC clients (the Milvus SDKs) keep no cookies, so l7lb
		// would silently not be sticky. Say so instead.
		return bad("forwardConfig.targetGroupStickinessConfig.enabled is true, but l7lb does not implement target group stickiness (the ALB's AWSALBTG cookie, which gRPC clients do not keep); remove it or set enabled to false")
	}
	n := len(fc.TargetGroups)
	switch {
	case n == 0:
		return bad("forwardConfig.targetGroups is empty; expected like %s", actionExample)
	case n > maxForwardTargetGroups:
		return bad("forwardConfig.targetGroups has %d entries; at most %d, as on the ALB", n, maxForwardTargetGroups)
	}
	var out []config.WeightedTargetGroup
	ok, total := true, int64(0)
	for i, tg := range fc.TargetGroups {
		where := fmt.Sprintf("forwardConfig.targetGroups[%d]", i)
		switch {
		case tg.TargetGroupARN != nil:
			t.problem(o, key, "%s: targetGroupARN names an AWS target group, which l7lb cannot reach; use serviceName and servicePort", where)
			ok = false
			continue
		case tg.ServiceName == nil || *tg.ServiceName == "":
			t.problem(o, key, "%s: missing serviceName", where)
			ok = false
			continue
		case tg.ServicePort == nil:
			t.problem(o, key, "%s: missing servicePort (a port number or name of Service %s)", where, *tg.ServiceName)
			ok = false
			continue
		}
		weight := int64(1) // LBC leaves a lone group's weight unset
		if tg.Weight != nil {
			weight = *tg.Weight
		} else if n > 1 {
			t.problem(o, key, "%s: weight must be set when forwarding to several target groups", where)
			ok = false
			continue
		}
		if weight < 0 || weight > maxWeight {
			t.problem(o, key, "%s: weight %d is outside 0-%d", where, weight, maxWeight)
			ok = false
			continue
		}
		total += weight
		port := backendPort(*tg.ServicePort)
		backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: *tg.ServiceName, Port: port}}
		name, found := t.backendTargetGroup(m, backend, func(...any) config.Origin { return o })
		if !found {
			ok = false
			continue
		}
		for _, prev := range out {
			if prev.TargetGroup == name {
				t.problem(o, key, "%s: target group %s is listed twice", where, name)
				ok = false
			}
		}
		out = append(out, config.WeightedTargetGroup{TargetGroup: name, Weight: int(weight)})
	}
	if !ok {
		return "", nil, false
	}
	if total == 0 {
		return bad("every weight in forwardConfig.targetGroups is 0, so no request could be forwarded; give at least one target group a positive weight")
	}
	if len(out) == 1 {
		return out[0].TargetGroup, nil, true
	}
	return "", &config.Action{Type: config.ActionForward, TargetGroups: out}, true
}

// backendPort reads servicePort: a number, a numeric string ("80", as in
// LBC's own examples) or a port name.
func backendPort(p intstr.IntOrString) networkingv1.ServiceBackendPort {
	if p.Type == intstr.Int {
		return networkingv1.ServiceBackendPort{Number: p.IntVal}
	}
	if n, err := strconv.ParseInt(p.StrVal, 10, 32); err == nil {
		return networkingv1.ServiceBackendPort{Number: int32(n)}
	}
	return networkingv1.ServiceBackendPort{Name: p.StrVal}
}

func (t *translator) fixedResponse(o config.Origin, key string, a albAction) (*config.FixedResponse, bool) {
	c := a.FixedResponseConfig
	switch {
	case a.ForwardConfig != nil || a.RedirectConfig != nil || a.TargetGroupARN != nil:
		t.problem(o, key, "a fixed-response action takes fixedResponseConfig only")
		return nil, false
	case c == nil:
		t.problem(o, key, `a fixed-response action needs fixedResponseConfig; expected like {"type":"fixed-response","fixedResponseConfig":{"contentType":"text/plain","statusCode":"503","messageBody":"maintenance"}}`)
		return nil, false
	}
	code, err := strconv.Atoi(c.StatusCode)
	if err != nil || len(c.StatusCode) != 3 || (code/100 != 2 && code/100 != 4 && code/100 != 5) {
		t.problem(o, key, "fixedResponseConfig.statusCode %q must be a 2XX, 4XX or 5XX code, as on the ALB", c.StatusCode)
		return nil, false
	}
	fr := &config.FixedResponse{StatusCode: code, ContentType: "text/plain"}
	if c.ContentType != nil {
		switch *c.ContentType {
		case "text/plain", "text/css", "text/html", "application/javascript", "application/json":
			fr.ContentType = *c.ContentType
		default:
			t.problem(o, key, "fixedResponseConfig.contentType %q must be %s", *c.ContentType, fixedContentTypes)
			return nil, false
		}
	}
	if c.MessageBody != nil {
		if len(*c.MessageBody) > maxFixedBody {
			t.problem(o, key, "fixedResponseConfig.messageBody is %d bytes; at most %d, as on the ALB", len(*c.MessageBody), maxFixedBody)
			return nil, false
		}
		fr.MessageBody = *c.MessageBody
	}
	return fr, true
}

func (t *translator) redirect(o config.Origin, key string, a albAction) (*config.Redirect, bool) {
	c := a.RedirectConfig
	switch {
	case a.ForwardConfig != nil || a.FixedResponseConfig != nil || a.TargetGroupARN != nil:
		t.problem(o, key, "a redirect action takes redirectConfig only")
		return nil, false
	case c == nil:
		t.problem(o, key, `a redirect action needs redirectConfig; expected like {"type":"redirect","redirectConfig":{"protocol":"HTTPS","port":"443","statusCode":"HTTP_301"}}`)
		return nil, false
	}
	// The ALB's defaults: every component keeps the request's value.
	rd := &config.Redirect{Protocol: "#{protocol}", Host: "#{host}", Port: "#{port}", Path: "/#{path}", Query: "#{query}"}
	ok := true
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&rd.Protocol, c.Protocol)
	set(&rd.Host, c.Host)
	set(&rd.Port, c.Port)
	set(&rd.Path, c.Path)
	set(&rd.Query, c.Query)
	switch c.StatusCode {
	case "HTTP_301":
		rd.StatusCode = 301
	case "HTTP_302":
		rd.StatusCode = 302
	default:
		t.problem(o, key, "redirectConfig.statusCode %q must be HTTP_301 or HTTP_302", c.StatusCode)
		ok = false
	}
	switch rd.Protocol {
	case "HTTP", "HTTPS", "#{protocol}":
	default:
		t.problem(o, key, "redirectConfig.protocol %q must be HTTP, HTTPS or #{protocol}", rd.Protocol)
		ok = false
	}
	if rd.Port != "#{port}" {
		if p, err := strconv.Atoi(rd.Port); err != nil || p < 1 || p > 65535 {
			t.problem(o, key, "redirectConfig.port %q must be 1-65535 or #{port}", rd.Port)
			ok = false
		}
	}
	if !strings.HasPrefix(rd.Path, "/") {
		t.problem(o, key, "redirectConfig.path %q must start with \"/\"", rd.Path)
		ok = false
	}
	if rd.Host == "" {
		t.problem(o, key, "redirectConfig.host is empty; leave it out to keep the request's host (#{host})")
		ok = false
	}
	if ok && *rd == (config.Redirect{Protocol: "#{protocol}", Host: "#{host}", Port: "#{port}", Path: "/#{path}", Query: "#{query}", StatusCode: rd.StatusCode}) {
		// The ALB refuses a redirect to the request's own URL: it loops.
		t.problem(o, key, "redirectConfig changes nothing (protocol, host, port, path and query all keep the request's values), which would loop")
		ok = false
	}
	return rd, ok
}
