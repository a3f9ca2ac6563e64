package ingress

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/l7lb/l7lb/internal/config"
)

// Target-group annotations beyond the protocol ones: active health checks
// (AWS Load Balancer Controller formats and defaults), target-group
// attributes, and l7lb's retry policy.
const (
	annHCProtocol        = albPrefix + "healthcheck-protocol"
	annHCPort            = albPrefix + "healthcheck-port"
	annHCPath            = albPrefix + "healthcheck-path"
	annHCInterval        = albPrefix + "healthcheck-interval-seconds"
	annHCTimeout         = albPrefix + "healthcheck-timeout-seconds"
	annHealthyThreshold  = albPrefix + "healthy-threshold-count"
	annUnhealthyThreshol = albPrefix + "unhealthy-threshold-count"
	annSuccessCodes      = albPrefix + "success-codes"
	annTGAttributes      = albPrefix + "target-group-attributes"
	annLBAttributes      = albPrefix + "load-balancer-attributes"
	annRetryPolicy       = l7lbPrefix + "retry-policy"
	annAlgorithm         = l7lbPrefix + "load-balancing-algorithm"
)

// tgRawAnnotations are read per layer (Ingress, then Service) and parsed
// once merged, so a problem is reported where the winning value is.
var tgRawAnnotations = []string{annHCProtocol, annHCPort, annHCPath, annHCInterval, annHCTimeout,
	annHealthyThreshold, annUnhealthyThreshol, annSuccessCodes, annTGAttributes, annRetryPolicy, annAlgorithm}

// grpcHealthCheck is l7lb's default check for GRPC target groups.
const grpcHealthCheck = "/grpc.health.v1.Health/Check"

