package memtidy

import (
	"context"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	tests := []struct {
		name      string
		tick      uint64
		sinceTidy uint64
		ago       time.Duration
		want      bool
	}{
		{"quiet after a burst", 0, 100 << 20, time.Minute, true},
		{"still busy", 50 << 20, 500 << 20, time.Minute, false},
		{"quiet, no burst", 0, 1 << 20, time.Minute, false},
		{"quiet after a burst, but just tidied", 0, 100 << 20, time.Second, false},
		{"trickle under the quiet line", QuietBytes - 1, BurstBytes + 1, MinInterval, true},
	}
	for _, tc := range tests {
		if got := Decide(tc.tick, tc.sinceTidy, tc.ago); got != tc.want {
			t.Errorf("%s: Decide = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A burst of garbage followed by quiet is tidied once, within a couple
// of ticks; nothing more happens while the process stays quiet.
func TestRunTidiesAfterBurst(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tidied := make(chan struct{}, 4)
	go Run(ctx, func() { tidied <- struct{}{} })
	var sink [][]byte
	for i := 0; i < 64; i++ { // 64 MiB of garbage: a burst
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	_ = sink
	select {
	case <-tidied:
	case <-time.After(MinInterval + 5*Tick):
		t.Fatal("no tidy-up after a 64 MiB burst and quiet")
	}
	select {
	case <-tidied:
		t.Fatal("tidied again while quiet, with no new burst")
	case <-time.After(3 * Tick):
	}
}
