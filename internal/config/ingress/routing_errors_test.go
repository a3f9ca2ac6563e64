package ingress

import (
	"strings"
	"testing"
)

// routedIngress is ingressWith's Ingress "r" with its one backend naming
// service svc on port use-annotation; annotation i is on line 7+i.
func routedIngress(svc string, annotations ...string) string {
	y := ingressWith("r", append([]string{ipTarget}, annotations...)...)
	return strings.Replace(y, "name: milvus-demo\n              port:\n                number: 19530",
		"name: "+svc+"\n              port:\n                name: use-annotation", 1)
}

const blueGreenServices = `---
apiVersion: v1
kind: Service
metadata: {name: blue, namespace: milvus}
spec: {ports: [{name: grpc, port: 19530}]}
---
apiVersion: v1
kind: Service
metadata: {name: green, namespace: milvus}
spec: {ports: [{name: grpc, port: 19530}]}
`

func TestRoutingProblems(t *testing.T) {
	const act = "alb.ingress.kubernetes.io/actions.bg"
	const cond = "alb.ingress.kubernetes.io/conditions.milvus-demo"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "action named but missing",
			yaml: routedIngress("bg"),
			want: []string{"Ingress milvus/r: annotation " + act + ": backend service \"bg\" uses port name use-annotation, but Ingress milvus/r has no annotation " + act},
		},
		{
			name: "malformed action JSON",
			yaml: routedIngress("bg", act+`: '{"type":"forward",'`),
			want: []string{"bad.yaml:8: Ingress milvus/r: annotation " + act + ": invalid JSON", "expected an action like"},
		},
		{
			name: "unknown action type",
			yaml: routedIngress("bg", act+`: '{"type":"authenticate-oidc"}'`),
			want: []string{"bad.yaml:8:", "annotation " + act, `unknown action type "authenticate-oidc"; expected forward, fixed-response or redirect`},
		},
		{
			name: "misspelt action field",
			yaml: routedIngress("bg", act+`: '{"type":"forward","forwardConfg":{}}'`),
			want: []string{"bad.yaml:8:", "invalid JSON", `unknown field "forwardConfg"`},
		},
		{
			name: "weight out of range",
			yaml: routedIngress("bg", act+`: '{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"blue","servicePort":19530,"weight":1000},{"serviceName":"green","servicePort":19530,"weight":-1}]}}'`) + blueGreenServices,
			want: []string{"2 problems:", "forwardConfig.targetGroups[0]: weight 1000 is outside 0-999", "forwardConfig.targetGroups[1]: weight -1 is outside 0-999"},
		},
		{
			name: "all weights zero",
			yaml: routedIngress("bg", act+`: '{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"blue","servicePort":19530,"weight":0},{"serviceName":"green","servicePort":19530,"weight":0}]}}'`) + blueGreenServices,
			want: []string{"bad.yaml:8:", "every weight in forwardConfig.targetGroups is 0"},
		},
		{
			name: "weight missing with two groups",
			yaml: routedIngress("bg", act+`: '{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"blue","servicePort":19530},{"serviceName":"green","servicePort":19530,"weight":1}]}}'`) + blueGreenServices,
			want: []string{"targetGroups[0]: weight must be set when forwarding to several target groups"},
		},
		{
			name: "stickiness enabled",
			yaml: routedIngress("bg", act+`: '{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"blue","servicePort":19530}],"targetGroupStickinessConfig":{"enabled":true,"durationSeconds":60}}}'`) + blueGreenServices,
			want: []string{"targetGroupStickinessConfig.enabled is true, but l7lb does not implement target group stickiness"},
		},
		{
			name: "target group ARN",
			yaml: routedIngress("bg", act+`: '{"type":"forward","targetGroupARN":"arn:aws:elasticloadbalancing:us-east-2:1:targetgroup/x/1"}'`),
			want: []string{"targetGroupARN names an AWS target group"},
		},
		{
			name: "forward to a missing service port",
			yaml: routedIngress("bg", act+`: '{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"blue","servicePort":80}]}}'`) + blueGreenServices,
			want: []string{"bad.yaml:8:", "Service milvus/blue", "has no port 80"},
		},
		{
			name: "too many target groups",
			yaml: routedIngress("bg", act+`: '{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"a","servicePort":1,"weight":1},{"serviceName":"b","servicePort":1,"weight":1},{"serviceName":"c","servicePort":1,"weight":1},{"serviceName":"d","servicePort":1,"weight":1},{"serviceName":"e","servicePort":1,"weight":1},{"serviceName":"f","servicePort":1,"weight":1}]}}'`),
			want: []string{"has 6 entries; at most 5"},
		},
		{
			name: "fixed response status",
			yaml: routedIngress("bg", act+`: '{"type":"fixed-response","fixedResponseConfig":{"statusCode":"302"}}'`),
			want: []string{`fixedResponseConfig.statusCode "302" must be a 2XX, 4XX or 5XX code`},
		},
		{
			name: "fixed response content type",
			yaml: routedIngress("bg", act+`: '{"type":"fixed-response","fixedResponseConfig":{"statusCode":"503","contentType":"application/grpc"}}'`),
			want: []string{`fixedResponseConfig.contentType "application/grpc" must be text/plain`},
		},
		{
			name: "redirect status and protocol",
			yaml: routedIngress("bg", act+`: '{"type":"redirect","redirectConfig":{"protocol":"FTP","statusCode":"HTTP_307"}}'`),
			want: []string{"2 problems:", `redirectConfig.statusCode "HTTP_307" must be HTTP_301 or HTTP_302`, `redirectConfig.protocol "FTP" must be HTTP, HTTPS or #{protocol}`},
		},
		{
			name: "redirect to itself",
			yaml: routedIngress("bg", act+`: '{"type":"redirect","redirectConfig":{"statusCode":"HTTP_301"}}'`),
			want: []string{"redirectConfig changes nothing"},
		},
		{
			name: "malformed conditions JSON",
			yaml: ingressWith("c", ipTarget, cond+`: '[{"field":"http-header"'`),
			want: []string{"bad.yaml:8: Ingress milvus/c: annotation " + cond + ": invalid JSON", "expected a list like"},
		},
		{
			name: "unknown condition field",
			yaml: ingressWith("c", ipTarget, cond+`: '[{"field":"cookie","values":["x"]}]'`),
			want: []string{"bad.yaml:8:", "annotation " + cond, "invalid JSON", `unknown field "values"`},
		},
		{
			name: "unknown condition field name",
			yaml: ingressWith("c", ipTarget, cond+`: '[{"field":"cookie"}]'`),
			want: []string{"bad.yaml:8:", `condition 0 (field "cookie"): unknown condition field; expected host-header, http-header`},
		},
		{
			name: "condition config missing",
			yaml: ingressWith("c", ipTarget, cond+`: '[{"field":"source-ip"}]'`),
			want: []string{`condition 0 (field "source-ip"): missing sourceIPConfig`},
		},
		{
			name: "condition config of another field",
			yaml: ingressWith("c", ipTarget, cond+`: '[{"field":"host-header","pathPatternConfig":{"values":["/a"]}}]'`),
			want: []string{"pathPatternConfig does not belong to field host-header"},
		},
		{
			name: "bad CIDR",
			yaml: ingressWith("c", ipTarget, cond+`: '[{"field":"source-ip","sourceIpConfig":{"values":["10.0.0.0/33"]}}]'`),
			want: []string{`sourceIPConfig.values[0] "10.0.0.0/33" is not a CIDR`},
		},
		{
			name: "lower-case method",
			yaml: ingressWith("c", ipTarget, cond+`: '[{"field":"http-request-method","httpRequestMethodConfig":{"values":["get"]}}]'`),
			want: []string{`httpRequestMethodConfig.values[0] "get" must be a method in capitals`},
		},
		{
			name: "empty values",
			yaml: ingressWith("c", ipTarget, cond+`: '[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"dbname","values":[]}}]'`),
			want: []string{"httpHeaderConfig.values is empty"},
		},
		{
			name: "collection in the ALB annotation",
			yaml: ingressWith("c", ipTarget, cond+`: '[{"field":"collection","collectionConfig":{"values":["books"]}}]'`),
			want: []string{"collection is l7lb's own condition; put it in l7lb.io/conditions.${name}"},
		},
		{
			name: "ALB field in l7lb's annotation",
			yaml: ingressWith("c", ipTarget, `l7lb.io/conditions.milvus-demo: '[{"field":"host-header","hostHeaderConfig":{"values":["a"]}}]'`),
			want: []string{"annotation l7lb.io/conditions.milvus-demo", "the ALB's condition fields go in alb.ingress.kubernetes.io/conditions.${name}"},
		},
		{
			name: "unknown l7lb condition field",
			yaml: ingressWith("c", ipTarget, `l7lb.io/conditions.milvus-demo: '[{"field":"database"}]'`),
			want: []string{`condition 0 (field "database"): unknown condition field; expected collection`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { expectProblems(t, tc.yaml, Options{}, tc.want) })
	}
}

