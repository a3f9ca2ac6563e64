package main

// The load generator: grpc-go clients over TLS (or h2c for "direct"),
// N connections, M RPCs in flight back to back, a warm-up and a measured
// window. Every loop ends at the window's end or at a count cap.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Kind is the RPC shape of a workload.
type Kind string

const (
	KindUnary  Kind = "unary"
	KindStream Kind = "server-stream"
	KindBidi   Kind = "bidi-pingpong"
)

// Workload is one of the workloads.
type Workload struct {
	Name      string        `json:"name"`
	Desc      string        `json:"desc"`
	Kind      Kind          `json:"kind"`
	ReqSize   int           `json:"req_bytes"`
	ReplySize int           `json:"reply_bytes"`
	Replies   int           `json:"replies"` // per RPC (stream); round trips per stream (bidi)
	Conns     int           `json:"conns"`
	InFlight  int           `json:"in_flight"`
	MinWindow time.Duration `json:"-"` // the measured window is at least this long
}

var allWorkloads = []Workload{
	{Name: "a", Desc: "unary 3 KiB request / 1 KiB reply, 1 TLS connection, 32 in flight", Kind: KindUnary, ReqSize: 3 << 10, ReplySize: 1 << 10, Replies: 1, Conns: 1, InFlight: 32},
	{Name: "b", Desc: "unary 3 KiB / 1 KiB, 8 connections, 64 in flight", Kind: KindUnary, ReqSize: 3 << 10, ReplySize: 1 << 10, Replies: 1, Conns: 8, InFlight: 64},
	{Name: "c", Desc: "unary 4 MiB request / 64 B reply, 1 connection, 4 in flight", Kind: KindUnary, ReqSize: 4 << 20, ReplySize: 64, Replies: 1, Conns: 1, InFlight: 4},
	{Name: "d", Desc: "server streaming, 64 B request, 16 × 1 KiB replies per RPC, 1 connection, 32 in flight", Kind: KindStream, ReqSize: 64, ReplySize: 1 << 10, Replies: 16, Conns: 1, InFlight: 32},
	{Name: "e", Desc: "unary 64 MiB request / 64 B reply, 1 connection, 16 in flight (1 GiB in flight)", Kind: KindUnary, ReqSize: 64 << 20, ReplySize: 64, Replies: 1, Conns: 1, InFlight: 16, MinWindow: 4 * time.Second},
	{Name: "f", Desc: "bidirectional ping-pong, 1 KiB messages, each waits for its echo, 64 per stream, 1 connection, 8 streams", Kind: KindBidi, ReqSize: 1 << 10, ReplySize: 1 << 10, Replies: 64, Conns: 1, InFlight: 8},
}

// bytesPerOp is the payload moved by one counted operation (an RPC; a round
// trip for bidi), both directions.
func (w Workload) bytesPerOp() int64 {
	switch w.Kind {
	case KindStream:
		return int64(w.ReqSize + w.Replies*w.ReplySize)
	default:
		return int64(w.ReqSize + w.ReplySize)
	}
}

// Target is where the client connects.
type Target struct {
	Addr       string
	TLS        bool
	ServerName string
	Roots      *x509.CertPool
}

// loadResult is what the client saw in the measured window.
type loadResult struct {
	Ops       int64            // RPCs (bidi: round trips) completed in the window
	Streams   int64            // bidi streams completed in the window
	Latencies []time.Duration  // of the ops completed in the window
	Errors    map[string]int64 // gRPC code -> count, warm-up and window
	Window    time.Duration
	FirstErr  string
}

type workerStats struct {
	ops, streams int64
	lat          []time.Duration
	errs         map[string]int64
	firstErr     string
}

func (ws *workerStats) fail(err error) {
	if ws.errs == nil {
		ws.errs = map[string]int64{}
	}
	code := status.Code(err)
	ws.errs[code.String()]++
	if ws.firstErr == "" {
		ws.firstErr = err.Error()
	}
}

const maxOpsPerWorker = 50_000_000 // a bound on every loop, far above any rate seen

func dialTargets(t Target, n int) ([]*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithDefaultCallOptions(
			grpc.ForceCodecV2(rawCodec{}),
			grpc.MaxCallRecvMsgSize(maxMessage),
			grpc.MaxCallSendMsgSize(maxMessage),
		),
	}
	if t.TLS {
		opts = append(opts,
			grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: t.Roots, ServerName: t.ServerName, MinVersion: tls.VersionTLS12})),
			grpc.WithAuthority(t.ServerName))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	var conns []*grpc.ClientConn
	for i := 0; i < n; i++ {
		cc, err := grpc.NewClient(t.Addr, opts...)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		cc.Connect()
		conns = append(conns, cc)
	}
	return conns, nil
}

// probe sends small unary RPCs until one succeeds or the timeout passes.
func probe(t Target, timeout time.Duration) error {
	conns, err := dialTargets(t, 1)
	if err != nil {
		return err
	}
	defer conns[0].Close()
	deadline := time.Now().Add(timeout)
	var last error
	for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ctx = metadata.AppendToOutgoingContext(ctx, mdReplySize, "16")
		var out frame
		last = conns[0].Invoke(ctx, methodUnary, &frame{data: make([]byte, 16)}, &out)
		cancel()
		if last == nil && out.n == 16 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no RPC got through within %v: %v", timeout, last)
}

// hooks let the caller sample the balancer at the window's edges.
type hooks struct {
	windowStart func()
	windowEnd   func()
}

