package listener

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// noH2 stands in for the HTTP/2 engine: these tests speak HTTP/1.1.
type noH2 struct{}

func (noH2) ServeConn(c net.Conn)           { c.Close() }
func (noH2) Shutdown(context.Context) error { return nil }

// events counts what a listener reports and signals each closed
// connection on closed.
type events struct {
	mu                       sync.Mutex
	opened, closes, rejected int
	closed                   chan struct{}
}

func newEvents() *events { return &events{closed: make(chan struct{}, 1000)} }

func (e *events) ConnOpened() { e.mu.Lock(); e.opened++; e.mu.Unlock() }
func (e *events) ConnClosed() {
	e.mu.Lock()
	e.closes++
	e.mu.Unlock()
	select {
	case e.closed <- struct{}{}:
	default:
	}
}
func (e *events) ConnRejected()              { e.mu.Lock(); e.rejected++; e.mu.Unlock() }
func (e *events) TLSHandshake(uint16, error) {}
func (e *events) counts() (opened, rejected int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opened, e.rejected
}

// signals are what the test handler reports from inside requests.
type signals struct {
	bodyErr  chan error
	writeErr chan error
}

// testHandler: / answers ok; /big?n= writes n bytes; /upload reads the
// body.
func testHandler(sig *signals) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.URL.Query().Get("n"), &n)
		w.Header().Set("Content-Length", fmt.Sprint(n))
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := w.Write(chunk[:min(len(chunk), n-sent)]); err != nil {
				sig.writeErr <- err
				return
			}
		}
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			sig.bodyErr <- err
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok")
	})
	return mux
}

// start listens on a free loopback port and serves until the test ends;
// prepare may change the listener before Serve (e.g. its net.Listener).
func start(t *testing.T, opts Options, prepare func(*Listener)) (*Listener, <-chan error) {
	t.Helper()
	opts.Addr = "127.0.0.1:0"
	opts.H2 = noH2{}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Handler == nil {
		opts.Handler = testHandler(&signals{bodyErr: make(chan error, 1), writeErr: make(chan error, 1)})
	}
	l, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(l)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.Shutdown(ctx)
	})
	return l, served
}

// client is one HTTP/1.1 connection driven by hand.
type client struct {
	net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{Conn: c, br: bufio.NewReader(c)}
}

// get sends a request for path and reads the response, within 10 s.
func (c *client) get(path string, header string) (*http.Response, []byte, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\n%s\r\n", path, header); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, err
}

// closedByServer wants the server to end c without answering: a read
// returns EOF or a reset, not a timeout.
func closedByServer(t *testing.T, c *client) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.br.Read(make([]byte, 1))
	var ne net.Error
	if n > 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed by the server: read %d bytes, %v", n, err)
	}
}

// refused wants a connection to addr ended by the server at once: the
// reset may even beat connect's own completion.
func refused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if errors.Is(err, syscall.ECONNRESET) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closedByServer(t, &client{Conn: c, br: bufio.NewReader(c)})
}

// TestMaxConns: past the cap shared by a process's listeners, a new
// connection is closed at once and counted; the connections already open
// go on being served, and a slot freed is taken again.
func TestMaxConns(t *testing.T) {
	tests := []struct {
		name      string
		max       int
		listeners int
	}{
		{"one listener", 1, 1},
		{"cap shared by two listeners", 3, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := NewConnLimit(tc.max, slog.New(slog.DiscardHandler))
			ev := newEvents()
			var addrs []string
			for range tc.listeners {
				l, _ := start(t, Options{Conns: cl, Events: ev}, nil)
				addrs = append(addrs, l.Addr().String())
			}
			// Fill the cap, spread over the listeners; a response proves
			// the server holds the connection.
			var open []*client
			for i := range tc.max {
				c := dial(t, addrs[i%len(addrs)])
				if resp, _, err := c.get("/", ""); err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("connection %d under the cap: %v", i, err)
				}
				open = append(open, c)
			}
			if cl.Open() != tc.max {
				t.Fatalf("%d connections hold a slot, want %d", cl.Open(), tc.max)
			}
			// One more on every listener: closed at once, counted.
			for _, a := range addrs {
				refused(t, a)
			}
			if opened, rejected := ev.counts(); opened != tc.max || rejected != len(addrs) {
				t.Errorf("events: %d opened, %d rejected; want %d, %d", opened, rejected, tc.max, len(addrs))
			}
			// The connections in flight are untouched.
			for i, c := range open {
				if resp, _, err := c.get("/", ""); err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("open connection %d after rejections: %v", i, err)
				}
			}
			// Closing one frees its slot (the server reports the close
			// after releasing the slot).
			open[0].Close()
			select {
			case <-ev.closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the closed connection was never released")
			}
			c := dial(t, addrs[0])
			if resp, _, err := c.get("/", ""); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("connection after a slot was freed: %v", err)
			}
		})
	}
}

