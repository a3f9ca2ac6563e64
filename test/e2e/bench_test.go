package e2e

import (
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

// benchUnary sends unary echo RPCs of size bytes through l7lb, inflight at
// a time over one connection. Run with -cpuprofile to see where l7lb's
// time goes (client and backend share the process).
func benchUnary(b *testing.B, size, inflight int) {
	e := startEnvB(b)
	cc := e.dialB(b, grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20), grpc.MaxCallRecvMsgSize(256<<20)))
	cli := echo.NewClient(cc)
	payload := make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	var wg sync.WaitGroup
	work := make(chan struct{}, b.N)
	for i := 0; i < b.N; i++ {
		work <- struct{}{}
	}
	close(work)
	for g := 0; g < inflight; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if _, err := cli.Unary(ctxB(b, time.Minute), payload); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkUnary3KiB(b *testing.B) { benchUnary(b, 3<<10, 32) }
func BenchmarkUnary4MiB(b *testing.B) { benchUnary(b, 4<<20, 4) }

func BenchmarkUnary4MiBSerial(b *testing.B) { benchUnary(b, 4<<20, 1) }

// BenchmarkDownload4MiB: a 4 MiB reply to a tiny request.
func BenchmarkDownload4MiB(b *testing.B) {
	e := startEnvB(b)
	cc := e.dialB(b, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	cli := echo.NewClient(cc)
	b.SetBytes(4 << 20)
	for i := 0; i < b.N; i++ {
		if _, err := cli.ServerStream(ctxB(b, time.Minute), 1, 4<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpload4MiB: 4 MiB in, a few bytes back.
func BenchmarkUpload4MiB(b *testing.B) {
	e := startEnvB(b)
	cc := e.dialB(b, grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20), grpc.MaxCallRecvMsgSize(256<<20)))
	benchUpload4MiB(b, echo.NewClient(cc))
}

// BenchmarkDirectUpload4MiB is the baseline: the same client straight to
// one backend replica over h2c.
func BenchmarkDirectUpload4MiB(b *testing.B) {
	e := startEnvB(b)
	cc, err := grpc.NewClient(e.cluster.Replicas()[0].Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20), grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	benchUpload4MiB(b, echo.NewClient(cc))
}

// benchUpload4MiB sends b.N client streams of one 4 MiB message each and
// waits for each short reply.
func benchUpload4MiB(b *testing.B, cli *echo.Client) {
	b.SetBytes(4 << 20)
	payload := make([]byte, 4<<20)
	for i := 0; i < b.N; i++ {
		s, err := cli.OpenClientStream(ctxB(b, time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Send(&echo.Message{Value: payload}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.CloseAndRecv(); err != nil {
			b.Fatal(err)
		}
	}
}
