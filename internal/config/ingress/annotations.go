package ingress

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/manifest"
)

// Annotation names. LBC reads only exact, case-sensitive values, and so
// does l7lb.
const (
	albPrefix  = "alb.ingress.kubernetes.io/"
	l7lbPrefix = "l7lb.io/"

	annScheme                 = albPrefix + "scheme"
	annListenPorts            = albPrefix + "listen-ports"
	annCertificateARN         = albPrefix + "certificate-arn"
	annBackendProtocol        = albPrefix + "backend-protocol"
	annBackendProtocolVersion = albPrefix + "backend-protocol-version"
	annTargetType             = albPrefix + "target-type"
	annMaxMessageBytes        = l7lbPrefix + "max-message-bytes"

	annIngressClass   = "kubernetes.io/ingress.class"
	annDefaultClass   = "ingressclass.kubernetes.io/is-default-class"
	useAnnotationPort = "use-annotation"
)

// Which annotations are honoured where. LBC reads backend settings from
// the Service first, then the Ingress; listener settings only from the
// Ingress.
var (
	ingressHonoured = append([]string{annScheme, annListenPorts, annCertificateARN, annLBAttributes, annGroupName, annGroupOrder,
		annSSLPolicy, annInboundCIDRs, annIPAddressType, annMutualAuth, annSSLRedirect, annBackendProtocol, annBackendProtocolVersion, annTargetType, annMaxMessageBytes}, tgRawAnnotations...)
	serviceHonoured = append([]string{annBackendProtocol, annBackendProtocolVersion, annTargetType, annMaxMessageBytes}, tgRawAnnotations...)
	l7lbKnown       = []string{annMaxMessageBytes, annRetryPolicy, annAlgorithm}
)

// annotated is an object's annotations with a way to locate each of them.
type annotated struct {
	src manifest.Source
	ann map[string]string
}

func (a annotated) origin(key string) config.Origin {
	return a.src.At("metadata", "annotations", key)
}

func (a annotated) get(key string) (string, bool) {
	v, ok := a.ann[key]
	return v, ok
}

// checkAnnotations warns about every alb.ingress.kubernetes.io/ annotation
// l7lb does not honour on this kind of object, and refuses unknown l7lb.io/
// ones: those are ours, so a typo there is a mistake, not a foreign setting.
func (t *translator) checkAnnotations(a annotated, honoured []string) {
	keys := make([]string, 0, len(a.ann))
	for k := range a.ann {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case routingAnnotation(k):
			// actions.${name} and conditions.${name}: read per backend
			// (rules.go); LBC reads them only on the Ingress.
			if !slices.Contains(honoured, annListenPorts) {
				t.warn(a.origin(k), k, "annotation only honoured on an Ingress; ignored here")
			}
		case strings.HasPrefix(k, l7lbPrefix) && !slices.Contains(l7lbKnown, k):
			t.problem(a.origin(k), k, "unknown l7lb annotation; known: %s, %s${name}", strings.Join(l7lbKnown, ", "), annL7LBConditionsPrefix)
		case strings.HasPrefix(k, albPrefix) && !slices.Contains(honoured, k):
			if slices.Contains(ingressHonoured, k) {
				t.warn(a.origin(k), k, "annotation only honoured on an Ingress; ignored here")
			} else {
				t.warn(a.origin(k), k, "annotation not yet honoured by l7lb; ignored")
			}
		}
	}
}

// backendSettings are the per-target-group values an Ingress or a Service
// may set; nil means "not set here".
type backendSettings struct {
	protocol        *config.Protocol
	version         *config.ProtocolVersion
	targetType      *config.TargetType
	maxMessageBytes *int64
	// raw holds the health check, attribute and retry annotations, parsed
	// once the layers are merged.
	raw map[string]string
	// from records which object set each value, for messages.
	from map[string]config.Origin
}

// parseBackendSettings reads the backend annotations of one object. Invalid
// values become Problems and are left unset.
func (t *translator) parseBackendSettings(a annotated) backendSettings {
	s := backendSettings{from: map[string]config.Origin{}, raw: map[string]string{}}
	for _, k := range tgRawAnnotations {
		if v, ok := a.get(k); ok {
			s.raw[k] = v
			s.from[k] = a.origin(k)
		}
	}
	if v, ok := a.get(annBackendProtocol); ok {
		switch p := config.Protocol(v); p {
		case config.ProtocolHTTP, config.ProtocolHTTPS:
			s.protocol = &p
			s.from[annBackendProtocol] = a.origin(annBackendProtocol)
		default:
			t.problem(a.origin(annBackendProtocol), annBackendProtocol, "invalid value %q; expected HTTP or HTTPS", v)
		}
	}
	if v, ok := a.get(annBackendProtocolVersion); ok {
		switch p := config.ProtocolVersion(v); p {
		case config.VersionHTTP1, config.VersionHTTP2, config.VersionGRPC:
			s.version = &p
			s.from[annBackendProtocolVersion] = a.origin(annBackendProtocolVersion)
		default:
			t.problem(a.origin(annBackendProtocolVersion), annBackendProtocolVersion, "invalid value %q; expected HTTP1, HTTP2 or GRPC", v)
		}
	}
	if v, ok := a.get(annTargetType); ok {
		switch p := config.TargetType(v); p {
		case config.TargetTypeIP, config.TargetTypeInstance:
			s.targetType = &p
			s.from[annTargetType] = a.origin(annTargetType)
		default:
			t.problem(a.origin(annTargetType), annTargetType, "invalid value %q; expected ip or instance", v)
		}
	}
	if v, ok := a.get(annMaxMessageBytes); ok {
		n, err := parseBytes(v)
		if err != nil {
			t.problem(a.origin(annMaxMessageBytes), annMaxMessageBytes, "invalid value %q: %v; expected bytes like 268435456 or 256Mi", v, err)
		} else {
			s.maxMessageBytes = &n
			s.from[annMaxMessageBytes] = a.origin(annMaxMessageBytes)
		}
	}
	return s
}

