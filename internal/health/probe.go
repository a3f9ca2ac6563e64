// Package health checks targets actively: a gRPC call (by default
// grpc.health.v1.Health/Check with the reply's status read) or an HTTP
// request, with the ALB's success-code matching. It only probes; the
// target group keeps the counts and the states.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/config"
)

// Result is one probe's outcome. Reason uses the ALB's reason codes
// (Target.Timeout, Target.FailedHealthChecks, Target.ResponseCodeMismatch)
// and Detail says what was seen.
type Result struct {
	OK     bool
	Reason string
	Detail string
}

// Prober checks one target.
type Prober interface {
	Probe(ctx context.Context) Result
	Close()
}

// NewProber builds the prober a target group's health check describes for
// the target at host:port (the traffic port).
func NewProber(hc config.HealthCheck, host string, trafficPort int) Prober {
	port := trafficPort
	if hc.Port != 0 {
		port = hc.Port
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	secure := hc.Protocol == config.ProtocolHTTPS
	tlsConf := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the ALB does not verify targets either
	if hc.GRPC {
		creds := insecure.NewCredentials()
		if secure {
			creds = credentials.NewTLS(tlsConf)
		}
		// No keepalive pings: Milvus closes connections that ping more
		// often than every 5 s, and checks are calls, not pings.
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return failing{fmt.Sprintf("health check client for %s: %v", addr, err)}
		}
		return &grpcProber{cc: cc, hc: hc}
	}
	scheme := "http"
	if secure {
		scheme = "https"
	}
	return &httpProber{
		url: scheme + "://" + addr + hc.Path, hc: hc,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf, DisableKeepAlives: false, MaxIdleConnsPerHost: 1}},
	}
}

type failing struct{ why string }

func (f failing) Probe(context.Context) Result {
	return Result{Reason: "Elb.InternalError", Detail: f.why}
}
func (failing) Close() {}

type grpcProber struct {
	cc *grpc.ClientConn
	hc config.HealthCheck
}

// rawCodec lets a check call any method: it sends an empty message and
// ignores the reply's bytes (only the status code matters then).
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return nil, nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	if b, ok := v.(*[]byte); ok {
		*b = append((*b)[:0], data...)
	}
	return nil
}
func (rawCodec) Name() string { return "l7lb-raw" }

func (p *grpcProber) Probe(ctx context.Context) Result {
	var err error
	detail := ""
	if p.hc.GRPCHealth {
		var resp *healthpb.HealthCheckResponse
		resp, err = healthpb.NewHealthClient(p.cc).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			// Milvus answers NOT_SERVING with status OK while it starts or
			// stops: the payload decides.
			return Result{Reason: "Target.FailedHealthChecks", Detail: "grpc.health.v1 status " + resp.GetStatus().String()}
		}
	} else {
		var out []byte
		err = p.cc.Invoke(ctx, p.hc.Path, &struct{}{}, &out, grpc.ForceCodec(rawCodec{}))
	}
	code := status.Code(err)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || code == codes.DeadlineExceeded {
		return Result{Reason: "Target.Timeout", Detail: fmt.Sprintf("no answer within %v", p.hc.Timeout)}
	}
	if err != nil {
		detail = status.Convert(err).Message()
	}
	if !p.hc.Matches(int(code)) {
		reason := "Target.ResponseCodeMismatch"
		if code == codes.Unavailable {
			reason = "Target.FailedHealthChecks"
		}
		return Result{Reason: reason, Detail: fmt.Sprintf("gRPC status %v: %s", code, detail)}
	}
	return Result{OK: true}
}

func (p *grpcProber) Close() { p.cc.Close() }

type httpProber struct {
	url    string
	hc     config.HealthCheck
	client *http.Client
}

func (p *httpProber) Probe(ctx context.Context) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return Result{Reason: "Elb.InternalError", Detail: err.Error()}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Result{Reason: "Target.Timeout", Detail: fmt.Sprintf("no answer within %v", p.hc.Timeout)}
		}
		return Result{Reason: "Target.FailedHealthChecks", Detail: err.Error()}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if !p.hc.Matches(resp.StatusCode) {
		return Result{Reason: "Target.ResponseCodeMismatch", Detail: "HTTP status " + strconv.Itoa(resp.StatusCode)}
	}
	return Result{OK: true}
}

func (p *httpProber) Close() { p.client.CloseIdleConnections() }

// Loop probes every interval until ctx ends, calling report with each
// result. The first probe runs at once, so that new targets can become
// healthy quickly.
func Loop(ctx context.Context, p Prober, hc config.HealthCheck, report func(Result)) {
	defer p.Close()
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, hc.Timeout)
		r := p.Probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		report(r)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
