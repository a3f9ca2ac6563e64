package ingress

import (
	"errors"
	"strings"
	"testing"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/manifest"
)

// ingressWith returns an Ingress like the seed's whose annotations are the
// given lines, so that annotation i (0-based) is on line 7+i.
func ingressWith(name string, annotations ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  namespace: milvus\n  name: " + name + "\n  annotations:\n")
	for _, a := range annotations {
		b.WriteString("    " + a + "\n")
	}
	b.WriteString(`spec:
  ingressClassName: alb
  rules:
    - host: milvus-demo.milvus.io
      http:
        paths:
        - path: /
          pathType: Prefix
          backend:
            service:
              name: milvus-demo
              port:
                number: 19530
`)
	return b.String()
}

const (
	ipTarget = "alb.ingress.kubernetes.io/target-type: ip"
	https443 = `alb.ingress.kubernetes.io/listen-ports: '[{"HTTPS":443}]'`
	certA    = "alb.ingress.kubernetes.io/certificate-arn: arn:l7lb:cert/a"
)

// run parses yaml as file "bad.yaml" and translates it.
func run(yaml string, opts Options) (*config.Snapshot, error) {
	objs, _, err := manifest.Parse("bad.yaml", []byte(yaml))
	if err != nil {
		return nil, err
	}
	return Translate(objs, opts)
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		opts Options
		want []string // substrings of the error text
	}{
		{
			name: "health check interval out of range",
			yaml: ingressWith("hc", ipTarget, "alb.ingress.kubernetes.io/backend-protocol-version: GRPC",
				`alb.ingress.kubernetes.io/healthcheck-interval-seconds: "500"`),
			want: []string{"bad.yaml:9:", "Ingress milvus/hc", "annotation alb.ingress.kubernetes.io/healthcheck-interval-seconds", `"500"`, "1-300"},
		},
		{
			name: "health check timeout not below interval",
			yaml: ingressWith("hc", ipTarget, "alb.ingress.kubernetes.io/backend-protocol-version: GRPC",
				`alb.ingress.kubernetes.io/healthcheck-interval-seconds: "5"`, `alb.ingress.kubernetes.io/healthcheck-timeout-seconds: "5"`),
			want: []string{"bad.yaml:10:", "healthcheck-timeout-seconds", "must be shorter than the interval"},
		},
		{
			name: "gRPC success code out of range",
			yaml: ingressWith("hc", ipTarget, "alb.ingress.kubernetes.io/backend-protocol-version: GRPC",
				`alb.ingress.kubernetes.io/success-codes: "200"`),
			want: []string{"bad.yaml:9:", "annotation alb.ingress.kubernetes.io/success-codes", `"200" is outside 0-99`, `"0-99"`},
		},
		{
			name: "gRPC health check path not a method",
			yaml: ingressWith("hc", ipTarget, "alb.ingress.kubernetes.io/backend-protocol-version: GRPC",
				"alb.ingress.kubernetes.io/healthcheck-path: /healthz"),
			want: []string{"bad.yaml:9:", "healthcheck-path", "full method path"},
		},
		{
			name: "bad deregistration delay",
			yaml: ingressWith("hc", ipTarget, "alb.ingress.kubernetes.io/target-group-attributes: deregistration_delay.timeout_seconds=9999"),
			want: []string{"bad.yaml:8:", "annotation alb.ingress.kubernetes.io/target-group-attributes", "0-3600"},
		},
		{
			name: "bad idle timeout",
			yaml: ingressWith("hc", ipTarget, "alb.ingress.kubernetes.io/load-balancer-attributes: idle_timeout.timeout_seconds=0"),
			want: []string{"bad.yaml:8:", "annotation alb.ingress.kubernetes.io/load-balancer-attributes", "1-4000"},
		},
		{
			name: "bad retry policy",
			yaml: ingressWith("hc", ipTarget, "l7lb.io/retry-policy: always"),
			want: []string{"bad.yaml:8:", "annotation l7lb.io/retry-policy", `"always"`, "idempotent-reads or none"},
		},
		{
			name: "unknown algorithm",
			yaml: ingressWith("lb", ipTarget, "alb.ingress.kubernetes.io/target-group-attributes: load_balancing.algorithm.type=least_conn"),
			want: []string{"bad.yaml:8:", "target-group-attributes", `"least_conn"`, "round_robin, least_outstanding_requests or weighted_random"},
		},
		{
			name: "anomaly mitigation without weighted_random",
			yaml: ingressWith("lb", ipTarget, "alb.ingress.kubernetes.io/target-group-attributes: load_balancing.algorithm.type=least_outstanding_requests,load_balancing.algorithm.anomaly_mitigation=on"),
			want: []string{"bad.yaml:8:", "anomaly_mitigation=on needs load_balancing.algorithm.type=weighted_random"},
		},
		{
			name: "bad anomaly mitigation value",
			yaml: ingressWith("lb", ipTarget, "alb.ingress.kubernetes.io/target-group-attributes: load_balancing.algorithm.type=weighted_random,load_balancing.algorithm.anomaly_mitigation=yes"),
			want: []string{"bad.yaml:8:", `anomaly_mitigation="yes"`, "on or off"},
		},
		{
			name: "slow start with least outstanding requests",
			yaml: ingressWith("lb", ipTarget, "alb.ingress.kubernetes.io/target-group-attributes: load_balancing.algorithm.type=least_outstanding_requests,slow_start.duration_seconds=60"),
			want: []string{"bad.yaml:8:", "slow_start.duration_seconds cannot be combined with load_balancing.algorithm.type=least_outstanding_requests"},
		},
		{
			name: "unknown l7lb algorithm",
			yaml: ingressWith("lb", ipTarget, "l7lb.io/load-balancing-algorithm: ewma"),
			want: []string{"bad.yaml:8:", "annotation l7lb.io/load-balancing-algorithm", `"ewma"`, "expected peak_ewma"},
		},
		{
			name: "l7lb algorithm with slow start",
			yaml: ingressWith("lb", ipTarget, "alb.ingress.kubernetes.io/target-group-attributes: slow_start.duration_seconds=60", "l7lb.io/load-balancing-algorithm: peak_ewma"),
			want: []string{"bad.yaml:9:", "peak_ewma cannot be combined with slow_start.duration_seconds"},
		},
		{
			name: "malformed YAML",
			yaml: "apiVersion: v1\nkind: Service\nmetadata:\n  name: [oops\n",
			want: []string{"bad.yaml:4: invalid YAML:"},
		},
		{
			name: "bad listen-ports JSON",
			yaml: ingressWith("milvus-demo", ipTarget, `alb.ingress.kubernetes.io/listen-ports: '[{"HTTPS":443'`),
			want: []string{"bad.yaml:8: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/listen-ports: invalid value",
				`expected JSON like '[{"HTTP":80},{"HTTPS":443}]'`},
		},
		{
			name: "listen-ports protocol",
			yaml: ingressWith("milvus-demo", ipTarget, `alb.ingress.kubernetes.io/listen-ports: '[{"TCP":443}]'`),
			want: []string{"bad.yaml:8: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/listen-ports:", `protocol "TCP" must be HTTP or HTTPS`},
		},
		{
			name: "listen-ports out of range",
			yaml: ingressWith("milvus-demo", ipTarget, `alb.ingress.kubernetes.io/listen-ports: '[{"HTTP":0}]'`),
			want: []string{"bad.yaml:8:", "port 0 must be within [1, 65535]"},
		},
		{
			name: "duplicate port in one Ingress",
			yaml: ingressWith("milvus-demo", ipTarget, certA, `alb.ingress.kubernetes.io/listen-ports: '[{"HTTPS":443},{"HTTP":443}]'`),
			want: []string{"bad.yaml:9: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/listen-ports: port 443 listed twice"},
		},
		{
			name: "same port with different protocols in two Ingresses",
			yaml: ingressWith("a", ipTarget, certA, https443) + "---\n" + ingressWith("b", ipTarget, `alb.ingress.kubernetes.io/listen-ports: '[{"HTTP":443}]'`),
			want: []string{"bad.yaml:31: Ingress milvus/b: annotation alb.ingress.kubernetes.io/listen-ports: port 443 is HTTP here but HTTPS in Ingress milvus/a (bad.yaml:9)"},
		},
		{
			name: "bad scheme",
			yaml: ingressWith("milvus-demo", ipTarget, "alb.ingress.kubernetes.io/scheme: public"),
			want: []string{`bad.yaml:8: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/scheme: invalid value "public"; expected internal or internet-facing`},
		},
		{
			name: "scheme conflict",
			yaml: ingressWith("a", ipTarget, "alb.ingress.kubernetes.io/scheme: internal") + "---\n" + ingressWith("b", ipTarget, "alb.ingress.kubernetes.io/scheme: internet-facing"),
			want: []string{"bad.yaml:30: Ingress milvus/b: annotation alb.ingress.kubernetes.io/scheme: scheme internet-facing conflicts with scheme internal of Ingress milvus/a (bad.yaml:8)"},
		},
		{
			name: "bad backend-protocol-version",
			yaml: ingressWith("milvus-demo", ipTarget, "alb.ingress.kubernetes.io/backend-protocol-version: gRPC"),
			want: []string{`bad.yaml:8: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/backend-protocol-version: invalid value "gRPC"; expected HTTP1, HTTP2 or GRPC`},
		},
		{
			name: "bad backend-protocol",
			yaml: ingressWith("milvus-demo", ipTarget, "alb.ingress.kubernetes.io/backend-protocol: TCP"),
			want: []string{`bad.yaml:8: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/backend-protocol: invalid value "TCP"; expected HTTP or HTTPS`},
		},
		{
			name: "bad target-type",
			yaml: ingressWith("milvus-demo", "alb.ingress.kubernetes.io/target-type: pod"),
			want: []string{`bad.yaml:7: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/target-type: invalid value "pod"; expected ip or instance`},
		},
		{
			name: "bad max-message-bytes",
			yaml: ingressWith("milvus-demo", ipTarget, "l7lb.io/max-message-bytes: 256MB"),
			want: []string{`bad.yaml:8: Ingress milvus/milvus-demo: annotation l7lb.io/max-message-bytes: invalid value "256MB"`, "expected bytes like 268435456 or 256Mi"},
		},
		{
			name: "unknown ARN",
			yaml: ingressWith("milvus-demo", ipTarget, https443, "alb.ingress.kubernetes.io/certificate-arn: arn:l7lb:cert/a,arn:l7lb:cert/missing"),
			opts: Options{KnownCertificate: func(arn string) bool { return arn == "arn:l7lb:cert/a" }},
			want: []string{"bad.yaml:9: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/certificate-arn: certificate arn:l7lb:cert/missing is not in the certificate store"},
		},
		{
			name: "HTTPS without certificate",
			yaml: ingressWith("milvus-demo", ipTarget, https443),
			want: []string{"bad.yaml:8: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/certificate-arn: HTTPS listener on port 443 needs a certificate"},
		},
		{
			name: "HTTPS with spec.tls only",
			yaml: strings.Replace(ingressWith("milvus-demo", ipTarget, https443), "spec:\n", "spec:\n  tls:\n    - hosts: [milvus-demo.milvus.io]\n", 1),
			want: []string{"bad.yaml:10: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/certificate-arn:", "certificate discovery from spec.tls is not supported in file mode"},
		},
		{
			name: "unknown l7lb.io annotation",
			yaml: ingressWith("milvus-demo", ipTarget, "l7lb.io/max-msg-bytes: 1Mi"),
			want: []string{"bad.yaml:8: Ingress milvus/milvus-demo: annotation l7lb.io/max-msg-bytes: unknown l7lb annotation; known: l7lb.io/max-message-bytes"},
		},
		{
			name: "unknown field in the Ingress spec",
			yaml: strings.Replace(ingressWith("milvus-demo", ipTarget), "      http:\n", "      htttp:\n", 1),
			want: []string{`bad.yaml:12: Ingress milvus/milvus-demo: unknown field "spec.rules[0].htttp"`},
		},
		{
			name: "annotation value not a string",
			yaml: ingressWith("milvus-demo", "alb.ingress.kubernetes.io/healthcheck-port: 9091"),
			want: []string{"bad.yaml:6: Ingress milvus/milvus-demo: invalid object: cannot unmarshal number"},
		},
		{
			name: "two default backends on one port",
			yaml: strings.Replace(ingressWith("a", ipTarget), "spec:\n", "spec:\n  defaultBackend: {service: {name: x, port: {number: 1}}}\n", 1) + "---\n" +
				strings.Replace(ingressWith("b", ipTarget), "spec:\n", "spec:\n  defaultBackend: {service: {name: y, port: {number: 1}}}\n", 1),
			want: []string{"bad.yaml:31: Ingress milvus/b: port 80 already has a default backend from Ingress milvus/a (bad.yaml:9)"},
		},
		{
			name: "conflicting target group settings",
			yaml: ingressWith("a", ipTarget, "alb.ingress.kubernetes.io/backend-protocol-version: GRPC") + "---\n" + ingressWith("b", ipTarget),
			want: []string{"Ingress milvus/b: target group milvus/milvus-demo:19530: conflicting settings between Ingress milvus/a (bad.yaml:", "backend-protocol-version GRPC vs HTTP1"},
		},
		{
			name: "Service lacks the port",
			yaml: ingressWith("milvus-demo", ipTarget) + "---\napiVersion: v1\nkind: Service\nmetadata: {namespace: milvus, name: milvus-demo}\nspec:\n  ports: [{port: 80}]\n",
			want: []string{"bad.yaml:19: Ingress milvus/milvus-demo: Service milvus/milvus-demo (bad.yaml:22) has no port 19530"},
		},
		{
			name: "wildcard in a Prefix path",
			yaml: strings.Replace(ingressWith("milvus-demo", ipTarget), "path: /\n", "path: /api/*\n", 1),
			want: []string{`bad.yaml:14: Ingress milvus/milvus-demo: Prefix path "/api/*" must not contain wildcards`},
		},
		{
			name: "ALB wildcard pattern",
			yaml: strings.Replace(strings.Replace(ingressWith("milvus-demo", ipTarget), "path: /\n", "path: /a*b\n", 1), "Prefix", "ImplementationSpecific", 1),
			want: []string{`bad.yaml:14: Ingress milvus/milvus-demo: ALB wildcard path pattern "/a*b" is not supported`},
		},
		{
			name: "path without slash",
			yaml: strings.Replace(ingressWith("milvus-demo", ipTarget), "path: /\n", "path: api\n", 1),
			want: []string{`bad.yaml:14: Ingress milvus/milvus-demo: path "api" must start with "/"`},
		},
		{
			name: "IngressClass of another controller",
			yaml: "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: alb}\nspec:\n  controller: k8s.io/ingress-nginx\n",
			want: []string{`bad.yaml:5: IngressClass alb: IngressClass alb is served by l7lb but names controller "k8s.io/ingress-nginx"`},
		},
		{
			name: "--endpoints gives addresses and DNS for one service",
			yaml: ingressWith("milvus-demo", ipTarget),
			opts: Options{
				Endpoints: map[string][]config.Endpoint{"milvus/milvus-demo": {{Address: "127.0.0.1", Port: 1, Ready: true}}},
				DNS:       map[string]config.DNSSource{"milvus/milvus-demo": {Name: "x", Port: 1}},
			},
			want: []string{"bad.yaml:16: Ingress milvus/milvus-demo: --endpoints gives both addresses and a DNS name for milvus/milvus-demo"},
		},
		{
			name: "unknown ssl-policy",
			yaml: ingressWith("milvus-demo", ipTarget, https443, certA, "alb.ingress.kubernetes.io/ssl-policy: ELBSecurityPolicy-TLS-1-3-2021-06"),
			want: []string{`bad.yaml:10: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/ssl-policy: unknown security policy "ELBSecurityPolicy-TLS-1-3-2021-06"`,
				"ELBSecurityPolicy-TLS13-1-2-2021-06, ELBSecurityPolicy-TLS13-1-3-2021-06"},
		},
		{
			name: "ssl-policy in the wrong case",
			yaml: ingressWith("milvus-demo", ipTarget, https443, certA, "alb.ingress.kubernetes.io/ssl-policy: elbsecuritypolicy-2016-08"),
			want: []string{"bad.yaml:10:", "annotation alb.ingress.kubernetes.io/ssl-policy", "case-sensitive: ELBSecurityPolicy-2016-08"},
		},
		{
			name: "post-quantum ssl-policy",
			yaml: ingressWith("milvus-demo", ipTarget, https443, certA, "alb.ingress.kubernetes.io/ssl-policy: ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"),
			want: []string{"bad.yaml:10:", "annotation alb.ingress.kubernetes.io/ssl-policy", "post-quantum, FIPS and RFC 9151 policies are not"},
		},
		{
			name: "two ssl-policies on one port",
			yaml: ingressWith("a", ipTarget, https443, certA, "alb.ingress.kubernetes.io/ssl-policy: ELBSecurityPolicy-TLS13-1-2-2021-06") + "---\n" +
				ingressWith("b", ipTarget, https443, certA, "alb.ingress.kubernetes.io/ssl-policy: ELBSecurityPolicy-2016-08"),
			want: []string{"bad.yaml:34: Ingress milvus/b: annotation alb.ingress.kubernetes.io/ssl-policy: port 443: policy ELBSecurityPolicy-2016-08 conflicts with policy ELBSecurityPolicy-TLS13-1-2-2021-06 of Ingress milvus/a (bad.yaml:10)"},
		},
		{
			name: "invalid inbound CIDR",
			yaml: ingressWith("milvus-demo", ipTarget, "alb.ingress.kubernetes.io/inbound-cidrs: 10.0.0.0/8,10.1.2.3,2001:db8::/129"),
			want: []string{`bad.yaml:8: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/inbound-cidrs: invalid CIDR "10.1.2.3": no '/'`,
				`invalid CIDR "2001:db8::/129": prefix length out of range`, "expected comma-separated networks like 10.0.0.0/8,2001:db8::/32"},
		},
		{
			name: "empty inbound-cidrs",
			yaml: ingressWith("milvus-demo", ipTarget, `alb.ingress.kubernetes.io/inbound-cidrs: " , "`),
			want: []string{"bad.yaml:8:", "annotation alb.ingress.kubernetes.io/inbound-cidrs: no CIDR given", "remove the annotation to allow every client"},
		},
		{
			name: "inbound-cidrs conflict on one port",
			yaml: ingressWith("a", ipTarget, "alb.ingress.kubernetes.io/inbound-cidrs: 10.0.0.0/8") + "---\n" +
				ingressWith("b", ipTarget, "alb.ingress.kubernetes.io/inbound-cidrs: 10.0.0.0/8,::1/128"),
			want: []string{"bad.yaml:30: Ingress milvus/b: annotation alb.ingress.kubernetes.io/inbound-cidrs: port 80: CIDRs 10.0.0.0/8,::1/128 conflict with 10.0.0.0/8 of Ingress milvus/a (bad.yaml:8)"},
		},
		{
			name: "bad ip-address-type",
			yaml: ingressWith("milvus-demo", ipTarget, "alb.ingress.kubernetes.io/ip-address-type: ipv6"),
			want: []string{`bad.yaml:8: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/ip-address-type: invalid value "ipv6"; expected ipv4, dualstack or dualstack-without-public-ipv4`},
		},
		{
			name: "ip-address-type conflict",
			yaml: ingressWith("a", ipTarget, "alb.ingress.kubernetes.io/ip-address-type: dualstack") + "---\n" + ingressWith("b", ipTarget, "alb.ingress.kubernetes.io/ip-address-type: ipv4"),
			want: []string{"bad.yaml:30: Ingress milvus/b: annotation alb.ingress.kubernetes.io/ip-address-type: ip-address-type ipv4 conflicts with ip-address-type dualstack of Ingress milvus/a (bad.yaml:8)"},
		},
		{
			name: "every problem is listed",
			yaml: ingressWith("milvus-demo", "alb.ingress.kubernetes.io/scheme: public", "alb.ingress.kubernetes.io/target-type: pod", "l7lb.io/nope: x"),
			want: []string{"3 problems:", "scheme", "target-type", "l7lb.io/nope"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { expectProblems(t, tc.yaml, tc.opts, tc.want) })
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		opts Options
		want []string // substrings of one warning's text
	}{
		{
			name: "--endpoints for a service nobody uses",
			yaml: ingressWith("milvus-demo", ipTarget),
			opts: Options{Endpoints: map[string][]config.Endpoint{"milvus/milvus-dem0": {{Address: "127.0.0.1", Port: 1, Ready: true}}}},
			want: []string{"--endpoints for milvus/milvus-dem0: no served Ingress uses this service"},
		},
		{
			name: "no endpoint is ready",
			yaml: ingressWith("milvus-demo", ipTarget),
			opts: Options{Endpoints: map[string][]config.Endpoint{"milvus/milvus-demo": {{Address: "127.0.0.1", Port: 1}}}},
			want: []string{"bad.yaml:16: Ingress milvus/milvus-demo: target group milvus/milvus-demo:19530 has 1 endpoints but none is ready"},
		},
		{
			name: "explicit target-type instance",
			yaml: ingressWith("milvus-demo", "alb.ingress.kubernetes.io/target-type: instance"),
			want: []string{"bad.yaml:7: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/target-type: target group milvus/milvus-demo:19530: target-type instance would send"},
		},
		{
			name: "endpoint objects without a matching port",
			yaml: ingressWith("milvus-demo", ipTarget) + "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {namespace: milvus, name: s, labels: {kubernetes.io/service-name: milvus-demo}}\naddressType: IPv4\nports: [{name: a, port: 1}, {name: b, port: 2}]\nendpoints: [{addresses: [10.0.0.1]}]\n",
			want: []string{"the EndpointSlices or Endpoints of service milvus/milvus-demo have no port matching port 19530"},
		},
		{
			name: "service without endpoints",
			yaml: ingressWith("milvus-demo", ipTarget),
			want: []string{"bad.yaml:16: Ingress milvus/milvus-demo: service milvus/milvus-demo has no endpoints", "target group milvus/milvus-demo:19530 has no targets"},
		},
		{
			name: "target-type instance by default",
			yaml: ingressWith("milvus-demo", "alb.ingress.kubernetes.io/scheme: internal"),
			want: []string{"bad.yaml:16: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/target-type: target group milvus/milvus-demo:19530: target-type instance (the default)"},
		},
		{
			name: "annotation not honoured",
			yaml: ingressWith("milvus-demo", ipTarget, "alb.ingress.kubernetes.io/wafv2-acl-arn: arn:aws:wafv2:x"),
			want: []string{"bad.yaml:8: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/wafv2-acl-arn: annotation not yet honoured by l7lb; ignored"},
		},
		{
			name: "ssl-redirect to a port without HTTPS",
			yaml: ingressWith("milvus-demo", ipTarget, "alb.ingress.kubernetes.io/ssl-redirect: '443'"),
			want: []string{"bad.yaml:8: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/ssl-redirect: HTTP listeners redirect to HTTPS port 443, but no Ingress listens there with HTTPS"},
		},
		{
			name: "ssl-policy without an HTTPS port",
			yaml: ingressWith("milvus-demo", ipTarget, "alb.ingress.kubernetes.io/ssl-policy: ELBSecurityPolicy-nope"),
			want: []string{"bad.yaml:8: Ingress milvus/milvus-demo: annotation alb.ingress.kubernetes.io/ssl-policy: this Ingress has no HTTPS port in listen-ports", "ignored", `not valid: unknown security policy "ELBSecurityPolicy-nope"`},
		},
		{
			name: "CIDR with host bits",
			yaml: ingressWith("milvus-demo", ipTarget, "alb.ingress.kubernetes.io/inbound-cidrs: 10.1.2.3/8"),
			want: []string{"bad.yaml:8:", "annotation alb.ingress.kubernetes.io/inbound-cidrs: 10.1.2.3/8 has bits set past its prefix length; l7lb reads it as the network 10.0.0.0/8"},
		},
		{
			name: "dualstack-without-public-ipv4",
			yaml: ingressWith("milvus-demo", ipTarget, "alb.ingress.kubernetes.io/ip-address-type: dualstack-without-public-ipv4"),
			want: []string{"bad.yaml:8:", "annotation alb.ingress.kubernetes.io/ip-address-type: l7lb listens on IPv4 and IPv6 as for dualstack"},
		},
		{
			name: "no Ingress of the class",
			yaml: strings.Replace(ingressWith("milvus-demo", ipTarget), "ingressClassName: alb", "ingressClassName: nginx", 1),
			want: []string{"no Ingress of class [alb] found"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := run(tc.yaml, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range snap.Warnings {
				if containsAll(w.Error(), tc.want) {
					return
				}
			}
			t.Errorf("no warning contains %q; warnings:\n%v", tc.want, config.Problems(snap.Warnings))
		})
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestGroupOrder: group.order puts an Ingress's rules first whatever its
// name; an out-of-range order is refused.
func TestGroupOrder(t *testing.T) {
	a := ingressWith("a-first-by-name", ipTarget)
	z := strings.Replace(ingressWith("z-last-by-name", ipTarget, `alb.ingress.kubernetes.io/group.order: "-5"`, "alb.ingress.kubernetes.io/group.name: milvus"),
		"host: milvus-demo.milvus.io", "host: other.milvus.io", 1)
	snap, err := run(a+"---\n"+z, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rules := snap.Listeners[0].Rules
	if len(rules) != 2 || !strings.HasPrefix(rules[0].Name, "milvus/z-last-by-name#") {
		t.Fatalf("rules %+v; want z-last-by-name first (group.order -5)", rules)
	}
	for _, w := range snap.Warnings {
		if strings.Contains(w.Annotation, "group.") {
			t.Errorf("group annotation warned about: %v", w)
		}
	}
	_, err = run(ingressWith("bad", ipTarget, `alb.ingress.kubernetes.io/group.order: "2000"`), Options{})
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:8:") || !strings.Contains(err.Error(), "-1000 to 1000") {
		t.Fatalf("out-of-range group.order: %v", err)
	}
}

// expectProblems translates yaml and checks that it is refused, with no
// servable snapshot, as config.Problems containing every string of want.
func expectProblems(t *testing.T, yaml string, opts Options, want []string) {
	t.Helper()
	snap, err := run(yaml, opts)
	if err == nil {
		t.Fatalf("no error; snapshot %+v", snap)
	}
	if snap != nil && (len(snap.Listeners) > 0 || len(snap.TargetGroups) > 0) {
		t.Error("a servable snapshot was returned with an error")
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Errorf("error is %T, want config.Problems", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
}