// maxMessageBytesLimit is the largest gRPC message the length prefix can
// describe (4 GiB - 1).
const maxMessageBytesLimit = 1<<32 - 1

// parseBytes reads "268435456", "64Ki", "256Mi" or "1Gi": the binary
// suffixes Kubernetes quantities use, and nothing looser (no "MB": 10^6 or
// 2^20 would be a guess).
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	num := s
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.mult, strings.TrimSuffix(s, u.suffix)
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("not a positive integer with optional Ki, Mi or Gi suffix")
	}
	if n > maxMessageBytesLimit/mult {
		return 0, fmt.Errorf("larger than the gRPC limit of 4Gi-1 bytes")
	}
	return n * mult, nil
}

// listenPort is one entry of listen-ports.
type listenPort struct {
	port     int
	protocol config.Protocol
}

const listenPortsExample = `'[{"HTTP":80},{"HTTPS":443}]'`

// parseListenPorts reads listen-ports as LBC does (a JSON list of
// single-key objects {"PROTOCOL": port}), defaulting to HTTP:80, or
// HTTPS:443 when certificates are given. Unlike LBC, which lets a later
// duplicate silently win, a repeated port is a Problem.
func (t *translator) parseListenPorts(a annotated, haveCerts bool) []listenPort {
	raw, ok := a.get(annListenPorts)
	if !ok {
		if haveCerts {
			return []listenPort{{443, config.ProtocolHTTPS}}
		}
		return []listenPort{{80, config.ProtocolHTTP}}
	}
	o := a.origin(annListenPorts)
	var entries []map[string]int64
	if err := json.Unmarshal([]byte(raw), &entries); err != nil {
		t.problem(o, annListenPorts, "invalid value %q: %v; expected JSON like %s", raw, err, listenPortsExample)
		return nil
	}
	if len(entries) == 0 {
		t.problem(o, annListenPorts, "empty list; expected JSON like %s", listenPortsExample)
		return nil
	}
	var out []listenPort
	seen := map[int64]bool{}
	for _, e := range entries {
		protos := make([]string, 0, len(e))
		for p := range e {
			protos = append(protos, p)
		}
		slices.Sort(protos) // map order is random; messages must not be
		for _, proto := range protos {
			port := e[proto]
			switch {
			case proto != string(config.ProtocolHTTP) && proto != string(config.ProtocolHTTPS):
				t.problem(o, annListenPorts, "protocol %q must be HTTP or HTTPS; expected JSON like %s", proto, listenPortsExample)
			case port < 1 || port > 65535:
				t.problem(o, annListenPorts, "port %d must be within [1, 65535]; expected JSON like %s", port, listenPortsExample)
			case seen[port]:
				t.problem(o, annListenPorts, "port %d listed twice", port)
			default:
				seen[port] = true
				out = append(out, listenPort{int(port), config.Protocol(proto)})
			}
		}
	}
	slices.SortFunc(out, func(x, y listenPort) int { return x.port - y.port })
	return out
}

// parseCertificateARNs reads certificate-arn as LBC's stringList: comma
// separated, blanks trimmed, empty items dropped.
func (t *translator) parseCertificateARNs(a annotated) []string {
	raw, ok := a.get(annCertificateARN)
	if !ok {
		return nil
	}
	var arns []string
	rejected := false
	for _, s := range strings.Split(raw, ",") {
		s = strings.TrimSpace(s)
		if s == "" || slices.Contains(arns, s) {
			continue
		}
		if t.opts.KnownCertificate != nil && !t.opts.KnownCertificate(s) {
			t.problem(a.origin(annCertificateARN), annCertificateARN, "certificate %s is not in the certificate store; import it first", s)
			rejected = true
			continue
		}
		arns = append(arns, s)
	}
	if len(arns) == 0 && !rejected {
		t.problem(a.origin(annCertificateARN), annCertificateARN, "no certificate ARN given; expected arn[,arn...]")
	}
	return arns
}

// parseScheme reads scheme; ok is false when it is not set.
func (t *translator) parseScheme(a annotated) (s config.Scheme, ok bool) {
	raw, ok := a.get(annScheme)
	if !ok {
		return "", false
	}
	switch s := config.Scheme(raw); s {
	case config.SchemeInternal, config.SchemeInternetFacing:
		return s, true
	}
	t.problem(a.origin(annScheme), annScheme, "invalid value %q; expected internal or internet-facing", raw)
	return "", false
}
