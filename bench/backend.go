package main

// The backend: one process with three plaintext (h2c) gRPC listeners that
// stand in for three Milvus proxies. It answers any method, with a reply of
// the size asked for in the request metadata, using a raw-bytes codec so that
// no protobuf work is done on either side.

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
)

const (
	maxMessage = 256 << 20

	// Request metadata understood by the backend.
	mdReplySize  = "x-bench-reply-size"  // bytes per reply message
	mdReplyCount = "x-bench-reply-count" // replies per request (server streaming)
	mdMode       = "x-bench-mode"        // "unary" (default), "stream" or "echo"
	mdStamp      = "x-bench-start-ns"    // when the client started the call, unix ns (-balance)

	methodUnary  = "/l7lb.bench.Bench/Unary"
	methodStream = "/l7lb.bench.Bench/Stream"
	methodEcho   = "/l7lb.bench.Bench/Echo"
	methodStats  = "/l7lb.bench.Control/Stats" // not counted; answered with JSON counts
	methodHealth = "/grpc.health.v1.Health/Check"

	backendEnv = "L7LB_BENCH_BACKEND"
)

// frame is the message type of the raw codec: bytes out, a length (and, when
// keep is set, the bytes) in.
type frame struct {
	data []byte // to send; or received bytes when keep
	n    int    // received length
	keep bool
}

// rawCodec moves frames without copying: Marshal hands the (shared, read-only)
// slice to gRPC, Unmarshal records the length and copies only when asked to.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(f.data)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	f.n = data.Len()
	if f.keep {
		f.data = data.Materialize()
	}
	return nil
}

func (rawCodec) Name() string { return "proto" }

// zeros hands out shared read-only zero-filled slices by size.
type zeros struct {
	mu sync.Mutex
	m  map[int][]byte
}

func (z *zeros) get(n int) []byte {
	z.mu.Lock()
	defer z.mu.Unlock()
	if b, ok := z.m[n]; ok {
		return b
	}
	if z.m == nil {
		z.m = map[int][]byte{}
	}
	b := make([]byte, n)
	z.m[n] = b
	return b
}

type backendStats struct {
	Counts []int64 `json:"counts"` // RPCs started per listener
	// LastStamp is, per listener, the latest client start time (unix ns,
	// from x-bench-start-ns) among the RPCs it received; 0 without stamps.
	LastStamp []int64 `json:"last_stamp_ns,omitempty"`
	// Since are, per listener, the client start times of the last
	// stampRing RPCs it received that are at or after the request's
	// "since" (unix ns); only when asked.
	Since  [][]int64 `json:"since,omitempty"`
	Health []int64   `json:"health_checks,omitempty"` // -health: checks answered, not in Counts
}

// stampRing is how many client start times each listener keeps.
const stampRing = 8192

// ring keeps the last stampRing client start times of one listener.
type ring struct {
	mu   sync.Mutex
	v    []int64
	next int
}

func (r *ring) add(ns int64) {
	r.mu.Lock()
	if len(r.v) < stampRing {
		r.v = append(r.v, ns)
	} else {
		r.v[r.next] = ns
		r.next = (r.next + 1) % stampRing
	}
	r.mu.Unlock()
}

func (r *ring) since(ns int64) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []int64{}
	for _, v := range r.v {
		if v >= ns {
			out = append(out, v)
		}
	}
	return out
}

// servingReply is grpc.health.v1.HealthCheckResponse{status: SERVING}.
var servingReply = []byte{0x08, 0x01}

func mdInt(md metadata.MD, key string, def int) int {
	if v := md.Get(key); len(v) > 0 {
		if n, err := strconv.Atoi(v[0]); err == nil && n >= 0 && n <= maxMessage {
			return n
		}
	}
	return def
}

