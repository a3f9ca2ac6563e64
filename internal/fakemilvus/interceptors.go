package fakemilvus

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const healthPrefix = "/grpc.health.v1.Health/"

// replicaMD adds x-milvus-replica to the response headers at most once per
// RPC. It joins whatever header metadata the handler sets, and is added at the
// end only when the RPC succeeded: setting headers on a failing RPC would turn
// a trailers-only reply into headers+trailers, which a balancer must also be
// tested against. The trailer always carries it.
type replicaMD struct {
	md    metadata.MD
	added atomic.Bool
}

func (m *replicaMD) join(md metadata.MD) metadata.MD {
	if m.added.CompareAndSwap(false, true) {
		return metadata.Join(md, m.md)
	}
	return md
}

// transportStream routes grpc.SetHeader/SendHeader(ctx, ...) through replicaMD.
type transportStream struct {
	grpc.ServerTransportStream
	m *replicaMD
}

func (s *transportStream) SetHeader(md metadata.MD) error {
	return s.ServerTransportStream.SetHeader(s.m.join(md))
}

func (s *transportStream) SendHeader(md metadata.MD) error {
	return s.ServerTransportStream.SendHeader(s.m.join(md))
}

// begin counts the RPC, records its incoming metadata and returns the
// per-RPC header state.
func (r *Replica) begin(ctx context.Context, method string) *replicaMD {
	if strings.HasPrefix(method, healthPrefix) {
		r.healthChecks.Add(1)
	} else {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			md = md.Copy()
			r.lastMD.Store(&md)
		}
		r.served.Add(1)
	}
	return &replicaMD{md: metadata.Pairs(ReplicaHeader, r.name)}
}

// delay sleeps the configured latency unless ctx ends first.
func (r *Replica) delay(ctx context.Context) error {
	d := r.Latency()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (r *Replica) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	m := r.begin(ctx, info.FullMethod)
	if sts := grpc.ServerTransportStreamFromContext(ctx); sts != nil {
		ctx = grpc.NewContextWithServerTransportStream(ctx, &transportStream{ServerTransportStream: sts, m: m})
	}
	resp, err := handler(ctx, req)
	if derr := r.delay(ctx); derr != nil && err == nil {
		resp, err = nil, derr
	}
	if err == nil {
		if md := m.join(nil); md != nil {
			_ = grpc.SetHeader(ctx, md)
		}
	}
	_ = grpc.SetTrailer(ctx, m.md)
	return resp, err
}

// serverStream adds the replica header before the first message and delays
// every message by the configured latency.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
	r   *Replica
	m   *replicaMD
}

func (s *serverStream) Context() context.Context { return s.ctx }

func (s *serverStream) SetHeader(md metadata.MD) error {
	return s.ServerStream.SetHeader(s.m.join(md))
}

func (s *serverStream) SendHeader(md metadata.MD) error {
	return s.ServerStream.SendHeader(s.m.join(md))
}

func (s *serverStream) SendMsg(msg any) error {
	if err := s.r.delay(s.ctx); err != nil {
		return err
	}
	if md := s.m.join(nil); md != nil {
		if err := s.ServerStream.SetHeader(md); err != nil {
			return err
		}
	}
	return s.ServerStream.SendMsg(msg)
}

func (r *Replica) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	m := r.begin(ctx, info.FullMethod)
	if sts := grpc.ServerTransportStreamFromContext(ctx); sts != nil {
		ctx = grpc.NewContextWithServerTransportStream(ctx, &transportStream{ServerTransportStream: sts, m: m})
	}
	ws := &serverStream{ServerStream: ss, ctx: ctx, r: r, m: m}
	err := handler(srv, ws)
	if err == nil {
		if md := m.join(nil); md != nil {
			_ = ss.SetHeader(md)
		}
	}
	ss.SetTrailer(m.md)
	return err
}

// unknownHandler answers methods no service registered, as grpc-go would, but
// through the interceptors so the reply still names the replica.
func unknownHandler(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	return status.Errorf(codes.Unimplemented, "unknown method %s", method)
}
