package ingress

import (
	"time"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/manifest"
)

// ingressModel is what one Ingress contributes.
type ingressModel struct {
	ing  *manifest.Ingress
	key  string // "namespace/name"
	ann  annotated
	conf backendSettings // the Ingress's own backend annotations

	scheme    config.Scheme
	schemeSet bool
	ports     []listenPort
	certs     []string
	// rules in evaluation order; defaultRule is evaluated after every
	// Ingress's rules on a listener.
	rules       []config.Rule
	defaultRule *config.Rule
	idle        time.Duration // load-balancer-attributes idle_timeout

	// sslPolicy is ssl-policy for this Ingress's HTTPS ports ("" = not set).
	sslPolicy string
	// inbound is inbound-cidrs for this Ingress's ports (inboundSet: set
	// and valid).
	inbound    []string
	inboundSet bool
	ipType     config.IPAddressType
	ipTypeSet  bool
	// mutualAuth per port (mutual-authentication); sslRedirect is the
	// ssl-redirect port (0: not set).
	mutualAuth  []portMutualAuth
	sslRedirect int
}

func (m *ingressModel) object() string { return m.ing.Origin.Object }

func (t *translator) buildIngress(ing *manifest.Ingress) *ingressModel {
	m := &ingressModel{
		ing: ing,
		key: ing.Object.Namespace + "/" + ing.Object.Name,
		ann: annotated{src: ing.Source, ann: ing.Object.Annotations},
	}
	t.checkAnnotations(m.ann, ingressHonoured)
	m.scheme, m.schemeSet = t.parseScheme(m.ann)
	m.idle = t.parseIdleTimeout(m.ann)
	m.certs = t.parseCertificateARNs(m.ann)
	_, certAnnotated := m.ann.get(annCertificateARN)
	m.ports = t.parseListenPorts(m.ann, certAnnotated)
	m.sslPolicy = t.parseSSLPolicy(m.ann, m.ports)
	m.inbound, m.inboundSet = t.parseInboundCIDRs(m.ann)
	m.ipType, m.ipTypeSet = t.parseIPAddressType(m.ann)
	m.mutualAuth = t.parseMutualAuth(m.ann, m.ports)
	m.sslRedirect = t.parseSSLRedirect(m.ann)
	m.conf = t.parseBackendSettings(m.ann)
	t.checkCertificates(m, certAnnotated)
	t.buildRules(m)
	return m
}

// checkCertificates requires certificate-arn for HTTPS listeners. LBC
// would otherwise discover ACM certificates by host name; there is no ACM
// to ask in file mode, so say so instead of serving without TLS.
func (t *translator) checkCertificates(m *ingressModel, certAnnotated bool) {
	if certAnnotated {
		return // problems, if any, were reported while parsing
	}
	for _, p := range m.ports {
		if p.protocol != config.ProtocolHTTPS {
			continue
		}
		if len(m.ing.Object.Spec.TLS) > 0 {
			t.problem(m.ing.At("spec", "tls"), annCertificateARN,
				"HTTPS listener on port %d needs a certificate: certificate discovery from spec.tls is not supported in file mode; set %s", p.port, annCertificateARN)
		} else {
			t.problem(m.ann.origin(annListenPorts), annCertificateARN,
				"HTTPS listener on port %d needs a certificate; set %s", p.port, annCertificateARN)
		}
		return
	}
}
