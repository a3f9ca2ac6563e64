package echo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// maxReplyBytes bounds one ServerStream reply so a typo in x-reply-size
// cannot exhaust the test machine's memory.
const maxReplyBytes = 256 << 20

// maxReplyCount bounds the number of ServerStream replies for the same reason.
const maxReplyCount = 1_000_000

// Server implements l7lb.test.Echo and records what it observed, so tests can
// assert on the backend's view of an RPC (did the cancel propagate through the
// balancer, which deadline arrived) rather than only the client's view.
type Server struct {
	calls            atomic.Int64
	cancelled        atomic.Int64
	deadlineExceeded atomic.Int64

	mu               sync.Mutex
	cancelledMethods []string
	lastDeadline     time.Duration
	lastHasDeadline  bool
}

// NewServer returns an Echo server with empty counters.
func NewServer() *Server { return &Server{} }

// Calls is the number of Echo RPCs that reached a handler.
func (s *Server) Calls() int64 { return s.calls.Load() }

// Cancelled is the number of RPCs whose context the server saw cancelled
// (client cancel, RST_STREAM, or the connection going away) before the
// handler finished.
func (s *Server) Cancelled() int64 { return s.cancelled.Load() }

// DeadlineExceeded is the number of RPCs whose deadline expired (or that were
// cancelled within deadlineSlack of it) while the
// handler was still running.
func (s *Server) DeadlineExceeded() int64 { return s.deadlineExceeded.Load() }

// CancelledMethods lists the full method of every cancelled RPC, in order.
func (s *Server) CancelledMethods() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cancelledMethods...)
}

// LastDeadline is the remaining deadline seen at the start of the most recent
// RPC; ok is false when that RPC had no deadline.
func (s *Server) LastDeadline() (remaining time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastDeadline, s.lastHasDeadline
}

// call is the per-RPC state shared by all four handlers.
type call struct {
	s        *Server
	ctx      context.Context
	method   string
	md       metadata.MD
	echo     metadata.MD // request metadata, prefixed, for headers and trailers
	trailer  metadata.MD // echo plus the optional deadline report
	recorded bool
}

// begin records the call and decides whether it fails up front. A non-nil
// error is the trailers-only failure requested with MDFailCode; in that case
// nothing else may be sent.
func (s *Server) begin(ctx context.Context, method string) (*call, error) {
	s.calls.Add(1)
	c := &call{s: s, ctx: ctx, method: method}
	c.md, _ = metadata.FromIncomingContext(ctx)

	deadline, hasDeadline := ctx.Deadline()
	var remaining time.Duration
	if hasDeadline {
		remaining = time.Until(deadline)
	}
	s.mu.Lock()
	s.lastDeadline, s.lastHasDeadline = remaining, hasDeadline
	s.mu.Unlock()

	c.echo = metadata.MD{}
	for k, vs := range c.md {
		// Pseudo-headers and grpc-* are reserved; echoing them would make
		// the response malformed or confuse the client's transport.
		if strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") {
			continue
		}
		c.echo[EchoPrefix+k] = append([]string(nil), vs...)
	}
	c.trailer = c.echo.Copy()
	if len(c.md.Get(MDReportDeadline)) > 0 {
		v := "none"
		if hasDeadline {
			v = strconv.FormatInt(remaining.Milliseconds(), 10)
		}
		c.trailer.Set(TrailerDeadline, v)
	}

	if err := c.failure(); err != nil {
		// Trailers only: headers set now would force a separate HEADERS frame.
		_ = grpc.SetTrailer(ctx, c.trailer)
		return nil, err
	}
	return c, nil
}

// failure builds the status requested with MDFailCode, with an ErrorInfo
// detail so the reply carries grpc-status-details-bin.
func (c *call) failure() error {
	v := c.first(MDFailCode)
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return status.Errorf(codes.InvalidArgument, "echo: bad %s %q", MDFailCode, v)
	}
	if n == 0 {
		return nil
	}
	msg := c.first(MDFailMessage)
	if msg == "" {
		msg = fmt.Sprintf("echo: failing %s with code %d as requested", c.method, n)
	}
	st, err := status.New(codes.Code(n), msg).WithDetails(&errdetails.ErrorInfo{
		Reason:   FailReason,
		Domain:   FailDomain,
		Metadata: map[string]string{"method": c.method},
	})
	if err != nil {
		return status.Errorf(codes.Internal, "echo: attach status detail: %v", err)
	}
	return st.Err()
}

