package ingress

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/l7lb/l7lb/internal/config"
)

// ParseEndpointsFlag parses one --endpoints value:
//
//	NAMESPACE/SERVICE=HOST:PORT[,HOST:PORT...]   fixed targets (IPv6 as [::1]:19530)
//	NAMESPACE/SERVICE=dns:NAME:PORT              every address NAME resolves to
//
// key is "NAMESPACE/SERVICE", the form Options.Endpoints and Options.DNS
// use. Exactly one of eps and dns is set on success. Fixed targets are
// marked ready: health checking, not the flag, decides otherwise.
func ParseEndpointsFlag(value string) (key string, eps []config.Endpoint, dns *config.DNSSource, err error) {
	key, targets, ok := strings.Cut(value, "=")
	if !ok {
		return "", nil, nil, fmt.Errorf("--endpoints %q: expected NAMESPACE/SERVICE=HOST:PORT[,HOST:PORT...] or NAMESPACE/SERVICE=dns:NAME:PORT", value)
	}
	ns, svc, ok := strings.Cut(key, "/")
	if !ok || !validLabel(ns) || !validLabel(svc) {
		return "", nil, nil, fmt.Errorf("--endpoints %q: %q is not NAMESPACE/SERVICE (lower-case DNS labels)", value, key)
	}
	if name, ok := strings.CutPrefix(targets, "dns:"); ok {
		host, port, err := splitHostPort(name)
		if err != nil {
			return "", nil, nil, fmt.Errorf("--endpoints %q: %w; expected dns:NAME:PORT", value, err)
		}
		return key, nil, &config.DNSSource{Name: host, Port: port, Interval: DefaultDNSInterval}, nil
	}
	seen := map[string]bool{}
	for _, t := range strings.Split(targets, ",") {
		t = strings.TrimSpace(t)
		host, port, err := splitHostPort(t)
		if err != nil {
			return "", nil, nil, fmt.Errorf("--endpoints %q: %w; expected HOST:PORT, with IPv6 as [::1]:19530", value, err)
		}
		id := net.JoinHostPort(host, strconv.Itoa(port))
		if seen[id] {
			return "", nil, nil, fmt.Errorf("--endpoints %q: %s listed twice", value, id)
		}
		seen[id] = true
		eps = append(eps, config.Endpoint{Address: host, Port: port, Ready: true})
	}
	return key, eps, nil, nil
}

func splitHostPort(s string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("target %q: %w", s, err)
	}
	if host == "" {
		return "", 0, fmt.Errorf("target %q: empty host", s)
	}
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("target %q: invalid IPv6 address", s)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("target %q: port must be a number within [1, 65535]", s)
	}
	return host, port, nil
}

// validLabel reports whether s is a DNS-1123 label, the form of Kubernetes
// namespace and Service names.
func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