// TestConnLimitLogsOncePerSecond: a burst of rejections makes one log
// line, with the count.
func TestConnLimitLogsOncePerSecond(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	cl := NewConnLimit(1, log)
	for range 100 {
		cl.reject("127.0.0.1:1")
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if n := strings.Count(out, "connection cap reached"); n != 1 {
		t.Fatalf("%d log lines for a burst, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "rejected=1 ") {
		t.Errorf("first line does not count the first rejection:\n%s", out)
	}
	if cl.rejected.Load() != 99 {
		t.Errorf("%d rejections waiting for the next line, want 99", cl.rejected.Load())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// failingListener makes Accept fail with err the first n times (forever
// when n < 0), recording when, then hands over to the real listener.
type failingListener struct {
	net.Listener
	err error
	mu  sync.Mutex
	n   int
	at  []time.Time
}

func (f *failingListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if f.n != 0 {
		f.n--
		f.at = append(f.at, time.Now())
		f.mu.Unlock()
		return nil, f.err
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

func (f *failingListener) failures() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.at...)
}

func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// TestAcceptBacksOff: when accept runs out of file descriptors (or kernel
// memory) the loop waits 5 ms, doubling, instead of spinning, and serves
// again once accept works; other errors end Serve.
func TestAcceptBacksOff(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		fails int
		retry bool
	}{
		{"EMFILE", acceptErr(syscall.EMFILE), 5, true},
		{"ENFILE", acceptErr(syscall.ENFILE), 3, true},
		{"ENOBUFS", acceptErr(syscall.ENOBUFS), 3, true},
		{"ENOMEM", acceptErr(syscall.ENOMEM), 3, true},
		{"EINVAL ends Serve", acceptErr(syscall.EINVAL), 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fl := &failingListener{err: tc.err, n: tc.fails}
			l, served := start(t, Options{}, func(l *Listener) { fl.Listener = l.ln; l.ln = fl })
			if !tc.retry {
				select {
				case err := <-served:
					if !errors.Is(err, syscall.EINVAL) {
						t.Fatalf("Serve returned %v, want the accept error", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("Serve went on after a fatal accept error")
				}
				return
			}
			c := dial(t, l.Addr().String())
			if resp, _, err := c.get("/", ""); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("request after the accept errors passed: %v", err)
			}
			at := fl.failures()
			if len(at) != tc.fails {
				t.Fatalf("%d failed accepts, want %d", len(at), tc.fails)
			}
			// Between failure i and i+1 the loop waited 5 ms << i at least.
			for i := 1; i < len(at); i++ {
				if gap, want := at[i].Sub(at[i-1]), minAcceptDelay<<(i-1); gap < want {
					t.Errorf("retry %d came after %v, want at least %v", i, gap, want)
				}
			}
		})
	}
}

// TestShutdownDuringAcceptBackOff: a listener stuck on EMFILE still shuts
// down.
func TestShutdownDuringAcceptBackOff(t *testing.T) {
	fl := &failingListener{err: acceptErr(syscall.EMFILE), n: -1}
	l, served := start(t, Options{}, func(l *Listener) { fl.Listener = l.ln; l.ln = fl })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
}

// TestHTTP1Limits: the HTTP/1.1 server cuts off slow and oversized
// requests and clients that do not read, and serves legitimate ones,
// large responses included, under the defaults.
func TestHTTP1Limits(t *testing.T) {
	const short = 300 * time.Millisecond
	tests := []struct {
		name   string
		limits HTTP1Limits
		run    func(t *testing.T, c *client, sig *signals)
	}{
		{"legitimate request, 8 MiB response, defaults", HTTP1Limits{}, func(t *testing.T, c *client, _ *signals) {
			resp, body, err := c.get("/big?n=8388608", "")
			if err != nil || resp.StatusCode != http.StatusOK || len(body) != 8<<20 {
				t.Fatalf("got %v, %d bytes (%v)", resp, len(body), err)
			}
		}},
		{"60 KiB of headers pass the 64 KiB default", HTTP1Limits{}, func(t *testing.T, c *client, _ *signals) {
			resp, _, err := c.get("/", "X-Big: "+strings.Repeat("a", 60<<10)+"\r\n")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("got %v (%v)", resp, err)
			}
		}},
		{"80 KiB of headers get 431", HTTP1Limits{}, func(t *testing.T, c *client, _ *signals) {
			resp, _, err := c.get("/", "X-Big: "+strings.Repeat("a", 80<<10)+"\r\n")
			// The server closes right after its answer, with the rest of
			// the headers unread: the body may be lost to the reset.
			if resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("got %v (%v), want 431", resp, err)
			}
		}},
		{"--max-header-bytes 8KiB: 16 KiB get 431", HTTP1Limits{MaxHeaderBytes: 8 << 10}, func(t *testing.T, c *client, _ *signals) {
			resp, _, err := c.get("/", "X-Big: "+strings.Repeat("a", 16<<10)+"\r\n")
			// The server closes right after its answer, with the rest of
			// the headers unread: the body may be lost to the reset.
			if resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("got %v (%v), want 431", resp, err)
			}
		}},
		{"slowloris: headers byte by byte are cut off", HTTP1Limits{ReadHeaderTimeout: short}, func(t *testing.T, c *client, _ *signals) {
			req := "GET / HTTP/1.1\r\nHost: test\r\nX-Slow: " + strings.Repeat("a", 500) + "\r\n\r\n"
			// The server ends the connection: net/http answers a request
			// whose headers timed out half-read with 400 and closes.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			type result struct {
				got []byte
				err error
			}
			cut := make(chan result, 1)
			go func() {
				got, err := io.ReadAll(c.br)
				cut <- result{got, err}
			}()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(10 * time.Second)
			for i := 0; i < len(req); i++ {
				select {
				case r := <-cut:
					var ne net.Error
					if errors.As(r.err, &ne) && ne.Timeout() || len(r.got) > 0 && !strings.HasPrefix(string(r.got), "HTTP/1.1 400 ") {
						t.Fatalf("connection not ended by the server: read %q, %v", r.got, r.err)
					}
					return // cut off after i of len(req) bytes
				case <-deadline:
					t.Fatal("not cut off after 10 s")
				case <-tick.C:
					c.Write([]byte{req[i]}) // fails once the server closed; cut tells
				}
			}
			t.Fatalf("the whole request went through, %d bytes over %v", len(req), time.Duration(len(req))*20*time.Millisecond)
		}},
		{"slow body is cut off by --http1-read-timeout", HTTP1Limits{ReadTimeout: short}, func(t *testing.T, c *client, sig *signals) {
			fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n")
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(10 * time.Second)
			for i := 0; i < 1000; i++ {
				select {
				case err := <-sig.bodyErr:
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						t.Fatalf("body read failed with %v, want a timeout", err)
					}
					return
				case <-deadline:
					t.Fatal("not cut off after 10 s")
				case <-tick.C:
					c.Write([]byte{'a'})
				}
			}
			t.Fatal("the whole body went through")
		}},
		{"client not reading is cut off by --http1-write-timeout", HTTP1Limits{WriteTimeout: short}, func(t *testing.T, c *client, sig *signals) {
			fmt.Fprintf(c, "GET /big?n=%d HTTP/1.1\r\nHost: test\r\n\r\n", 256<<20)
			select {
			case err := <-sig.writeErr:
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("write failed with %v, want a timeout", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the response writer was not cut off after 10 s")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sig := &signals{bodyErr: make(chan error, 1), writeErr: make(chan error, 1)}
			l, _ := start(t, Options{HTTP1: tc.limits, Handler: testHandler(sig)}, nil)
			tc.run(t, dial(t, l.Addr().String()), sig)
		})
	}
}

func TestHTTP1LimitsDefaults(t *testing.T) {
	tests := []struct {
		in, want HTTP1Limits
	}{
		{HTTP1Limits{}, HTTP1Limits{DefaultHTTP1ReadHeaderTimeout, DefaultHTTP1ReadTimeout, DefaultHTTP1WriteTimeout, DefaultMaxHeaderBytes}},
		{HTTP1Limits{time.Second, -1, -1, 1 << 10}, HTTP1Limits{time.Second, 0, 0, 1 << 10}},
		{HTTP1Limits{0, time.Minute, 2 * time.Minute, 0}, HTTP1Limits{DefaultHTTP1ReadHeaderTimeout, time.Minute, 2 * time.Minute, DefaultMaxHeaderBytes}},
	}
	for _, tc := range tests {
		if got := tc.in.withDefaults(); got != tc.want {
			t.Errorf("%+v.withDefaults() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