// parseTargetGroupExtras fills tg's health check, attributes and retry
// policy from the merged raw annotation values (raw) found at from.
func (t *translator) parseTargetGroupExtras(tg *config.TargetGroup, raw map[string]string, from map[string]config.Origin) {
	bad := func(key, format string, args ...any) {
		t.problem(from[key], key, format, args...)
	}
	grpc := tg.ProtocolVersion == config.VersionGRPC
	hc := config.HealthCheck{
		Protocol: tg.Protocol, GRPC: grpc,
		Interval: 15 * time.Second, Timeout: 5 * time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 2,
	}
	if v, ok := raw[annHCProtocol]; ok {
		switch p := config.Protocol(v); p {
		case config.ProtocolHTTP, config.ProtocolHTTPS:
			hc.Protocol = p
		default:
			bad(annHCProtocol, "invalid value %q; expected HTTP or HTTPS", v)
		}
	}
	if v, ok := raw[annHCPort]; ok && v != "traffic-port" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			bad(annHCPort, "invalid value %q; expected traffic-port or a port number 1-65535", v)
		} else {
			hc.Port = n
		}
	}
	path, explicitPath := raw[annHCPath]
	switch {
	case !explicitPath && grpc:
		// Better than the ALB's default (/AWS.ALB/healthcheck, success on
		// UNIMPLEMENTED): ask Milvus itself and read the answer, so that
		// NOT_SERVING with gRPC status OK counts as unhealthy.
		hc.Path, hc.GRPCHealth = grpcHealthCheck, true
	case !explicitPath:
		hc.Path = "/"
	case grpc && !validGRPCPath(path):
		bad(annHCPath, "invalid value %q; a gRPC health check path is a full method path like /grpc.health.v1.Health/Check", path)
	case !strings.HasPrefix(path, "/"):
		bad(annHCPath, "invalid value %q; expected a path starting with /", path)
	default:
		hc.Path = path
		hc.GRPCHealth = grpc && path == grpcHealthCheck
	}
	seconds := func(key string, lo, hi int, into *time.Duration) {
		if v, ok := raw[key]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < lo || n > hi {
				bad(key, "invalid value %q; expected whole seconds %d-%d", v, lo, hi)
				return
			}
			*into = time.Duration(n) * time.Second
		}
	}
	// The ALB takes intervals of 5-300 s; l7lb also takes 1-4 s, which
	// tests and small clusters want.
	seconds(annHCInterval, 1, 300, &hc.Interval)
	seconds(annHCTimeout, 1, 120, &hc.Timeout)
	if hc.Timeout >= hc.Interval {
		key := annHCTimeout
		if _, ok := raw[key]; !ok {
			key = annHCInterval
		}
		bad(key, "health check timeout %v must be shorter than the interval %v", hc.Timeout, hc.Interval)
	}
	count := func(key string, into *int) {
		if v, ok := raw[key]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 2 || n > 10 {
				bad(key, "invalid value %q; expected a count 2-10", v)
				return
			}
			*into = n
		}
	}
	count(annHealthyThreshold, &hc.HealthyThreshold)
	count(annUnhealthyThreshol, &hc.UnhealthyThreshold)
	codes, explicitCodes := raw[annSuccessCodes]
	switch {
	case !explicitCodes && grpc && hc.GRPCHealth:
		hc.SuccessCodes = []config.CodeRange{{Lo: 0, Hi: 0}}
	case !explicitCodes && grpc:
		hc.SuccessCodes = []config.CodeRange{{Lo: 12, Hi: 12}} // the ALB's default
	case !explicitCodes:
		hc.SuccessCodes = []config.CodeRange{{Lo: 200, Hi: 200}}
	default:
		lo, hi, example := 200, 499, `"200", "200,202" or "200-299"`
		if grpc {
			lo, hi, example = 0, 99, `"0", "0,12" or "0-99"`
		}
		rs, err := parseCodeRanges(codes, lo, hi)
		if err != nil {
			bad(annSuccessCodes, "invalid value %q: %v; expected codes %d-%d like %s", codes, err, lo, hi, example)
		}
		hc.SuccessCodes = rs
	}
	tg.HealthCheck = hc

	tg.DeregistrationDelay = 300 * time.Second
	if v, ok := raw[annTGAttributes]; ok {
		kv, err := parseStringMap(v)
		if err != nil {
			bad(annTGAttributes, "invalid value %q: %v; expected key=value,key=value", v, err)
		}
		for k, val := range kv {
			switch k {
			case "deregistration_delay.timeout_seconds":
				n, err := strconv.Atoi(val)
				if err != nil || n < 0 || n > 3600 {
					bad(annTGAttributes, "%s=%q; expected whole seconds 0-3600", k, val)
					continue
				}
				tg.DeregistrationDelay = time.Duration(n) * time.Second
			case "slow_start.duration_seconds":
				n, err := strconv.Atoi(val)
				if err != nil || n != 0 && (n < 30 || n > 900) {
					bad(annTGAttributes, "%s=%q; expected 0 (off) or whole seconds 30-900", k, val)
					continue
				}
				tg.SlowStart = time.Duration(n) * time.Second
			case "load_balancing.algorithm.type":
				switch a := config.Algorithm(val); a {
				case config.AlgorithmRoundRobin, config.AlgorithmLeastOutstanding, config.AlgorithmWeightedRandom:
					tg.Algorithm = a
				default:
					bad(annTGAttributes, "%s=%q; expected round_robin, least_outstanding_requests or weighted_random", k, val)
				}
			case "load_balancing.algorithm.anomaly_mitigation":
				switch val {
				case "on":
					tg.AnomalyMitigation = true
				case "off":
				default:
					bad(annTGAttributes, "%s=%q; expected on or off", k, val)
				}
			default:
				t.warn(from[annTGAttributes], annTGAttributes, "attribute %s not yet honoured by l7lb; ignored", k)
			}
		}
	}
	if tg.Algorithm == "" {
		tg.Algorithm = config.AlgorithmRoundRobin
	}
	// The ALB refuses these combinations; so does l7lb, rather than
	// guess which setting the author meant.
	if tg.AnomalyMitigation && tg.Algorithm != config.AlgorithmWeightedRandom {
		bad(annTGAttributes, "load_balancing.algorithm.anomaly_mitigation=on needs load_balancing.algorithm.type=weighted_random (it is %s)", tg.Algorithm)
	}
	if tg.SlowStart > 0 && (tg.Algorithm == config.AlgorithmLeastOutstanding || tg.Algorithm == config.AlgorithmWeightedRandom) {
		bad(annTGAttributes, "slow_start.duration_seconds cannot be combined with load_balancing.algorithm.type=%s (the ALB refuses it too)", tg.Algorithm)
	}
	if v, ok := raw[annAlgorithm]; ok {
		// l7lb's own choice overrides the ALB attribute: an Ingress can
		// name both, so that the ALB and l7lb each get the best they have.
		switch a := config.Algorithm(v); a {
		case config.AlgorithmPeakEWMA, config.AlgorithmRoundRobin, config.AlgorithmLeastOutstanding, config.AlgorithmWeightedRandom:
			if tg.SlowStart > 0 && a != config.AlgorithmRoundRobin {
				bad(annAlgorithm, "%s cannot be combined with slow_start.duration_seconds; slow start needs round_robin", a)
			}
			if tg.AnomalyMitigation && a != config.AlgorithmWeightedRandom {
				bad(annAlgorithm, "%s cannot be combined with load_balancing.algorithm.anomaly_mitigation=on, which needs weighted_random", a)
			}
			tg.Algorithm = a
		default:
			bad(annAlgorithm, "invalid value %q; expected peak_ewma, least_outstanding_requests, weighted_random or round_robin", v)
		}
	}
	if v, ok := raw[annRetryPolicy]; ok {
		switch v {
		case config.RetryIdempotentReads:
			tg.RetryPolicy = v
		case "none":
		default:
			bad(annRetryPolicy, "invalid value %q; expected %s or none", v, config.RetryIdempotentReads)
		}
	}
}

func validGRPCPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	svc, method, ok := strings.Cut(p[1:], "/")
	return ok && svc != "" && method != "" && !strings.Contains(method, "/")
}

// parseCodeRanges reads "0", "0,12", "0-99", "200-299,404".
func parseCodeRanges(s string, lo, hi int) ([]config.CodeRange, error) {
	var out []config.CodeRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		a, b, isRange := strings.Cut(part, "-")
		x, err := strconv.Atoi(a)
		if err != nil {
			return nil, fmt.Errorf("%q is not a code", part)
		}
		y := x
		if isRange {
			if y, err = strconv.Atoi(b); err != nil || y < x {
				return nil, fmt.Errorf("%q is not a range", part)
			}
		}
		if x < lo || y > hi {
			return nil, fmt.Errorf("%q is outside %d-%d", part, lo, hi)
		}
		out = append(out, config.CodeRange{Lo: x, Hi: y})
	}
	return out, nil
}

// parseStringMap reads the LBC stringMap format "k1=v1,k2=v2".
func parseStringMap(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%q is not key=value", part)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

// parseIdleTimeout reads load-balancer-attributes for the Ingress's
// listeners: idle_timeout.timeout_seconds (1-4000, default 60).
func (t *translator) parseIdleTimeout(a annotated) time.Duration {
	d := 60 * time.Second
	v, ok := a.get(annLBAttributes)
	if !ok {
		return d
	}
	kv, err := parseStringMap(v)
	if err != nil {
		t.problem(a.origin(annLBAttributes), annLBAttributes, "invalid value %q: %v; expected key=value,key=value", v, err)
		return d
	}
	for k, val := range kv {
		switch k {
		case "idle_timeout.timeout_seconds":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 4000 {
				t.problem(a.origin(annLBAttributes), annLBAttributes, "%s=%q; expected whole seconds 1-4000", k, val)
				continue
			}
			d = time.Duration(n) * time.Second
		case "routing.http2.enabled":
			if val != "true" {
				t.warn(a.origin(annLBAttributes), annLBAttributes, "%s=%s: l7lb always speaks HTTP/2 to clients that ask for it", k, val)
			}
		default:
			t.warn(a.origin(annLBAttributes), annLBAttributes, "attribute %s not yet honoured by l7lb; ignored", k)
		}
	}
	return d
}
