package idlepark

import (
	"net"
	"syscall"
	"testing"
	"time"
)

type chanWaker chan struct{}

func (c chanWaker) Wake() { c <- struct{}{} }

func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func rawConn(t *testing.T, c *net.TCPConn) syscall.RawConn {
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func waitWake(t *testing.T, w chanWaker, want bool, what string) {
	t.Helper()
	select {
	case <-w:
		if !want {
			t.Fatalf("%s: woken, want no wake", what)
		}
	case <-time.After(300 * time.Millisecond):
		if want {
			t.Fatalf("%s: not woken within 300 ms", what)
		}
	}
}

func TestParkWakesOnData(t *testing.T) {
	p := &Parker{}
	client, server := tcpPair(t)
	w := make(chanWaker, 2)
	if err := p.Park(rawConn(t, server), w); err != nil {
		t.Fatal(err)
	}
	if p.Parked() != 1 {
		t.Fatalf("Parked() = %d, want 1", p.Parked())
	}
	waitWake(t, w, false, "nothing sent")
	client.Write([]byte("x"))
	waitWake(t, w, true, "a byte sent")
	if p.Parked() != 0 || p.Cancel(w) {
		t.Fatal("a woken connection is still parked")
	}
	// Woken once: no second wake for more data until parked again.
	client.Write([]byte("y"))
	waitWake(t, w, false, "more data while not parked")
	// Parked again with data already waiting: woken at once (level, not
	// edge, so nothing that arrived before parking is missed).
	if err := p.Park(rawConn(t, server), w); err != nil {
		t.Fatal(err)
	}
	waitWake(t, w, true, "parked with data waiting")
}

func TestParkWakesOnHangUp(t *testing.T) {
	p := &Parker{}
	client, server := tcpPair(t)
	w := make(chanWaker, 1)
	if err := p.Park(rawConn(t, server), w); err != nil {
		t.Fatal(err)
	}
	client.Close()
	waitWake(t, w, true, "the peer closed")
}

func TestCancel(t *testing.T) {
	p := &Parker{}
	client, server := tcpPair(t)
	w := make(chanWaker, 1)
	if err := p.Park(rawConn(t, server), w); err != nil {
		t.Fatal(err)
	}
	if err := p.Park(rawConn(t, server), w); err == nil {
		t.Fatal("the same Waker parked twice")
	}
	if !p.Cancel(w) {
		t.Fatal("Cancel of a parked connection reported false")
	}
	if p.Cancel(w) {
		t.Fatal("second Cancel reported true")
	}
	server.Close() // after Cancel, as the rules say
	client.Write([]byte("x"))
	waitWake(t, w, false, "cancelled")
	if p.Parked() != 0 {
		t.Fatalf("Parked() = %d after Cancel", p.Parked())
	}
}

// A socket closed before Park is refused, not registered.
func TestParkClosed(t *testing.T) {
	p := &Parker{}
	_, server := tcpPair(t)
	rc := rawConn(t, server)
	server.Close()
	if err := p.Park(rc, make(chanWaker, 1)); err == nil {
		t.Fatal("parked a closed socket")
	}
	if p.Parked() != 0 {
		t.Fatal("a closed socket is counted as parked")
	}
}
