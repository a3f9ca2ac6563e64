package listener

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Inbound is the set of client networks a listener accepts
// (alb.ingress.kubernetes.io/inbound-cidrs). On the ALB it is the load
// balancer's security group, which drops other clients' packets; l7lb
// cannot drop a SYN without a firewall, so it accepts the connection and
// resets it at once, before reading a byte (TLS included). A nil *Inbound
// accepts everyone.
type Inbound struct {
	prefixes []netip.Prefix
}

// NewInbound parses CIDRs ("10.0.0.0/8", "2001:db8::/32"). It returns nil
// (everyone) for an empty list and for one that covers both whole address
// families, so that the common case costs nothing per connection.
func NewInbound(cidrs []string) (*Inbound, error) {
	in := &Inbound{}
	all4, all6 := false, false
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("inbound CIDR %q: %w", s, err)
		}
		p = p.Masked()
		if p.Bits() == 0 {
			all4 = all4 || p.Addr().Is4()
			all6 = all6 || p.Addr().Is6()
		}
		in.prefixes = append(in.prefixes, p)
	}
	if len(cidrs) == 0 || all4 && all6 {
		return nil, nil
	}
	return in, nil
}

// Allows reports whether a client at addr may connect. An IPv4 client
// seen on a dual-stack IPv6 socket (::ffff:a.b.c.d) is matched as the IPv4
// address it is. An address that cannot be read is refused.
func (in *Inbound) Allows(addr net.Addr) bool {
	if in == nil {
		return true
	}
	var ip netip.Addr
	if ta, ok := addr.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
	} else if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
		ip = ap.Addr()
	}
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range in.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// String lists the networks, for logs.
func (in *Inbound) String() string {
	if in == nil {
		return "0.0.0.0/0,::/0"
	}
	s := ""
	for i, p := range in.prefixes {
		if i > 0 {
			s += ","
		}
		s += p.String()
	}
	return s
}

// bindPlan is where a listener's sockets go. The configured address is
// "host:port" as runtime.Options.Bind returns it; the ALB's
// ip-address-type decides whether an IPv6 socket joins the IPv4 one:
//
//	host                 ipv4                    dualstack
//	"" or 0.0.0.0        0.0.0.0:port only       0.0.0.0:port and [::]:port
//	127.0.0.1            127.0.0.1:port          127.0.0.1:port and [::1]:port
//	any other address    as given                as given (no IPv6 twin; logged)
//
// An empty host means the IPv4 wildcard, not Go's dual-stack wildcard: an
// ipv4 ALB has no IPv6 address, so IPv6 clients cannot reach it. The IPv6
// socket is IPV6_V6ONLY (Go's "tcp6"), so the two never overlap, and it
// takes the port the IPv4 socket got (which matters with port 0).
type bindPlan struct {
	network, addr string
	// twinHost is the IPv6 host a dualstack listener adds ("" for none).
	twinHost string
}

func planBind(addr string) (bindPlan, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return bindPlan{}, err
	}
	switch host {
	case "", "0.0.0.0":
		return bindPlan{network: "tcp4", addr: net.JoinHostPort("0.0.0.0", port), twinHost: "::"}, nil
	case "127.0.0.1":
		return bindPlan{network: "tcp4", addr: addr, twinHost: "::1"}, nil
	}
	return bindPlan{network: "tcp", addr: addr}, nil
}

// listenTwin binds the IPv6 socket of a dualstack listener on the port the
// IPv4 socket has.
func listenTwin(host string, primary net.Addr) (net.Listener, error) {
	ta, ok := primary.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("dualstack: the IPv4 socket's address %s is not TCP", primary)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(ta.Port))
	ln, err := net.Listen("tcp6", addr)
	if err != nil {
		return nil, fmt.Errorf("dualstack: listen on %s: %w", addr, err)
	}
	return ln, nil
}
