// Package config holds l7lb's typed, validated configuration model.
//
// A Snapshot is produced once per (re)load by a translator (config/ingress for
// Kubernetes Ingress objects) and is never mutated afterwards: the runtime
// compiles it into a route table and target groups and swaps the result in
// atomically. Nothing on the request path reads raw YAML or Kubernetes types.
package config

import "time"

// Protocol is a listener or backend protocol, spelled as the ALB spells it.
type Protocol string

const (
	ProtocolHTTP  Protocol = "HTTP"
	ProtocolHTTPS Protocol = "HTTPS"
)

// ProtocolVersion is the backend protocol version of a target group
// (alb.ingress.kubernetes.io/backend-protocol-version).
type ProtocolVersion string

const (
	VersionHTTP1 ProtocolVersion = "HTTP1"
	VersionHTTP2 ProtocolVersion = "HTTP2"
	VersionGRPC  ProtocolVersion = "GRPC"
)

// Scheme is alb.ingress.kubernetes.io/scheme.
type Scheme string

const (
	SchemeInternal       Scheme = "internal"
	SchemeInternetFacing Scheme = "internet-facing"
)

// IPAddressType is alb.ingress.kubernetes.io/ip-address-type: which
// address families the listeners take clients on.
type IPAddressType string

const (
	// IPAddressTypeIPv4 (the default; "" means it too): IPv4 only.
	IPAddressTypeIPv4 IPAddressType = "ipv4"
	// IPAddressTypeDualStack: IPv4 and IPv6.
	IPAddressTypeDualStack IPAddressType = "dualstack"
	// IPAddressTypeDualStackWithoutPublicIPv4 is the ALB's variant with
	// public IPv6 addresses and no public IPv4 ones; l7lb listens as for
	// dualstack (it cannot tell public IPv4 addresses from private ones).
	IPAddressTypeDualStackWithoutPublicIPv4 IPAddressType = "dualstack-without-public-ipv4"
)

// DualStack reports whether listeners also take IPv6 clients.
func (t IPAddressType) DualStack() bool {
	return t == IPAddressTypeDualStack || t == IPAddressTypeDualStackWithoutPublicIPv4
}

// TargetType is alb.ingress.kubernetes.io/target-type.
type TargetType string

const (
	TargetTypeIP       TargetType = "ip"
	TargetTypeInstance TargetType = "instance"
)

// PathType mirrors networking.k8s.io/v1 PathType.
type PathType string

const (
	PathExact                  PathType = "Exact"
	PathPrefix                 PathType = "Prefix"
	PathImplementationSpecific PathType = "ImplementationSpecific"
)

// DefaultMaxMessageBytes is the largest gRPC message (and REST body) that
// passes by default: 256 MiB, Milvus's own send limit.
const DefaultMaxMessageBytes int64 = 256 << 20

// Snapshot is one complete, validated configuration.
type Snapshot struct {
	// Listeners sorted by port; each port appears once.
	Listeners []Listener `json:"listeners"`
	// TargetGroups sorted by name; names are unique.
	TargetGroups []TargetGroup `json:"targetGroups"`
	// Warnings are problems that do not stop serving (unknown annotations,
	// services without endpoints, ...).
	Warnings []Warning `json:"warnings,omitempty"`
}

