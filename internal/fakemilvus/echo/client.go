package echo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Message is the request and reply type of every Echo method.
type Message = wrapperspb.BytesValue

// Client is a typed client for l7lb.test.Echo over any connection, including
// one that goes through the balancer.
type Client struct {
	cc grpc.ClientConnInterface
}

// NewClient wraps cc.
func NewClient(cc grpc.ClientConnInterface) *Client { return &Client{cc: cc} }

// Unary sends payload and returns the echoed bytes.
func (c *Client) Unary(ctx context.Context, payload []byte, opts ...grpc.CallOption) ([]byte, error) {
	out := new(Message)
	if err := c.cc.Invoke(ctx, UnaryMethod, wrapperspb.Bytes(payload), out, opts...); err != nil {
		return nil, err
	}
	return out.GetValue(), nil
}

// OpenClientStream starts a client-streaming call.
func (c *Client) OpenClientStream(ctx context.Context, opts ...grpc.CallOption) (grpc.ClientStreamingClient[Message, Message], error) {
	s, err := c.cc.NewStream(ctx, clientStreamDesc, ClientStreamMethod, opts...)
	if err != nil {
		return nil, err
	}
	return &grpc.GenericClientStream[Message, Message]{ClientStream: s}, nil
}

// ClientStream sends each payload as one message and returns the server's
// concatenation of them.
func (c *Client) ClientStream(ctx context.Context, payloads [][]byte, opts ...grpc.CallOption) ([]byte, error) {
	s, err := c.OpenClientStream(ctx, opts...)
	if err != nil {
		return nil, err
	}
	for _, p := range payloads {
		if err := s.Send(wrapperspb.Bytes(p)); err != nil {
			// The real status arrives with CloseAndRecv; Send only says io.EOF.
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
	}
	out, err := s.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return out.GetValue(), nil
}

// OpenServerStream starts a server-streaming call with request payload. Shape
// the replies with WithReplies on ctx.
func (c *Client) OpenServerStream(ctx context.Context, payload []byte, opts ...grpc.CallOption) (grpc.ServerStreamingClient[Message], error) {
	s, err := c.cc.NewStream(ctx, serverStreamDesc, ServerStreamMethod, opts...)
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(wrapperspb.Bytes(payload)); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("echo server stream: send request: %w", err)
	}
	if err := s.CloseSend(); err != nil {
		return nil, fmt.Errorf("echo server stream: close send: %w", err)
	}
	return &grpc.GenericClientStream[Message, Message]{ClientStream: s}, nil
}

// ServerStream asks for count replies of size bytes each and collects them.
func (c *Client) ServerStream(ctx context.Context, count, size int, opts ...grpc.CallOption) ([][]byte, error) {
	s, err := c.OpenServerStream(WithReplies(ctx, count, size), nil, opts...)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m.GetValue())
	}
}

// OpenBidiStream starts a bidirectional call; the server echoes every message
// as soon as it arrives.
func (c *Client) OpenBidiStream(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[Message, Message], error) {
	s, err := c.cc.NewStream(ctx, bidiStreamDesc, BidiStreamMethod, opts...)
	if err != nil {
		return nil, err
	}
	return &grpc.GenericClientStream[Message, Message]{ClientStream: s}, nil
}

// PingPong sends each payload and waits for its echo before sending the next,
// which only works if every hop forwards messages as they arrive.
func (c *Client) PingPong(ctx context.Context, payloads [][]byte, opts ...grpc.CallOption) ([][]byte, error) {
	s, err := c.OpenBidiStream(ctx, opts...)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(payloads))
	for _, p := range payloads {
		// Errors are returned unwrapped so status.FromError keeps the
		// server's code and message intact.
		if err := s.Send(wrapperspb.Bytes(p)); err != nil {
			if errors.Is(err, io.EOF) {
				_, err = s.Recv() // surfaces the real status
			}
			return out, err
		}
		m, err := s.Recv()
		if err != nil {
			return out, err
		}
		out = append(out, m.GetValue())
	}
	if err := s.CloseSend(); err != nil {
		return out, fmt.Errorf("echo ping-pong: close send: %w", err)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		return out, fmt.Errorf("echo ping-pong: want end of stream, got %v", err)
	}
	return out, nil
}

// WithReplies shapes a ServerStream: count replies of size bytes.
func WithReplies(ctx context.Context, count, size int) context.Context {
	return metadata.AppendToOutgoingContext(ctx, MDReplyCount, strconv.Itoa(count), MDReplySize, strconv.Itoa(size))
}

// WithReplyInterval paces ServerStream replies.
func WithReplyInterval(ctx context.Context, d time.Duration) context.Context {
	return metadata.AppendToOutgoingContext(ctx, MDReplyIntervalMS, strconv.FormatInt(d.Milliseconds(), 10))
}

// WithFailCode makes the call fail trailers-only with code (a grpc codes.Code
// value) and, if message is not empty, that grpc-message.
func WithFailCode(ctx context.Context, code uint32, message string) context.Context {
	kv := []string{MDFailCode, strconv.FormatUint(uint64(code), 10)}
	if message != "" {
		kv = append(kv, MDFailMessage, message)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// WithHold keeps the call in flight on the server for d before the first reply.
func WithHold(ctx context.Context, d time.Duration) context.Context {
	return metadata.AppendToOutgoingContext(ctx, MDHoldMS, strconv.FormatInt(d.Milliseconds(), 10))
}

// WithReportDeadline asks the server for TrailerDeadline.
func WithReportDeadline(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, MDReportDeadline, "1")
}
