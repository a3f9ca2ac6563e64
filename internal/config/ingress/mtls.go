package ingress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/l7lb/l7lb/internal/config"
)

// mutual-authentication and ssl-redirect, as LBC reads them
// (pkg/ingress/model_build_listener.go, pkg/annotations).
const (
	annMutualAuth  = albPrefix + "mutual-authentication"
	annSSLRedirect = albPrefix + "ssl-redirect"
)

const mutualAuthExample = `'[{"port":443,"mode":"verify","trustStore":"NAME-OR-ARN"}]'`

// mutualAuthEntry is one element of the annotation's JSON list, with LBC's
// field names.
type mutualAuthEntry struct {
	Port                          *int    `json:"port"`
	Mode                          string  `json:"mode"`
	TrustStore                    *string `json:"trustStore"`
	IgnoreClientCertificateExpiry *bool   `json:"ignoreClientCertificateExpiry"`
	AdvertiseTrustStoreCaNames    *string `json:"advertiseTrustStoreCaNames"`
}

// portMutualAuth is one port's setting from one Ingress; nil ma is off.
type portMutualAuth struct {
	port int
	ma   *config.MutualAuthentication
}

// parseMutualAuth reads mutual-authentication for the Ingress's ports:
// each entry names a port of its listen-ports, a mode among off,
// passthrough and verify; verify needs trustStore (an ARN or a name that
// the trust store knows), and trustStore and ignoreClientCertificateExpiry
// belong to verify only. Problems name the entry's port.
func (t *translator) parseMutualAuth(a annotated, ports []listenPort) []portMutualAuth {
	raw, ok := a.get(annMutualAuth)
	if !ok {
		return nil
	}
	o := a.origin(annMutualAuth)
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	var entries []mutualAuthEntry
	if err := dec.Decode(&entries); err != nil {
		t.problem(o, annMutualAuth, "invalid JSON: %v; expected a list like %s", err, mutualAuthExample)
		return nil
	}
	var out []portMutualAuth
	bad := func(port int, format string, args ...any) {
		t.problem(o, annMutualAuth, "port %d: %s", port, fmt.Sprintf(format, args...))
	}
	for i, e := range entries {
		if e.Port == nil {
			t.problem(o, annMutualAuth, "entry %d has no port; expected a list like %s", i+1, mutualAuthExample)
			continue
		}
		port := *e.Port
		idx := slices.IndexFunc(ports, func(p listenPort) bool { return p.port == port })
		switch {
		case idx < 0:
			bad(port, "not among this Ingress's listen-ports")
			continue
		case slices.ContainsFunc(out, func(p portMutualAuth) bool { return p.port == port }):
			bad(port, "listed twice")
			continue
		}
		ma := &config.MutualAuthentication{Mode: e.Mode}
		switch e.Mode {
		case config.MutualAuthOff, config.MutualAuthPassthrough:
			if e.TrustStore != nil && *e.TrustStore != "" {
				bad(port, "mode %s does not take a trustStore (only verify does)", e.Mode)
				continue
			}
			if e.IgnoreClientCertificateExpiry != nil {
				bad(port, "mode %s does not take ignoreClientCertificateExpiry (only verify does)", e.Mode)
				continue
			}
		case config.MutualAuthVerify:
			if e.TrustStore == nil || *e.TrustStore == "" {
				bad(port, "mode verify needs a trustStore (an ARN or name from l7lb truststore create)")
				continue
			}
			ma.TrustStore = *e.TrustStore
			if t.opts.KnownTrustStore != nil && !t.opts.KnownTrustStore(ma.TrustStore) {
				bad(port, "trust store %s not found (create it with l7lb truststore create --name NAME --ca-certificates-bundle fileb://ca-bundle.pem; l7lb truststore list shows those there are)", ma.TrustStore)
				continue
			}
			if e.IgnoreClientCertificateExpiry != nil {
				ma.IgnoreClientCertificateExpiry = *e.IgnoreClientCertificateExpiry
			}
		default:
			bad(port, "invalid mode %q; expected off, passthrough or verify", e.Mode)
			continue
		}
		if v := e.AdvertiseTrustStoreCaNames; v != nil {
			switch {
			case *v != "on" && *v != "off":
				bad(port, "advertiseTrustStoreCaNames %q; expected on or off", *v)
				continue
			case e.Mode != config.MutualAuthVerify:
				bad(port, "mode %s does not take advertiseTrustStoreCaNames (only verify does)", e.Mode)
				continue
			}
			ma.AdvertiseTrustStoreCaNames = *v == "on"
		}
		if ports[idx].protocol != config.ProtocolHTTPS {
			if e.Mode != config.MutualAuthOff {
				bad(port, "is an HTTP port; mutual authentication needs HTTPS")
			}
			continue
		}
		if e.Mode == config.MutualAuthOff {
			ma = nil
		}
		out = append(out, portMutualAuth{port: port, ma: ma})
	}
	return out
}