func TestRoutingWarnings(t *testing.T) {
	yaml := ingressWith("w", ipTarget,
		`alb.ingress.kubernetes.io/actions.milvus-dmeo: '{"type":"fixed-response","fixedResponseConfig":{"statusCode":"503"}}'`,
		`alb.ingress.kubernetes.io/conditions.milvus-dmeo: '[{"field":"source-ip","sourceIpConfig":{"values":["10.0.0.0/8"]}}]'`,
		`alb.ingress.kubernetes.io/actions.milvus-demo: '{"type":"fixed-response","fixedResponseConfig":{"statusCode":"503"}}'`)
	snap, err := run(yaml, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range snap.Warnings {
		if strings.Contains(w.Annotation, "actions.") || strings.Contains(w.Annotation, "conditions.") {
			got = append(got, w.Error())
		}
	}
	want := []string{
		// The backend has a real port, so its action is not used.
		`bad.yaml:10: Ingress milvus/w: annotation alb.ingress.kubernetes.io/actions.milvus-demo: no backend of Ingress milvus/w names service "milvus-demo" with port use-annotation, so this annotation does nothing`,
		`bad.yaml:8: Ingress milvus/w: annotation alb.ingress.kubernetes.io/actions.milvus-dmeo: no backend of Ingress milvus/w names service "milvus-dmeo"`,
		`bad.yaml:9: Ingress milvus/w: annotation alb.ingress.kubernetes.io/conditions.milvus-dmeo: no backend of Ingress milvus/w names service "milvus-dmeo", so this annotation does nothing`,
	}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	for _, w := range snap.Warnings {
		if strings.Contains(w.Message, "not yet honoured") && (strings.Contains(w.Annotation, "actions.") || strings.Contains(w.Annotation, "conditions.")) {
			t.Errorf("still warned as not honoured: %v", w)
		}
	}
}
