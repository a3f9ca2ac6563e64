package ingress

import (
	"strings"
	"testing"
)

const (
	http80https443 = `alb.ingress.kubernetes.io/listen-ports: '[{"HTTP":80},{"HTTPS":443}]'`
	storeARN       = "arn:l7lb:elasticloadbalancing:local:000000000000:truststore/clients/0123456789abcdef"
)

func knownStores(refs ...string) func(string) bool {
	return func(ref string) bool {
		for _, r := range refs {
			if r == ref {
				return true
			}
		}
		return false
	}
}

func mutualAuth(json string) string {
	return "alb.ingress.kubernetes.io/mutual-authentication: '" + json + "'"
}

// Every way the mutual-authentication and ssl-redirect annotations can be
// wrong: each problem names the file and line, the Ingress, the
// annotation and (for mutual-authentication) the port.
func TestMutualAuthProblems(t *testing.T) {
	opts := Options{KnownTrustStore: knownStores(storeARN, "clients")}
	prefix := "bad.yaml:10: Ingress milvus/a: annotation alb.ingress.kubernetes.io/mutual-authentication: "
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"not JSON", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`{port:443}`)),
			[]string{prefix + "invalid JSON", `expected a list like '[{"port":443,"mode":"verify","trustStore":"NAME-OR-ARN"}]'`}},
		{"unknown field", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"port":443,"mode":"verify","trust_store":"clients"}]`)),
			[]string{prefix + "invalid JSON", `unknown field "trust_store"`}},
		{"no port", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"mode":"off"}]`)),
			[]string{prefix + "entry 1 has no port"}},
		{"port not listened on", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"port":8443,"mode":"passthrough"}]`)),
			[]string{prefix + "port 8443: not among this Ingress's listen-ports"}},
		{"bad mode", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"port":443,"mode":"strict"}]`)),
			[]string{prefix + `port 443: invalid mode "strict"; expected off, passthrough or verify`}},
		{"verify without trust store", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"port":443,"mode":"verify"}]`)),
			[]string{prefix + "port 443: mode verify needs a trustStore"}},
		{"unknown trust store", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"port":443,"mode":"verify","trustStore":"partners"}]`)),
			[]string{prefix + "port 443: trust store partners not found", "l7lb truststore create"}},
		{"passthrough with trust store", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"port":443,"mode":"passthrough","trustStore":"clients"}]`)),
			[]string{prefix + "port 443: mode passthrough does not take a trustStore"}},
		{"off with ignore expiry", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"port":443,"mode":"off","ignoreClientCertificateExpiry":true}]`)),
			[]string{prefix + "port 443: mode off does not take ignoreClientCertificateExpiry"}},
		{"bad advertise", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"port":443,"mode":"verify","trustStore":"clients","advertiseTrustStoreCaNames":"yes"}]`)),
			[]string{prefix + `port 443: advertiseTrustStoreCaNames "yes"; expected on or off`}},
		{"verify on HTTP", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"port":80,"mode":"verify","trustStore":"clients"}]`)),
			[]string{prefix + "port 80: is an HTTP port; mutual authentication needs HTTPS"}},
		{"twice", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"port":443,"mode":"off"},{"port":443,"mode":"passthrough"}]`)),
			[]string{prefix + "port 443: listed twice"}},
		{"conflict between Ingresses", ingressWith("a", ipTarget, http80https443, certA, mutualAuth(`[{"port":443,"mode":"passthrough"}]`)) + "---\n" +
			ingressWith("b", ipTarget, http80https443, certA, mutualAuth(`[{"port":443,"mode":"verify","trustStore":"clients"}]`)),
			[]string{"bad.yaml:34: Ingress milvus/b: annotation alb.ingress.kubernetes.io/mutual-authentication: port 443: mode verify with trust store clients conflicts with mode passthrough of Ingress milvus/a (bad.yaml:10)"}},
		{"bad ssl-redirect", ingressWith("a", ipTarget, "alb.ingress.kubernetes.io/ssl-redirect: https"),
			[]string{"bad.yaml:8: Ingress milvus/a: annotation alb.ingress.kubernetes.io/ssl-redirect: invalid value \"https\"; expected the HTTPS port to redirect to, like '443'"}},
		{"ssl-redirect conflict", ingressWith("a", ipTarget, "alb.ingress.kubernetes.io/ssl-redirect: '443'") + "---\n" + ingressWith("b", ipTarget, "alb.ingress.kubernetes.io/ssl-redirect: '8443'"),
			[]string{"bad.yaml:30: Ingress milvus/b: annotation alb.ingress.kubernetes.io/ssl-redirect: port 8443 conflicts with port 443 of Ingress milvus/a (bad.yaml:8)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(tc.yaml, opts)
			if err == nil {
				t.Fatal("translated without a problem")
			}
			if !containsAll(err.Error(), tc.want) {
				t.Errorf("error\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// An unset mutual-authentication, or "off", leaves the listener as it was.
func TestMutualAuthOff(t *testing.T) {
	for _, ann := range []string{"", mutualAuth(`[{"port":443,"mode":"off"},{"port":80,"mode":"off"}]`)} {
		lines := []string{ipTarget, http80https443, certA}
		if ann != "" {
			lines = append(lines, ann)
		}
		snap, err := run(ingressWith("a", lines...), Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range snap.Listeners {
			if l.MutualAuthentication != nil {
				t.Errorf("%q: listener %d has mutual authentication %+v", ann, l.Port, l.MutualAuthentication)
			}
		}
		for _, w := range snap.Warnings {
			if strings.Contains(w.Annotation, "mutual") {
				t.Errorf("warned: %v", w)
			}
		}
	}
}