// Listener is one port the balancer listens on.
type Listener struct {
	Port     int      `json:"port"`
	Protocol Protocol `json:"protocol"`
	Scheme   Scheme   `json:"scheme"`
	// CertificateARNs: the first is the default certificate, the rest are
	// offered by SNI. Empty for HTTP listeners.
	CertificateARNs []string `json:"certificateArns,omitempty"`
	// Rules in evaluation order: the first match wins.
	Rules []Rule `json:"rules"`
	// IdleTimeout closes client connections without streams
	// (load-balancer-attributes idle_timeout.timeout_seconds, default 60 s).
	IdleTimeout time.Duration `json:"idleTimeout"`
	// SSLPolicy is the ELBSecurityPolicy name an HTTPS listener negotiates
	// with (ssl-policy; the translator fills in l7lb's default,
	// tlspolicy.Default, and "" means that too). Empty on HTTP listeners.
	SSLPolicy string `json:"sslPolicy,omitempty"`
	// InboundCIDRs are the client networks allowed to connect
	// (inbound-cidrs, as IPv4 or IPv6 prefixes in canonical form); a client
	// outside them is closed at accept, before TLS. The translator fills
	// in the default, 0.0.0.0/0 and ::/0; nil also allows everyone.
	InboundCIDRs []string `json:"inboundCidrs,omitempty"`
	// IPAddressType says whether the listener also takes IPv6 clients
	// (ip-address-type; the same on every listener, as it is one setting
	// of the load balancer).
	IPAddressType IPAddressType `json:"ipAddressType,omitempty"`
	// MutualAuthentication of an HTTPS listener (mutual-authentication);
	// nil is off.
	MutualAuthentication *MutualAuthentication `json:"mutualAuthentication,omitempty"`
	// SSLRedirectPort, on an HTTP listener, answers every HTTP/1.1
	// request with a 301 to HTTPS on this port (ssl-redirect); the
	// listener then has no rules, as on the ALB. 0: no redirect.
	SSLRedirectPort int `json:"sslRedirectPort,omitempty"`
}

// Mutual authentication modes (the ALB's).
const (
	MutualAuthOff         = "off"
	MutualAuthPassthrough = "passthrough"
	MutualAuthVerify      = "verify"
)

// MutualAuthentication is one listener's mTLS setting, in the ALB's terms.
type MutualAuthentication struct {
	// Mode is MutualAuthPassthrough or MutualAuthVerify (off is a nil
	// *MutualAuthentication).
	Mode string `json:"mode"`
	// TrustStore is the trust store's ARN or name (verify only).
	TrustStore                    string `json:"trustStore,omitempty"`
	IgnoreClientCertificateExpiry bool   `json:"ignoreClientCertificateExpiry,omitempty"`
	AdvertiseTrustStoreCaNames    bool   `json:"advertiseTrustStoreCaNames,omitempty"`
}

// Rule matches a request by host, path and conditions, and forwards it to a
// target group or does what its Action says.
type Rule struct {
	// Name identifies the rule in logs and metrics: "namespace/ingress#N".
	Name string `json:"name"`
	// Host is an exact host name, a "*.suffix" wildcard, or "" for any host.
	Host     string   `json:"host,omitempty"`
	Path     string   `json:"path"`
	PathType PathType `json:"pathType"`
	// TargetGroup names an entry of Snapshot.TargetGroups; empty when
	// Action says what to do instead.
	TargetGroup string `json:"targetGroup,omitempty"`
	// Conditions narrow the rule further (conditions.${name}); all must
	// hold.
	Conditions []Condition `json:"conditions,omitempty"`
	// Action replaces forwarding to TargetGroup (actions.${name}).
	Action *Action `json:"action,omitempty"`
	// Origin is where the rule came from, for messages.
	Origin Origin `json:"origin"`
}

// TargetGroup is a set of targets (one Kubernetes Service port) and how to
// talk to them.
type TargetGroup struct {
	// Name is "namespace/service:port".
	Name            string          `json:"name"`
	Service         ServiceRef      `json:"service"`
	Protocol        Protocol        `json:"protocol"`
	ProtocolVersion ProtocolVersion `json:"protocolVersion"`
	TargetType      TargetType      `json:"targetType"`
	// MaxMessageBytes bounds one gRPC message (and a REST body) in either
	// direction; beyond it the client gets RESOURCE_EXHAUSTED.
	MaxMessageBytes int64 `json:"maxMessageBytes"`
	// Endpoints known when the snapshot was built (file mode: from
	// EndpointSlice/Endpoints documents or --endpoints).
	Endpoints []Endpoint `json:"endpoints"`
	// DNS, when set, replaces Endpoints with a periodically re-resolved name.
	DNS *DNSSource `json:"dns,omitempty"`
	// HealthCheck is how targets are checked.
	HealthCheck HealthCheck `json:"healthCheck"`
	// DeregistrationDelay is how long a removed target keeps its in-flight
	// requests (target-group-attributes deregistration_delay.timeout_seconds).
	DeregistrationDelay time.Duration `json:"deregistrationDelay"`
	// SlowStart ramps a new target's share linearly over this long (0: off).
	SlowStart time.Duration `json:"slowStart,omitempty"`
	// RetryPolicy is "" (retry only what never reached a target) or
	// RetryIdempotentReads.
	RetryPolicy string `json:"retryPolicy,omitempty"`
	// Algorithm picks a target per request: AlgorithmRoundRobin (the
	// default, as on the ALB), AlgorithmLeastOutstanding,
	// AlgorithmWeightedRandom or l7lb's AlgorithmPeakEWMA.
	Algorithm Algorithm `json:"algorithm"`
	// AnomalyMitigation dims targets that answer worse than their peers
	// (only with AlgorithmWeightedRandom, as on the ALB).
	AnomalyMitigation bool `json:"anomalyMitigation,omitempty"`
}

