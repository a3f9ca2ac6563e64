package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// pair returns a wrapped client connection and the plain server side of
// a loopback TCP connection.
func pair(t *testing.T) (*Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var s net.Conn
	select {
	case s = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("accept timed out")
	}
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	w, ok := Wrap(c).(*Conn)
	if !ok {
		t.Fatal("Wrap did not wrap a TCP connection")
	}
	return w, s.(*net.TCPConn)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

func TestWrapLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("Wrap changed a non-TCP connection")
	}
}

func TestReadWriteBothWays(t *testing.T) {
	c, s := pair(t)
	for _, size := range []int{1, 100, 16 << 10, RawLimit, RawLimit + 1, 4 << 20} {
		want := pattern(size)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Write(want)
			errc <- err
		}()
		got := make([]byte, size)
		if _, err := io.ReadFull(s, got); err != nil {
			t.Fatalf("%d bytes: server read: %v", size, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("%d bytes: Write: %v", size, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: server got different bytes", size)
		}

		go func() {
			_, err := s.Write(want)
			errc <- err
		}()
		// Read into a buffer larger than RawLimit: short reads are fine.
		got = make([]byte, size)
		buf := make([]byte, 2*RawLimit)
		for off := 0; off < size; {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("%d bytes: Read after %d: %v", size, off, err)
			}
			if n > RawLimit {
				t.Fatalf("one raw read returned %d bytes, more than RawLimit", n)
			}
			off += copy(got[off:], buf[:n])
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: client got different bytes", size)
		}
	}
}

// A writer faster than its reader fills the socket buffers: writes must
// wait in the poller (EAGAIN) and resume where they stopped.
func TestWritesWaitForASlowReader(t *testing.T) {
	c, s := pair(t)
	waits := writeWaits.Load()
	// Small buffers (smaller still would make TCP itself crawl on
	// delayed ACKs) and a reader that pauses.
	c.SetWriteBuffer(32 << 10)
	s.SetReadBuffer(32 << 10)
	const chunks = 64
	var want bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		for i := range chunks {
			b := pattern(RawLimit - i) // raw path, many partial writes
			want.Write(b)
			if i%2 == 0 {
				_, werr = c.Write(b)
			} else {
				_, werr = c.Writev([][]byte{b[:10], {}, b[10:1000], b[1000:]})
			}
			if werr != nil {
				return
			}
		}
	}()
	var got bytes.Buffer
	buf := make([]byte, 8192)
	deadline := time.Now().Add(20 * time.Second)
	for total := chunks*RawLimit - chunks*(chunks-1)/2; got.Len() < total; {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d bytes in 20 s", got.Len(), total)
		}
		n, err := s.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got.Write(buf[:n])
		if got.Len()%(256<<10) < n {
			time.Sleep(5 * time.Millisecond) // stay slow
		}
	}
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatal("the reader got different bytes")
	}
	if writeWaits.Load() == waits {
		t.Fatal("no write ever found the socket full: the test did not exercise waiting")
	}
}

func TestWritev(t *testing.T) {
	tests := []struct {
		name string
		bufs [][]byte
	}{
		{"few small", [][]byte{[]byte("frame header"), pattern(100), nil, pattern(3)}},
		{"over RawLimit", [][]byte{pattern(RawLimit), pattern(RawLimit), pattern(10)}},
		{"more buffers than IOV_MAX", func() [][]byte {
			b := make([][]byte, maxIovecs+10)
			for i := range b {
				b[i] = []byte{byte(i)}
			}
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := pair(t)
			want := bytes.Join(tt.bufs, nil)
			errc := make(chan error, 1)
			go func() {
				n, err := c.Writev(tt.bufs)
				if err == nil && n != int64(len(want)) {
					err = errors.New("short Writev count")
				}
				errc <- err
			}()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(s, got); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("different bytes")
			}
		})
	}
}

func TestErrorsLookLikeNetConns(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		c, _ := pair(t)
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Read(make([]byte, 10))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read past the deadline: %v, want a timeout", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("Read past the deadline: %#v, want a *net.OpError for read", err)
		}
	})
	t.Run("EOF", func(t *testing.T) {
		c, s := pair(t)
		s.Close()
		if _, err := c.Read(make([]byte, 10)); err != io.EOF {
			t.Fatalf("Read after the peer closed: %v, want io.EOF", err)
		}
	})
	t.Run("closed while reading", func(t *testing.T) {
		c, _ := pair(t)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 10))
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond)
		c.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read on a closed conn: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read did not return after Close")
		}
	})
	t.Run("reset peer", func(t *testing.T) {
		c, s := pair(t)
		s.SetLinger(0)
		s.Close() // RST
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			_, err = c.Write(pattern(1000))
			time.Sleep(time.Millisecond)
		}
		if err == nil {
			t.Fatal("writes to a reset peer kept succeeding")
		}
	})
}

// Small reads and writes allocate nothing per call.
func TestNoAllocations(t *testing.T) {
	c, s := pair(t)
	msg := pattern(512)
	buf := make([]byte, 512)
	vec := [][]byte{msg[:10], msg[10:]}
	if n := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Writev(vec); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%.1f allocations per write-read round, want 0", n)
	}
}

// wrapped hides a Conn behind a wrapper that passes Writev on, as the
// listener's sniffing wrapper does.
type wrapped struct {
	net.Conn
	vecs int
}

func (w *wrapped) Writev(bufs [][]byte) (int64, error) {
	w.vecs++
	return WriteBuffers(w.Conn, bufs)
}

func TestWriteBuffers(t *testing.T) {
	c, s := pair(t)
	w := &wrapped{Conn: c}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ts, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	tests := []struct {
		name string
		to   net.Conn
		from net.Conn
	}{
		{"a Conn behind a wrapper: its Writev", w, s},
		{"a bare TCP conn: net.Buffers", tc, ts},
		{"a conn without Writev: a Write per buffer", a, b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bufs := [][]byte{[]byte("header"), pattern(3000), []byte("tail")}
			want := bytes.Join(bufs, nil)
			errc := make(chan error, 1)
			go func() {
				_, err := WriteBuffers(tt.to, bufs)
				errc <- err
			}()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(tt.from, got); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("different bytes")
			}
		})
	}
	if w.vecs != 1 {
		t.Fatalf("the wrapper's Writev ran %d times, want 1", w.vecs)
	}
}
