package ingress

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/tlspolicy"
)

// The listener-level TLS and access annotations. As in LBC
// (pkg/ingress/model_build_listener.go, computeIngressListenPortConfigByPort),
// ssl-policy and inbound-cidrs apply to the ports of the Ingress's own
// listen-ports, and ip-address-type to the whole load balancer.
const (
	annSSLPolicy     = albPrefix + "ssl-policy"
	annInboundCIDRs  = albPrefix + "inbound-cidrs"
	annIPAddressType = albPrefix + "ip-address-type"
)

// defaultInboundCIDRs is LBC's default for a port no Ingress restricts:
// everyone, in both families (pkg/ingress/model_builder.go,
// mergeListenPortConfigs). LBC drops the IPv6 one on an ipv4 load
// balancer, which has no IPv6 address to reach; l7lb keeps it, since
// --listen may bind an IPv6 address explicitly whatever the address type.
var defaultInboundCIDRs = []string{"0.0.0.0/0", "::/0"}

const inboundCIDRsExample = "10.0.0.0/8,2001:db8::/32"

// parseSSLPolicy reads ssl-policy. LBC gives it only to the Ingress's
// HTTPS ports (and the ALB API only ever sees it there), so on an Ingress
// without one it is a warning, not a refusal; on one with an HTTPS port an
// unknown name is a Problem.
func (t *translator) parseSSLPolicy(a annotated, ports []listenPort) string {
	raw, ok := a.get(annSSLPolicy)
	if !ok {
		return ""
	}
	o := a.origin(annSSLPolicy)
	_, err := tlspolicy.Lookup(raw)
	if !slices.ContainsFunc(ports, func(p listenPort) bool { return p.protocol == config.ProtocolHTTPS }) {
		msg := "this Ingress has no HTTPS port in listen-ports; the policy applies to HTTPS listeners only and is ignored"
		if err != nil {
			msg += " (and it is not valid: " + err.Error() + ")"
		}
		t.warn(o, annSSLPolicy, "%s", msg)
		return ""
	}
	if err != nil {
		t.problem(o, annSSLPolicy, "%v", err)
		return ""
	}
	return raw
}

// parseInboundCIDRs reads inbound-cidrs as LBC's stringList (comma
// separated, blanks trimmed, empty items dropped), each an IPv4 or IPv6
// prefix. It returns the prefixes in canonical form, sorted and without
// repeats, and whether the annotation is set and valid.
func (t *translator) parseInboundCIDRs(a annotated) ([]string, bool) {
	raw, ok := a.get(annInboundCIDRs)
	if !ok {
		return nil, false
	}
	o := a.origin(annInboundCIDRs)
	var out []string
	bad := false
	for _, s := range strings.Split(raw, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			// "10.0.0.1" without a length is refused too, as LBC
			// (net.ParseCIDR) and the EC2 API refuse it.
			t.problem(o, annInboundCIDRs, "invalid CIDR %q: %v; expected comma-separated networks like %s", s, errText(err), inboundCIDRsExample)
			bad = true
			continue
		}
		if m := p.Masked(); m != p {
			t.warn(o, annInboundCIDRs, "%s has bits set past its prefix length; l7lb reads it as the network %s", s, m)
			p = m
		}
		if c := p.String(); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	if bad {
		return nil, false
	}
	if len(out) == 0 {
		// LBC would read an empty list as "not set" and let everyone
		// in; an annotation meant to keep clients out that keeps nobody
		// out is more likely a mistake.
		t.problem(o, annInboundCIDRs, "no CIDR given; expected comma-separated networks like %s (remove the annotation to allow every client)", inboundCIDRsExample)
		return nil, false
	}
	slices.Sort(out)
	return out, true
}

// errText trims the package prefix off netip's messages.
func errText(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "): "); i >= 0 {
		return s[i+3:]
	}
	return s
}

// parseIPAddressType reads ip-address-type; ok is false when it is not set
// or not valid.
func (t *translator) parseIPAddressType(a annotated) (config.IPAddressType, bool) {
	raw, ok := a.get(annIPAddressType)
	if !ok {
		return "", false
	}
	o := a.origin(annIPAddressType)
	switch v := config.IPAddressType(raw); v {
	case config.IPAddressTypeIPv4, config.IPAddressTypeDualStack:
		return v, true
	case config.IPAddressTypeDualStackWithoutPublicIPv4:
		t.warn(o, annIPAddressType, "l7lb listens on IPv4 and IPv6 as for dualstack: it cannot tell public IPv4 clients from private ones; keep public IPv4 clients out with %s", annInboundCIDRs)
		return v, true
	}
	t.problem(o, annIPAddressType, "invalid value %q; expected ipv4, dualstack or dualstack-without-public-ipv4", raw)
	return "", false
}
