package h2proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/proxy"
	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

// silentTarget speaks HTTP/2 and answers PINGs, so it is alive, but never
// answers a request: a replica stuck behind a wedged query node.
func silentTarget(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				br := bufio.NewReader(c)
				if _, err := io.ReadFull(br, make([]byte, len(http2.ClientPreface))); err != nil {
					return
				}
				fr := http2.NewFramer(c, br)
				fr.WriteSettings()
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							fr.WriteSettingsAck()
						}
					case *http2.PingFrame:
						if !f.IsAck() {
							fr.WritePing(true, f.Data)
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A replica that answers nothing while its peer answers the same method
// misses every deadline; those misses eject it (five in a row), after
// which every call succeeds. Its PINGs are answered, so this is the
// deadline rule at work, not the hang watch.
func TestMissedDeadlinesEjectTarget(t *testing.T) {
	good, silent := grpcTarget(t), silentTarget(t)
	log := slog.New(slog.DiscardHandler)
	var eps []config.Endpoint
	for _, a := range []string{good, silent} {
		host, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		eps = append(eps, config.Endpoint{Address: host, Port: p, Ready: true})
	}
	g := targetgroup.New(config.TargetGroup{
		Name: "ns/svc:19530", Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC,
		MaxMessageBytes: config.DefaultMaxMessageBytes, Endpoints: eps,
	}, log, nil)
	t.Cleanup(g.Close)
	table := route.Compile([]config.Rule{{Name: "r", Path: "/", PathType: config.PathPrefix, TargetGroup: "ns/svc:19530"}},
		func(string) *targetgroup.Group { return g })
	srv := New(Options{Routes: func() *proxy.Table { return table }, Port: 80, Log: log})
	ln := serveLoopback(t, srv)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		in, out := []byte("16"), []byte(nil)
		return cc.Invoke(ctx, "/test.Svc/Big", &in, &out)
	}
	var silentTarget *targetgroup.Target
	for _, tg := range g.Targets() {
		if tg.Addr == silent {
			silentTarget = tg
		}
	}
	// Four callers, so that the peer answers while a call waits on the
	// silent replica. Bounded: 40 calls each.
	var mu sync.Mutex
	missed := 0
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 40; k++ {
				if st, _, _ := silentTarget.State(); st != targetgroup.StateHealthy {
					return
				}
				if err := call(); err != nil {
					if status.Code(err) != codes.DeadlineExceeded {
						t.Errorf("call failed with %v, want DeadlineExceeded or success", err)
					}
					mu.Lock()
					missed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	state, reason, _ := silentTarget.State()
	if state != targetgroup.StateUnhealthy || !strings.Contains(reason, "deadline exceeded on /test.Svc/Big while other targets answered it") {
		t.Fatalf("after %d missed deadlines the silent replica is %s (%q); want ejected for them", missed, state, reason)
	}
	if missed > 12 {
		t.Errorf("%d calls missed their deadline before the ejection; want about 5 (one per caller in flight beyond)", missed)
	}
	for k := 0; k < 20; k++ {
		if err := call(); err != nil {
			t.Fatalf("call %d after the ejection: %v", k, err)
		}
	}
}
