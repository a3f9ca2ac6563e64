// Package echo is the project's own gRPC test service, l7lb.test.Echo.
//
// It exists so balancer tests can exercise every gRPC call shape (unary,
// client-, server- and bidi-streaming) and every header/trailer path without
// protoc: the service descriptor is written by hand and all messages are
// wrapperspb.BytesValue, which already has a registered proto codec.
package echo

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ServiceName is the fully qualified gRPC service name.
const ServiceName = "l7lb.test.Echo"

// Full method paths, as they appear on the wire (":path").
const (
	UnaryMethod        = "/" + ServiceName + "/Unary"
	ClientStreamMethod = "/" + ServiceName + "/ClientStream"
	ServerStreamMethod = "/" + ServiceName + "/ServerStream"
	BidiStreamMethod   = "/" + ServiceName + "/BidiStream"
)

// Request metadata keys that drive server behaviour.
const (
	// MDFailCode (decimal gRPC code) makes the call fail with that status
	// before anything is sent, so the reply is trailers-only and carries
	// grpc-status-details-bin.
	MDFailCode = "x-fail-code"
	// MDFailMessage overrides the grpc-message of a MDFailCode failure.
	MDFailMessage = "x-fail-message"
	// MDReportDeadline (any value) asks for TrailerDeadline in the reply.
	MDReportDeadline = "x-report-deadline"
	// MDHoldMS delays the first reply by that many milliseconds while
	// watching the context, which is how tests keep an RPC in flight and
	// observe cancellation.
	MDHoldMS = "x-hold-ms"
	// MDReplyCount and MDReplySize shape ServerStream: N replies of M bytes.
	MDReplyCount = "x-reply-count"
	MDReplySize  = "x-reply-size"
	// MDReplyIntervalMS paces ServerStream replies.
	MDReplyIntervalMS = "x-reply-interval-ms"
)

// Reply metadata.
const (
	// EchoPrefix prefixes every request metadata key echoed back in the
	// response headers and trailers.
	EchoPrefix = "echo-"
	// TrailerDeadline carries the remaining deadline the server saw, in
	// milliseconds, or "none".
	TrailerDeadline = "x-deadline-remaining-ms"
	// TrailerReceived carries the number of messages the server received
	// on a client or bidi stream.
	TrailerReceived = "x-received-messages"
	// FailReason is the ErrorInfo.Reason attached to MDFailCode failures.
	FailReason = "ECHO_FAIL"
	// FailDomain is the ErrorInfo.Domain attached to MDFailCode failures.
	FailDomain = "l7lb.test"
)

// serviceDesc is what protoc-gen-go-grpc would have generated for
//
//	service Echo {
//	  rpc Unary(BytesValue) returns (BytesValue);
//	  rpc ClientStream(stream BytesValue) returns (BytesValue);
//	  rpc ServerStream(BytesValue) returns (stream BytesValue);
//	  rpc BidiStream(stream BytesValue) returns (stream BytesValue);
//	}
var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler:    unaryHandler,
	}},
	Streams: []grpc.StreamDesc{
		{StreamName: "ClientStream", Handler: clientStreamHandler, ClientStreams: true},
		{StreamName: "ServerStream", Handler: serverStreamHandler, ServerStreams: true},
		{StreamName: "BidiStream", Handler: bidiStreamHandler, ClientStreams: true, ServerStreams: true},
	},
	Metadata: "l7lb/test/echo.proto",
}

// Stream descriptors used by the client; they must match serviceDesc.
var (
	clientStreamDesc = &grpc.StreamDesc{StreamName: "ClientStream", ClientStreams: true}
	serverStreamDesc = &grpc.StreamDesc{StreamName: "ServerStream", ServerStreams: true}
	bidiStreamDesc   = &grpc.StreamDesc{StreamName: "BidiStream", ClientStreams: true, ServerStreams: true}
)

// Register adds the Echo service backed by s to a gRPC server.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	r.RegisterService(&serviceDesc, s)
}

func unaryHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(wrapperspb.BytesValue)
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return s.unary(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: UnaryMethod}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.unary(ctx, req.(*wrapperspb.BytesValue))
	})
}

func clientStreamHandler(srv any, stream grpc.ServerStream) error {
	return srv.(*Server).clientStream(&grpc.GenericServerStream[wrapperspb.BytesValue, wrapperspb.BytesValue]{ServerStream: stream})
}

func serverStreamHandler(srv any, stream grpc.ServerStream) error {
	in := new(wrapperspb.BytesValue)
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	return srv.(*Server).serverStream(in, &grpc.GenericServerStream[wrapperspb.BytesValue, wrapperspb.BytesValue]{ServerStream: stream})
}

func bidiStreamHandler(srv any, stream grpc.ServerStream) error {
	return srv.(*Server).bidiStream(&grpc.GenericServerStream[wrapperspb.BytesValue, wrapperspb.BytesValue]{ServerStream: stream})
}
