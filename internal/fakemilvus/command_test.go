package fakemilvus

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

// syncBuffer lets the test read stdout while Command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCommandRunsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Command(ctx, []string{"--replicas", "2", "--base-port", "0", "--control", "127.0.0.1:0", "--stop-grace", "2s"}, &stdout, &stderr)
	}()
	var lines []string
	waitFor(t, "startup lines", func() bool {
		lines = strings.Split(strings.TrimSpace(stdout.String()), "\n")
		return len(lines) == 3
	})
	addrs := map[string]string{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("line %q, want '<name> <addr>'", l)
		}
		addrs[f[0]] = f[1]
	}
	if addrs["replica-0"] == "" || addrs["replica-1"] == "" || addrs["control"] == "" {
		t.Fatalf("stdout = %q", stdout.String())
	}
	if _, err := echo.NewClient(dial(t, addrs["replica-1"])).Unary(testCtx(t), nil); err != nil {
		t.Errorf("unary to replica-1: %v", err)
	}
	if list, err := NewControlClient(addrs["control"], nil).Replicas(testCtx(t)); err != nil || len(list) != 2 {
		t.Errorf("control list = %v, %v", list, err)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit code %d, stderr %s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Command did not return after cancel")
	}
}

func TestCommandBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"unknown flag", []string{"--nope"}, 2},
		{"zero replicas", []string{"--replicas", "0"}, 2},
		{"port overflow", []string{"--base-port", "65535", "--replicas", "2"}, 2},
		{"positional", []string{"extra"}, 2},
		{"help", []string{"-h"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := Command(context.Background(), tc.args, &out, &errb); got != tc.want {
				t.Errorf("exit %d, want %d (stderr %s)", got, tc.want, errb.String())
			}
		})
	}
}
