package dns

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/config"
)

// fakeResolver answers from a script, one entry per lookup, then repeats
// the last one.
type fakeResolver struct {
	mu      sync.Mutex
	answers [][]string
	errs    []error
	n       int
}

func (f *fakeResolver) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := min(f.n, len(f.answers)-1)
	f.n++
	if f.errs[i] != nil {
		return nil, f.errs[i]
	}
	var out []net.IPAddr
	for _, a := range f.answers[i] {
		out = append(out, net.IPAddr{IP: net.ParseIP(a)})
	}
	return out, nil
}

func TestWatchUpdatesOnChangeAndKeepsLastGoodOnError(t *testing.T) {
	r := &fakeResolver{
		answers: [][]string{{"127.0.0.2", "127.0.0.1"}, {"127.0.0.1", "127.0.0.2"}, nil, {"127.0.0.3"}},
		errs:    []error{nil, nil, errors.New("SERVFAIL"), nil},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	updates := make(chan []config.Endpoint, 10)
	go Watch(ctx, config.DNSSource{Name: "milvus", Port: 19530, Interval: 5 * time.Millisecond}, r,
		slog.New(slog.NewTextHandler(io.Discard, nil)), func(e []config.Endpoint) { updates <- e })
	first := <-updates
	if len(first) != 2 || first[0].Address != "127.0.0.1" || first[0].Port != 19530 || !first[0].Ready {
		t.Fatalf("first update = %+v", first)
	}
	// The reordered answer and the error produce no update; the change does.
	second := <-updates
	if len(second) != 1 || second[0].Address != "127.0.0.3" {
		t.Fatalf("second update = %+v", second)
	}
}