func (c *call) first(key string) string {
	if vs := c.md.Get(key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (c *call) intMD(key string, def, max int) (int, error) {
	v := c.first(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > max {
		return 0, status.Errorf(codes.InvalidArgument, "echo: bad %s %q (want 0..%d)", key, v, max)
	}
	return n, nil
}

// hold waits MDHoldMS milliseconds unless the RPC's context ends first.
func (c *call) hold() error {
	ms, err := c.intMD(MDHoldMS, 0, int(time.Hour/time.Millisecond))
	if err != nil || ms == 0 {
		return err
	}
	return c.wait(time.Duration(ms) * time.Millisecond)
}

func (c *call) wait(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.ctx.Done():
		return c.ended(c.ctx.Err())
	}
}

// ended converts err into the handler's return value and, when the RPC's
// context is finished, records the cancellation exactly once.
func (c *call) ended(err error) error {
	if cerr := c.ctx.Err(); cerr != nil && !c.recorded {
		c.recorded = true
		if c.deadlineDue() {
			c.s.deadlineExceeded.Add(1)
		} else {
			c.s.cancelled.Add(1)
			c.s.mu.Lock()
			c.s.cancelledMethods = append(c.s.cancelledMethods, c.method)
			c.s.mu.Unlock()
		}
		return status.FromContextError(cerr).Err()
	}
	return err
}

// deadlineSlack is how close to its deadline an RPC may be cancelled and
// still count as deadline-exceeded. The client's timer fires before the
// server's (the server computed its deadline from grpc-timeout on arrival), so
// a deadline usually reaches the server as RST_STREAM, i.e. context.Canceled.
const deadlineSlack = 100 * time.Millisecond

func (c *call) deadlineDue() bool {
	if errors.Is(c.ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	d, ok := c.ctx.Deadline()
	return ok && time.Until(d) < deadlineSlack
}

func (s *Server) unary(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	c, err := s.begin(ctx, UnaryMethod)
	if err != nil {
		return nil, err
	}
	if err := c.hold(); err != nil {
		return nil, err
	}
	if err := grpc.SetHeader(ctx, c.echo); err != nil {
		return nil, fmt.Errorf("echo: set header: %w", err)
	}
	if err := grpc.SetTrailer(ctx, c.trailer); err != nil {
		return nil, fmt.Errorf("echo: set trailer: %w", err)
	}
	return wrapperspb.Bytes(in.GetValue()), nil
}

type stream = grpc.GenericServerStream[wrapperspb.BytesValue, wrapperspb.BytesValue]

// start is begin for streams. On the failure path the echo goes only to the
// trailers, so the reply stays trailers-only.
func (s *Server) start(st *stream, method string) (*call, error) {
	c, err := s.begin(st.Context(), method)
	if err != nil {
		return nil, err
	}
	if err := st.SetHeader(c.echo); err != nil {
		return nil, fmt.Errorf("echo: set header: %w", err)
	}
	st.SetTrailer(c.trailer)
	return c, nil
}

func (s *Server) clientStream(st *stream) error {
	c, err := s.start(st, ClientStreamMethod)
	if err != nil {
		return err
	}
	var buf []byte
	n := 0
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c.ended(err)
		}
		n++
		buf = append(buf, m.GetValue()...)
	}
	st.SetTrailer(metadata.Pairs(TrailerReceived, strconv.Itoa(n)))
	if err := c.hold(); err != nil {
		return err
	}
	return c.ended(st.SendAndClose(wrapperspb.Bytes(buf)))
}

func (s *Server) serverStream(in *wrapperspb.BytesValue, st *stream) error {
	c, err := s.start(st, ServerStreamMethod)
	if err != nil {
		return err
	}
	count, err := c.intMD(MDReplyCount, 1, maxReplyCount)
	if err != nil {
		return err
	}
	size, err := c.intMD(MDReplySize, -1, maxReplyBytes)
	if err != nil {
		return err
	}
	interval, err := c.intMD(MDReplyIntervalMS, 0, int(time.Hour/time.Millisecond))
	if err != nil {
		return err
	}
	// Without x-reply-size each reply echoes the request bytes.
	payload := in.GetValue()
	if size >= 0 {
		payload = make([]byte, size)
		for i := range payload {
			payload[i] = byte('a' + i%26)
		}
	}
	if err := c.hold(); err != nil {
		return err
	}
	for i := 0; i < count; i++ {
		if i > 0 && interval > 0 {
			if err := c.wait(time.Duration(interval) * time.Millisecond); err != nil {
				return err
			}
		}
		if err := st.Send(wrapperspb.Bytes(payload)); err != nil {
			return c.ended(err)
		}
	}
	return c.ended(nil)
}

func (s *Server) bidiStream(st *stream) error {
	c, err := s.start(st, BidiStreamMethod)
	if err != nil {
		return err
	}
	if err := c.hold(); err != nil {
		return err
	}
	n := 0
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			st.SetTrailer(metadata.Pairs(TrailerReceived, strconv.Itoa(n)))
			return nil
		}
		if err != nil {
			return c.ended(err)
		}
		n++
		// Reply as each message arrives so ping-pong clients make progress.
		if err := st.Send(wrapperspb.Bytes(m.GetValue())); err != nil {
			return c.ended(err)
		}
	}
}
