package ingress

import (
	"slices"

	"github.com/l7lb/l7lb/internal/config"
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
}

func (l *listenerAcc) listener(scheme config.Scheme) config.Listener {
	out := config.Listener{
		Port:     l.port,
		Protocol: l.protocol,
		Scheme:   scheme,
		Rules:    slices.Clone(l.rules),
		// The first Ingress on the port sets the idle timeout, as LBC
		// takes load-balancer-attributes from one Ingress of a group.
		IdleTimeout: l.firstBy.idle,
	}
	if out.Rules == nil {
		out.Rules = []config.Rule{}
	}
	if l.defaultBy != nil {
		out.Rules = append(out.Rules, *l.defaultBy.defaultRule)
	}
	if l.protocol == config.ProtocolHTTPS {
		out.CertificateARNs = slices.Clone(l.certs)
	}
	return out
}

// mergeListeners merges the Ingresses' listen-ports by port as LBC merges
// an IngressGroup: one protocol per port, certificates unioned (the first
// Ingress's first certificate stays the default), one scheme for all, and
// at most one default backend per port. Ingresses are visited in
// namespace/name order, so "first" is well defined.
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
			}
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