// runLoad runs w against t: warm-up, then the measured window; it returns
// when every worker has stopped.
func runLoad(t Target, w Workload, warmup, window time.Duration, h hooks) (*loadResult, error) {
	conns, err := dialTargets(t, w.Conns)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := make([]byte, w.ReqSize) // shared, read-only
	for i := range req {
		req[i] = byte(i)
	}
	mode := "unary"
	method := methodUnary
	switch w.Kind {
	case KindStream:
		mode, method = "stream", methodStream
	case KindBidi:
		mode, method = "echo", methodEcho
	}
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx := metadata.AppendToOutgoingContext(base,
		mdMode, mode, mdReplySize, strconv.Itoa(w.ReplySize), mdReplyCount, strconv.Itoa(w.Replies))

	start := time.Now()
	winStart := start.Add(warmup)
	winEnd := winStart.Add(window)
	stats := make([]workerStats, w.InFlight)
	var wg sync.WaitGroup
	for i := 0; i < w.InFlight; i++ {
		wg.Add(1)
		go func(ws *workerStats, cc *grpc.ClientConn) {
			defer wg.Done()
			ws.lat = make([]time.Duration, 0, 4096)
			record := func(t0, t1 time.Time) {
				if !t1.Before(winStart) && !t1.After(winEnd) {
					ws.ops++
					ws.lat = append(ws.lat, t1.Sub(t0))
				}
			}
			failed := func(err error) {
				if base.Err() != nil {
					return // our own cancel at the window's end
				}
				ws.fail(err)
				// Do not spin on a dead target: a short pause, still bounded.
				time.Sleep(10 * time.Millisecond)
			}
			for n := 0; n < maxOpsPerWorker && base.Err() == nil; n++ {
				switch w.Kind {
				case KindUnary:
					var out frame
					t0 := time.Now()
					err := cc.Invoke(ctx, method, &frame{data: req}, &out)
					t1 := time.Now()
					if err == nil && out.n != w.ReplySize {
						err = status.Errorf(codes.DataLoss, "reply of %d bytes, want %d", out.n, w.ReplySize)
					}
					if err != nil {
						failed(err)
						continue
					}
					record(t0, t1)
				case KindStream:
					t0 := time.Now()
					err := serverStream(ctx, cc, method, req, w)
					t1 := time.Now()
					if err != nil {
						failed(err)
						continue
					}
					record(t0, t1)
				case KindBidi:
					err := pingPong(ctx, cc, method, req, w, record)
					if err != nil {
						failed(err)
						continue
					}
					if t1 := time.Now(); !t1.Before(winStart) && !t1.After(winEnd) {
						ws.streams++
					}
				}
			}
		}(&stats[i], conns[i%len(conns)])
	}
	// The window's edges: sample the balancer, then stop everything.
	time.Sleep(time.Until(winStart))
	if h.windowStart != nil {
		h.windowStart()
	}
	time.Sleep(time.Until(winEnd))
	if h.windowEnd != nil {
		h.windowEnd()
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		return nil, errors.New("workers did not stop within 30 s of the window's end")
	}
	res := &loadResult{Errors: map[string]int64{}, Window: winEnd.Sub(winStart)}
	for i := range stats {
		ws := &stats[i]
		res.Ops += ws.ops
		res.Streams += ws.streams
		res.Latencies = append(res.Latencies, ws.lat...)
		for k, v := range ws.errs {
			res.Errors[k] += v
		}
		if res.FirstErr == "" {
			res.FirstErr = ws.firstErr
		}
	}
	sort.Slice(res.Latencies, func(i, j int) bool { return res.Latencies[i] < res.Latencies[j] })
	return res, nil
}

var (
	streamDesc = &grpc.StreamDesc{ServerStreams: true}
	bidiDesc   = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
)

func serverStream(ctx context.Context, cc *grpc.ClientConn, method string, req []byte, w Workload) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := cc.NewStream(sctx, streamDesc, method)
	if err != nil {
		return err
	}
	if err := cs.SendMsg(&frame{data: req}); err != nil && err != io.EOF {
		return err
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	got := 0
	for i := 0; i <= w.Replies; i++ {
		var out frame
		err := cs.RecvMsg(&out)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if out.n != w.ReplySize {
			return status.Errorf(codes.DataLoss, "reply of %d bytes, want %d", out.n, w.ReplySize)
		}
		got++
	}
	if got != w.Replies {
		return status.Errorf(codes.DataLoss, "%d replies, want %d", got, w.Replies)
	}
	return nil
}

// pingPong runs one bidi stream: w.Replies round trips, each message sent
// only after the previous echo came back. A balancer that holds whole
// requests never delivers the first message, and the stream ends at the
// window's end with nothing done.
func pingPong(ctx context.Context, cc *grpc.ClientConn, method string, req []byte, w Workload, record func(t0, t1 time.Time)) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := cc.NewStream(sctx, bidiDesc, method)
	if err != nil {
		return err
	}
	for i := 0; i < w.Replies; i++ {
		t0 := time.Now()
		if err := cs.SendMsg(&frame{data: req}); err != nil {
			if err == io.EOF {
				return cs.RecvMsg(&frame{})
			}
			return err
		}
		var out frame
		if err := cs.RecvMsg(&out); err != nil {
			if err == io.EOF {
				return status.Errorf(codes.DataLoss, "stream ended after %d of %d echoes", i, w.Replies)
			}
			return err
		}
		if out.n != len(req) {
			return status.Errorf(codes.DataLoss, "echo of %d bytes, want %d", out.n, len(req))
		}
		record(t0, time.Now())
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	if err := cs.RecvMsg(&frame{}); err != io.EOF {
		if err == nil {
			return status.Errorf(codes.DataLoss, "unexpected extra echo")
		}
		return err
	}
	return nil
}