// Algorithm is a target group's balancing algorithm.
type Algorithm string

// Algorithms: the ALB's load_balancing.algorithm.type values, and l7lb's
// own (l7lb.io/load-balancing-algorithm).
const (
	AlgorithmRoundRobin       Algorithm = "round_robin"
	AlgorithmLeastOutstanding Algorithm = "least_outstanding_requests"
	AlgorithmWeightedRandom   Algorithm = "weighted_random"
	AlgorithmPeakEWMA         Algorithm = "peak_ewma"
)

// RetryIdempotentReads also retries Milvus's idempotent reads on
// UNAVAILABLE, within a retry budget (l7lb.io/retry-policy).
const RetryIdempotentReads = "idempotent-reads"

// HealthCheck configures active health checks of a target group.
type HealthCheck struct {
	// Protocol is HTTP or HTTPS (how to reach the target for checks).
	Protocol Protocol `json:"protocol"`
	// Port is the port checked; 0 means the traffic port.
	Port int `json:"port,omitempty"`
	// Path is the gRPC method (/package.Service/Method) or HTTP path.
	// GRPCHealth marks l7lb's default for GRPC groups:
	// grpc.health.v1.Health/Check with the reply's status read.
	Path       string `json:"path"`
	GRPCHealth bool   `json:"grpcHealth,omitempty"`
	// GRPC is true when checks are gRPC calls (GRPC target groups).
	GRPC               bool          `json:"grpc"`
	Interval           time.Duration `json:"interval"`
	Timeout            time.Duration `json:"timeout"`
	HealthyThreshold   int           `json:"healthyThreshold"`
	UnhealthyThreshold int           `json:"unhealthyThreshold"`
	// SuccessCodes are gRPC status codes or HTTP status codes.
	SuccessCodes []CodeRange `json:"successCodes"`
}

// CodeRange is an inclusive range of status codes.
type CodeRange struct {
	Lo int `json:"lo"`
	Hi int `json:"hi"`
}

// Matches reports whether code is in any range.
func (h HealthCheck) Matches(code int) bool {
	for _, r := range h.SuccessCodes {
		if r.Lo <= code && code <= r.Hi {
			return true
		}
	}
	return false
}

// ServiceRef names a Kubernetes Service port.
type ServiceRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Port is the service port number; PortName is used when the Ingress
	// names the port instead. Exactly one is set.
	Port     int    `json:"port,omitempty"`
	PortName string `json:"portName,omitempty"`
}

// Endpoint is one target address.
type Endpoint struct {
	Address string `json:"address"` // IP or host name
	Port    int    `json:"port"`
	// Ready is false for endpoints that must not get new traffic.
	Ready bool `json:"ready"`
	// Terminating endpoints drain: no new RPCs, in-flight ones finish.
	Terminating bool `json:"terminating,omitempty"`
}

// DNSSource resolves Name every Interval and uses every address on Port.
type DNSSource struct {
	Name     string        `json:"name"`
	Port     int           `json:"port"`
	Interval time.Duration `json:"interval"`
}

// Origin points at the place in the input a value came from.
type Origin struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	// Object is "Kind namespace/name".
	Object string `json:"object,omitempty"`
}
