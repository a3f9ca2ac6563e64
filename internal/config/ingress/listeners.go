package ingress

import (
	"slices"
	"strings"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/tlspolicy"
)

// listenerAcc gathers what the Ingresses listening on one port contribute.
type listenerAcc struct {
	port     int
	protocol config.Protocol
	firstBy  *ingressModel
	certs    []string
	rules    []config.Rule
	// defaultBy is the Ingress whose defaultBackend this listener uses.
	defaultBy *ingressModel
	// sslPolicy and inbound, with the first Ingress that set them: every
	// Ingress that sets one for this port must agree (LBC: "conflicting
	// sslPolicy", "conflicting inbound-cidrs").
	sslPolicy   string
	sslPolicyBy *ingressModel
	inbound     []string
	inboundBy   *ingressModel
	// mutualAuth, with the first Ingress that set it for this port.
	mutualAuth   *config.MutualAuthentication
	mutualAuthBy *ingressModel
}

func (l *listenerAcc) listener(scheme config.Scheme, ipType config.IPAddressType) config.Listener {
	out := config.Listener{
		Port:     l.port,
		Protocol: l.protocol,
		Scheme:   scheme,
		Rules:    slices.Clone(l.rules),
		// The first Ingress on the port sets the idle timeout, as LBC
		// takes load-balancer-attributes from one Ingress of a group.
		IdleTimeout:   l.firstBy.idle,
		InboundCIDRs:  slices.Clone(defaultInboundCIDRs),
		IPAddressType: ipType,
	}
	if l.inboundBy != nil {
		out.InboundCIDRs = slices.Clone(l.inbound)
	}
	if out.Rules == nil {
		out.Rules = []config.Rule{}
	}
	if l.defaultBy != nil {
		out.Rules = append(out.Rules, *l.defaultBy.defaultRule)
	}
	if l.protocol == config.ProtocolHTTPS {
		out.CertificateARNs = slices.Clone(l.certs)
		out.SSLPolicy = tlspolicy.Default
		if l.sslPolicyBy != nil {
			out.SSLPolicy = l.sslPolicy
		}
		if l.mutualAuth != nil {
			ma := *l.mutualAuth
			out.MutualAuthentication = &ma
		}
	}
	return out
}

// mergeListeners merges the Ingresses' listen-ports by port as LBC merges
// an IngressGroup: one protocol per port, certificates unioned (the first
// Ingress's first certificate stays the default), one scheme and one
// ip-address-type for all, one ssl-policy and one inbound-cidrs per port
// among the Ingresses that set them, and at most one default backend per
// port. Ingresses are visited in namespace/name order, so "first" is well
// defined.
func (t *translator) mergeListeners() {
	for _, m := range t.ingresses {
		if m.schemeSet {
			switch {
			case t.schemeFrom == nil:
				t.scheme, t.schemeFrom = m.scheme, m
			case m.scheme != t.scheme:
				t.problem(m.ann.origin(annScheme), annScheme,
					"scheme %s conflicts with scheme %s of Ingress %s (%s); all Ingresses served together must agree",
					m.scheme, t.scheme, t.schemeFrom.key, place(t.schemeFrom.ann.origin(annScheme)))
			}
		}
		if m.ipTypeSet {
			switch {
			case t.ipTypeFrom == nil:
				t.ipType, t.ipTypeFrom = m.ipType, m
			case m.ipType != t.ipType:
				t.problem(m.ann.origin(annIPAddressType), annIPAddressType,
					"ip-address-type %s conflicts with ip-address-type %s of Ingress %s (%s); all Ingresses served together must agree",
					m.ipType, t.ipType, t.ipTypeFrom.key, place(t.ipTypeFrom.ann.origin(annIPAddressType)))
			}
		}
		for _, p := range m.ports {
			l, ok := t.listeners[p.port]
			if !ok {
				l = &listenerAcc{port: p.port, protocol: p.protocol, firstBy: m}
				t.listeners[p.port] = l
			} else if l.protocol != p.protocol {
				t.problem(m.ann.origin(annListenPorts), annListenPorts,
					"port %d is %s here but %s in Ingress %s (%s); one port has one protocol",
					p.port, p.protocol, l.protocol, l.firstBy.key, place(l.firstBy.ann.origin(annListenPorts)))
				continue
			}
			if p.protocol == config.ProtocolHTTPS {
				for _, c := range m.certs {
					if !slices.Contains(l.certs, c) {
						l.certs = append(l.certs, c)
					}
				}
				t.mergeSSLPolicy(l, m)
				t.mergeMutualAuth(l, m)
			}
			t.mergeInbound(l, m)
			l.rules = append(l.rules, m.rules...)
			if m.defaultRule != nil {
				if l.defaultBy != nil {
					t.problem(m.ing.At("spec", "defaultBackend"), "",
						"port %d already has a default backend from Ingress %s (%s); only one Ingress per port may set spec.defaultBackend",
						p.port, l.defaultBy.key, place(l.defaultBy.defaultRule.Origin))
				} else {
					l.defaultBy = m
				}
			}
		}
	}
}

// mergeSSLPolicy takes m's ssl-policy for HTTPS listener l.
func (t *translator) mergeSSLPolicy(l *listenerAcc, m *ingressModel) {
	switch {
	case m.sslPolicy == "":
	case l.sslPolicyBy == nil:
		l.sslPolicy, l.sslPolicyBy = m.sslPolicy, m
	case m.sslPolicy != l.sslPolicy:
		t.problem(m.ann.origin(annSSLPolicy), annSSLPolicy,
			"port %d: policy %s conflicts with policy %s of Ingress %s (%s); one HTTPS port has one policy",
			l.port, m.sslPolicy, l.sslPolicy, l.sslPolicyBy.key, place(l.sslPolicyBy.ann.origin(annSSLPolicy)))
	}
}

// mergeInbound takes m's inbound-cidrs for listener l. Both lists are
// sorted and without repeats, so equal sets are equal slices.
func (t *translator) mergeInbound(l *listenerAcc, m *ingressModel) {
	switch {
	case !m.inboundSet:
	case l.inboundBy == nil:
		l.inbound, l.inboundBy = m.inbound, m
	case !slices.Equal(m.inbound, l.inbound):
		t.problem(m.ann.origin(annInboundCIDRs), annInboundCIDRs,
			"port %d: CIDRs %s conflict with %s of Ingress %s (%s); the Ingresses on one port must list the same CIDRs, or only one may set them",
			l.port, strings.Join(m.inbound, ","), strings.Join(l.inbound, ","), l.inboundBy.key, place(l.inboundBy.ann.origin(annInboundCIDRs)))
	}
}
