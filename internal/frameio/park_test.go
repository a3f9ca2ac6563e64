package frameio

import (
	"io"
	"net"
	"testing"
	"time"
)

// An idle writer's goroutine exits once its queue is written, and the next
// frame starts another: nothing queued is lost across parking, over many
// park/wake rounds racing with the writer's own exit.
func TestWriterParksWhenIdle(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	got := make(chan int, 1)
	go func() {
		n, _ := io.Copy(io.Discard, b)
		got <- int(n)
	}()
	w := NewWriter(a)
	w.Lock()
	w.SetIdleLocked(true)
	w.Unlock()
	w.Start(nil, nil)
	w.Kick()
	waitParked := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !w.parked.Load() {
			if time.Now().After(deadline) {
				t.Fatal("an idle writer with nothing queued did not park")
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitParked()
	const rounds = 2000
	for i := 0; i < rounds; i++ {
		w.Lock()
		if !w.AppendPing(false, [8]byte{byte(i)}) {
			w.Unlock()
			t.Fatalf("round %d: append failed", i)
		}
		w.Unlock()
		w.Kick()
		if i%100 == 0 {
			waitParked()
		}
	}
	// A busy connection keeps its goroutine.
	w.Lock()
	w.SetIdleLocked(false)
	w.AppendPing(false, [8]byte{})
	w.Unlock()
	w.Kick()
	time.Sleep(20 * time.Millisecond)
	if w.parked.Load() {
		t.Fatal("a writer whose connection has streams parked")
	}
	w.CloseAfterFlush()
	if !w.Wait(5 * time.Second) {
		t.Fatal("writer did not finish after CloseAfterFlush")
	}
	a.Close()
	if n := <-got; n != (rounds+1)*17 {
		t.Fatalf("peer read %d bytes, want %d (%d PINGs of 17 bytes): frames lost across parking", n, (rounds+1)*17, rounds+1)
	}
}
