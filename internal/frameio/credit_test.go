package frameio

import (
	"net"
	"sync"
	"testing"
	"time"
)

type countingCreditor struct {
	mu sync.Mutex
	n  int
	ch chan int
}

func (c *countingCreditor) Credit(n int) {
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	c.ch <- n
}

func (c *countingCreditor) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// A sender is credited only once its bytes left through the socket: while
// the peer reads nothing, nothing comes back; once it reads, all of it.
func TestCreditAfterWrite(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := NewWriter(a)
	w.Start(nil, nil)
	cr := &countingCreditor{ch: make(chan int, 16)}
	payload := make([]byte, 40000)
	w.Lock()
	if !w.AppendData(1, payload, false, cr) {
		t.Fatal("append failed on an open writer")
	}
	if got := w.Buffered(); got != len(payload)+3*9 {
		t.Fatalf("Buffered = %d, want the payload and 3 frame headers, %d", got, len(payload)+3*9)
	}
	w.Unlock()
	w.Kick()
	select {
	case n := <-cr.ch:
		t.Fatalf("credited %d bytes before the peer read any", n)
	case <-time.After(100 * time.Millisecond):
	}
	// The peer reads everything: 3 frame headers (split at 16384) and the payload.
	want := len(payload) + 3*9
	buf := make([]byte, want)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	for got := 0; got < want; {
		n, err := b.Read(buf[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	select {
	case <-cr.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no credit after the bytes were written")
	}
	if cr.total() != len(payload) {
		t.Fatalf("credited %d, want %d", cr.total(), len(payload))
	}
}

// Bytes still queued when the connection closes are credited anyway: a
// closing connection never keeps a sender's window.
func TestCreditOnClose(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	w := NewWriter(a)
	w.Start(nil, nil)
	cr := &countingCreditor{ch: make(chan int, 16)}
	w.Lock()
	w.AppendData(1, make([]byte, 1000), false, cr)
	w.AppendData(3, make([]byte, 500), true, cr)
	w.Unlock()
	w.Kick()
	w.Close()
	if !w.Wait(5 * time.Second) {
		t.Fatal("writer did not stop")
	}
	if cr.total() != 1500 {
		t.Fatalf("credited %d after close, want 1500", cr.total())
	}
	w.Lock()
	ok := w.AppendData(5, make([]byte, 10), false, cr)
	w.Unlock()
	if ok || cr.total() != 1500 {
		t.Fatalf("append after close: ok=%v credited=%d; want false and nothing more", ok, cr.total())
	}
}

// A MAX_FRAME_SIZE below the protocol's minimum (a peer's bad SETTINGS)
// must not make the split loop spin: frames use the minimum instead.
func TestMaxFrameBelowMinimum(t *testing.T) {
	w := NewWriter(nil)
	for _, mf := range []int{0, -1, 100, 1 << 30} {
		w.Lock()
		w.MaxFrame = mf
		done := make(chan bool, 1)
		go func() { done <- w.AppendData(1, make([]byte, 70000), true, nil) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("AppendData spun with MaxFrame %d", mf)
		}
		w.Unlock()
	}
}