// runBackend serves until SIGTERM/SIGINT or stdin closes. It prints one line,
// "LISTEN addr1,addr2,addr3", once all listeners are bound.
//
//	backend [N] [-delay D1,D2,...] [-health]
//
// N listeners (default 3). -delay holds each reply of listener i for Di
// before sending it (a slow replica). -health answers
// grpc.health.v1.Health/Check with SERVING instead of counting it as an
// RPC (l7lb's default health check), as a Milvus proxy does.
func runBackend(args []string) error {
	n := 3
	if len(args) > 0 {
		if v, err := strconv.Atoi(args[0]); err == nil && v > 0 && v <= 16 {
			n = v
			args = args[1:]
		}
	}
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	delayList := fs.String("delay", "", "per-listener reply delay, comma-separated durations")
	health := fs.Bool("health", false, "answer grpc.health.v1.Health/Check with SERVING (not counted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	delays := make([]time.Duration, n)
	for i, d := range splitList(*delayList) {
		if i >= n {
			break
		}
		v, err := time.ParseDuration(d)
		if err != nil || v < 0 || v > time.Minute {
			return fmt.Errorf("-delay %q: want durations 0..1m", d)
		}
		delays[i] = v
	}
	healthCounts := make([]atomic.Int64, n)
	stamps := make([]atomic.Int64, n)
	rings := make([]ring, n)
	counts := make([]atomic.Int64, n)
	var z zeros
	var servers []*grpc.Server
	addrs := make([]string, 0, n)
	for i := 0; i < n; i++ {
		idx := i
		handler := func(_ any, ss grpc.ServerStream) error {
			method, _ := grpc.MethodFromServerStream(ss)
			if method == methodStats {
				f := frame{keep: true}
				if err := ss.RecvMsg(&f); err != nil {
					return err
				}
				st := backendStats{Counts: make([]int64, n), LastStamp: make([]int64, n), Health: make([]int64, n)}
				for j := range counts {
					st.Counts[j] = counts[j].Load()
					st.LastStamp[j] = stamps[j].Load()
					st.Health[j] = healthCounts[j].Load()
				}
				if v, ok := strings.CutPrefix(string(f.data), "since="); ok {
					if ns, err := strconv.ParseInt(v, 10, 64); err == nil {
						for j := range rings {
							st.Since = append(st.Since, rings[j].since(ns))
						}
					}
				}
				b, _ := json.Marshal(st)
				return ss.SendMsg(&frame{data: b})
			}
			if *health && method == methodHealth {
				healthCounts[idx].Add(1)
				var f frame
				if err := ss.RecvMsg(&f); err != nil {
					return err
				}
				return ss.SendMsg(&frame{data: servingReply})
			}
			counts[idx].Add(1)
			md, _ := metadata.FromIncomingContext(ss.Context())
			if v := md.Get(mdStamp); len(v) > 0 {
				if ns, err := strconv.ParseInt(v[0], 10, 64); err == nil {
					for old := stamps[idx].Load(); ns > old && !stamps[idx].CompareAndSwap(old, ns); old = stamps[idx].Load() {
					}
					rings[idx].add(ns)
				}
			}
			mode := "unary"
			if v := md.Get(mdMode); len(v) > 0 {
				mode = v[0]
			}
			switch mode {
			case "echo":
				// Bidirectional ping-pong: every message is sent back as it
				// arrives, until the client half-closes.
				for k := 0; ; k++ {
					f := frame{keep: true}
					if err := ss.RecvMsg(&f); err != nil {
						if err == io.EOF {
							return nil
						}
						return err
					}
					if err := ss.SendMsg(&f); err != nil {
						return err
					}
				}
			default:
				var f frame
				if err := ss.RecvMsg(&f); err != nil {
					return err
				}
				if d := delays[idx]; d > 0 {
					select {
					case <-time.After(d):
					case <-ss.Context().Done():
						return ss.Context().Err()
					}
				}
				reply := &frame{data: z.get(mdInt(md, mdReplySize, 0))}
				count := 1
				if mode == "stream" {
					count = mdInt(md, mdReplyCount, 1)
				}
				for k := 0; k < count; k++ {
					if err := ss.SendMsg(reply); err != nil {
						return err
					}
				}
				return nil
			}
		}
		s := grpc.NewServer(
			grpc.ForceServerCodecV2(rawCodec{}),
			grpc.UnknownServiceHandler(handler),
			grpc.MaxRecvMsgSize(maxMessage),
			grpc.MaxSendMsgSize(maxMessage),
		)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		servers = append(servers, s)
		addrs = append(addrs, ln.Addr().String())
		go s.Serve(ln)
	}
	fmt.Printf("LISTEN %s\n", joinComma(addrs))
	os.Stdout.Sync()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	stdinClosed := make(chan struct{})
	go func() {
		// The harness holds our stdin; when it goes away, so do we.
		r := bufio.NewReader(os.Stdin)
		for {
			if _, err := r.ReadByte(); err != nil {
				close(stdinClosed)
				return
			}
		}
	}()
	select {
	case <-stop:
	case <-stdinClosed:
	}
	for _, s := range servers {
		s.Stop()
	}
	return nil
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// backendStatsClient asks the backend for its per-listener counts over h2c.
type backendStatsClient struct{ cc *grpc.ClientConn }

func newBackendStatsClient(addr string) (*backendStatsClient, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &backendStatsClient{cc: cc}, nil
}

func (c *backendStatsClient) counts() ([]int64, error) {
	st, err := c.stats(5 * time.Second)
	if err != nil {
		return nil, err
	}
	return st.Counts, nil
}

// stats asks for everything the backend counts, waiting at most timeout.
func (c *backendStatsClient) stats(timeout time.Duration) (*backendStats, error) {
	return c.statsSince(timeout, 0)
}

// statsSince is stats with, when since is not 0, the client start times
// at or after since (unix ns) that the backend kept.
func (c *backendStatsClient) statsSince(timeout time.Duration, since int64) (*backendStats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := frame{keep: true}
	req := &frame{}
	if since != 0 {
		req.data = []byte("since=" + strconv.FormatInt(since, 10))
	}
	if err := c.cc.Invoke(ctx, methodStats, req, &out, grpc.ForceCodecV2(rawCodec{})); err != nil {
		return nil, err
	}
	var st backendStats
	if err := json.Unmarshal(out.data, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (c *backendStatsClient) Close() { c.cc.Close() }