// mergeMutualAuth takes m's setting for HTTPS listener l: the Ingresses
// that set one for a port must agree.
func (t *translator) mergeMutualAuth(l *listenerAcc, m *ingressModel) {
	i := slices.IndexFunc(m.mutualAuth, func(p portMutualAuth) bool { return p.port == l.port })
	if i < 0 {
		return
	}
	ma := m.mutualAuth[i].ma
	switch {
	case l.mutualAuthBy == nil:
		l.mutualAuth, l.mutualAuthBy = ma, m
	case !sameMutualAuth(ma, l.mutualAuth):
		t.problem(m.ann.origin(annMutualAuth), annMutualAuth,
			"port %d: %s conflicts with %s of Ingress %s (%s); one HTTPS port has one mutual authentication",
			l.port, describeMutualAuth(ma), describeMutualAuth(l.mutualAuth), l.mutualAuthBy.key, place(l.mutualAuthBy.ann.origin(annMutualAuth)))
	}
}

func sameMutualAuth(a, b *config.MutualAuthentication) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func describeMutualAuth(ma *config.MutualAuthentication) string {
	if ma == nil {
		return "mode off"
	}
	s := "mode " + ma.Mode
	if ma.TrustStore != "" {
		s += " with trust store " + ma.TrustStore
	}
	return s
}

// parseSSLRedirect reads ssl-redirect: the HTTPS port that every HTTP
// listener redirects to (0: not set or not valid).
func (t *translator) parseSSLRedirect(a annotated) int {
	raw, ok := a.get(annSSLRedirect)
	if !ok {
		return 0
	}
	port, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil || port < 1 || port > 65535 {
		t.problem(a.origin(annSSLRedirect), annSSLRedirect, "invalid value %q; expected the HTTPS port to redirect to, like '443'", raw)
		return 0
	}
	return port
}

// mergeSSLRedirect: ssl-redirect is one setting of the load balancer, as
// LBC applies it to every HTTP listener of the group; Ingresses that set
// it must agree.
func (t *translator) mergeSSLRedirect() {
	for _, m := range t.ingresses {
		switch {
		case m.sslRedirect == 0:
		case t.sslRedirectFrom == nil:
			t.sslRedirect, t.sslRedirectFrom = m.sslRedirect, m
		case m.sslRedirect != t.sslRedirect:
			t.problem(m.ann.origin(annSSLRedirect), annSSLRedirect,
				"port %d conflicts with port %d of Ingress %s (%s); all Ingresses served together must agree",
				m.sslRedirect, t.sslRedirect, t.sslRedirectFrom.key, place(t.sslRedirectFrom.ann.origin(annSSLRedirect)))
		}
	}
	if t.sslRedirectFrom == nil {
		return
	}
	if l, ok := t.listeners[t.sslRedirect]; !ok || l.protocol != config.ProtocolHTTPS {
		// LBC accepts it (the port may be another load balancer's); here
		// clients would be sent to a port nobody serves HTTPS on.
		t.warn(t.sslRedirectFrom.ann.origin(annSSLRedirect), annSSLRedirect,
			"HTTP listeners redirect to HTTPS port %d, but no Ingress listens there with HTTPS", t.sslRedirect)
	}
}
