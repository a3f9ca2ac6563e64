package h2proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/l7lb/l7lb/internal/idlepark"
	"github.com/l7lb/l7lb/internal/listener"
	"github.com/l7lb/l7lb/internal/pki"
)

var idleProfile = flag.String("idle.heapprofile", "", "write the heap profile with the idle connections open to this file")

// idleClient is one TLS HTTP/2 client connection that made one RPC.
type idleClient struct {
	conn *tls.Conn
	fr   *http2.Framer
}

func dialIdle(t testing.TB, addr string, roots *x509.CertPool) *idleClient {
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "milvus.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	defer tc.SetDeadline(time.Time{})
	c := &idleClient{conn: tc, fr: http2.NewFramer(tc, tc)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	tc.Write([]byte(http2.ClientPreface))
	c.fr.WriteSettings()
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":path", "/test.Svc/Small"}, {":authority", "milvus.test"},
		{"content-type", "application/grpc"}, {"te", "trailers"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hbuf.Bytes(), EndHeaders: true})
	msg := make([]byte, 5+2)
	binary.BigEndian.PutUint32(msg[1:5], 2)
	copy(msg[5:], "64")
	c.fr.WriteData(1, true, msg)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("idle client's RPC: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				return c
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("idle client's RPC ended with %v", f)
		}
	}
}

// rpc makes one more small RPC on stream id and waits for its trailers.
func (c *idleClient) rpc(id uint32) error {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":path", "/test.Svc/Small"}, {":authority", "milvus.test"},
		{"content-type", "application/grpc"}, {"te", "trailers"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true})
	msg := make([]byte, 5+2)
	binary.BigEndian.PutUint32(msg[1:5], 2)
	copy(msg[5:], "64")
	c.fr.WriteData(id, true, msg)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				if st := f.PseudoValue("status"); st == "" {
					for _, hf := range f.RegularFields() {
						if hf.Name == "grpc-status" && hf.Value != "0" {
							return fmt.Errorf("grpc-status %s", hf.Value)
						}
					}
				}
				return nil
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			return fmt.Errorf("RPC ended with %v", f)
		}
	}
}

func (c *idleClient) ping() error {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	c.fr.WritePing(false, [8]byte{1})
	for i := 0; i < 8; i++ {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
			return nil
		}
	}
	return fmt.Errorf("no PING ACK")
}

// inUse is what the process holds for Go: heap objects in use plus
// goroutine stacks.
func inUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if testing.Verbose() {
		fmt.Printf("heap in use %d, stacks %d, goroutines %d\n", ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine())
	}
	return ms.HeapInuse + ms.StackInuse
}

// TestIdleConnectionMemory: what an idle TLS HTTP/2 client connection
// costs l7lb once its RPC is over — heap and goroutine stacks, in this
// process, with the clients in a child process (TestIdleClients) so that
// their memory is not counted. The bench's idle mode measures the RSS of
// a real l7lb; this asks the same question where a regression shows at
// once, and the heap profile (-idle.heapprofile) says where it goes.
func TestIdleConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens hundreds of TLS connections")
	}
	const n = 500
	if *idleProfile != "" {
		runtime.MemProfileRate = 1
	}
	ca, err := pki.NewCA("idle test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"milvus.test"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	set, err := listener.NewCertSet([]listener.Cert{{ARN: "arn:test", TLS: leaf.TLSCertificate()}})
	if err != nil {
		t.Fatal(err)
	}
	var certs atomic.Pointer[listener.CertSet]
	certs.Store(set)
	srv, _ := newTestServer(t, grpcTarget(t), Limits{})
	ln, err := listener.Listen(listener.Options{Addr: "127.0.0.1:0", Certs: &certs, H2: srv, Log: slog.New(slog.DiscardHandler), IdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	go ln.Serve()
	t.Cleanup(func() { ln.Shutdown(context.Background()) })
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	// The first connections build the pools and the target connection.
	warm := runIdleClients(t, ln.Addr().String(), caFile, 20)
	warm.finish(t)
	time.Sleep(100 * time.Millisecond)

	before := inUse()
	clients := runIdleClients(t, ln.Addr().String(), caFile, n)
	// The connections park once idle for parkAfter.
	deadline := time.Now().Add(parkAfter + 5*time.Second)
	for idlepark.Default.Parked() < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if p := idlepark.Default.Parked(); p != n {
		t.Errorf("%d of %d idle connections parked", p, n)
	}
	after := inUse()
	if *idleProfile != "" {
		if f, err := os.Create(*idleProfile); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	clients.finish(t) // every connection must still answer a PING
	per := (float64(after) - float64(before)) / n / 1024
	t.Logf("idle connection: %.1f KiB of heap and goroutine stack in l7lb (%d → %d bytes with %d connections)", per, before, after, n)
	if per > idleBudgetKiB {
		t.Errorf("an idle connection costs %.1f KiB of heap and stack, over the budget of %d KiB", per, idleBudgetKiB)
	}
}

// idleBudgetKiB is the heap and stack an idle client connection may keep
// in l7lb. RSS adds the kernel's socket and some fragmentation on top;
// issue 13's target is 25 KiB of RSS per connection.
const idleBudgetKiB = 20

type idleChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// runIdleClients starts a child process that opens n idle connections to
// addr and returns once they are all open.
func runIdleClients(t *testing.T, addr, caFile string, n int) *idleChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClients$")
	cmd.Env = append(os.Environ(), "L7LB_IDLE_ADDR="+addr, "L7LB_IDLE_CA="+caFile, "L7LB_IDLE_N="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &idleChild{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := c.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OPEN ") {
		t.Fatalf("idle clients did not open: %q %v", line, err)
	}
	return c
}

// finish asks the child to PING every connection and close them.
func (c *idleChild) finish(t *testing.T) {
	t.Helper()
	c.stdin.Close()
	line, err := c.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "PINGED ") {
		t.Fatalf("idle clients: %q %v", line, err)
	}
	var ok, n int
	fmt.Sscanf(line, "PINGED %d/%d", &ok, &n)
	if ok != n {
		t.Fatalf("only %d of %d idle connections answered a PING", ok, n)
	}
	c.cmd.Wait()
}

// TestIdleClients is the child process of TestIdleConnectionMemory.
func TestIdleClients(t *testing.T) {
	addr := os.Getenv("L7LB_IDLE_ADDR")
	if addr == "" {
		t.Skip("the child process of TestIdleConnectionMemory")
	}
	pem, err := os.ReadFile(os.Getenv("L7LB_IDLE_CA"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	n, _ := strconv.Atoi(os.Getenv("L7LB_IDLE_N"))
	clients := make([]*idleClient, 0, n)
	for i := 0; i < n; i++ {
		clients = append(clients, dialIdle(t, addr, roots))
	}
	fmt.Printf("OPEN %d\n", n)
	io.Copy(io.Discard, os.Stdin) // until the parent is done measuring
	ok := 0
	for _, c := range clients {
		if c.ping() == nil {
			ok++
		}
		c.conn.Close()
	}
	fmt.Printf("PINGED %d/%d\n", ok, n)
}
