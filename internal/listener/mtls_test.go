package listener

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/mtls"
	"github.com/l7lb/l7lb/internal/pki"
)

// errEvents keeps every handshake error.
type errEvents struct {
	events
	hmu  sync.Mutex
	errs []error
	hs   chan struct{}
}

func (e *errEvents) TLSHandshake(_ uint16, err error) {
	e.hmu.Lock()
	if err != nil {
		e.errs = append(e.errs, err)
	}
	e.hmu.Unlock()
	e.hs <- struct{}{}
}

// last waits for the next handshake to be reported and returns the last
// error (nil: it succeeded).
func (e *errEvents) next(t *testing.T) error {
	t.Helper()
	select {
	case <-e.hs:
	case <-time.After(10 * time.Second):
		t.Fatal("no handshake reported")
	}
	e.hmu.Lock()
	defer e.hmu.Unlock()
	if len(e.errs) == 0 {
		return nil
	}
	err := e.errs[len(e.errs)-1]
	e.errs = e.errs[:0]
	return err
}

// h2Recorder is a HeaderH2Server that records the headers each connection
// came with, then closes it.
type h2Recorder struct{ got chan []mtls.Header }

func (h h2Recorder) ServeConn(c net.Conn)           { c.Close() }
func (h h2Recorder) Shutdown(context.Context) error { return nil }
func (h h2Recorder) ServeConnAsyncHeaders(c net.Conn, hd []mtls.Header, done func()) {
	h.got <- hd
	c.Close()
	done()
}

type mtlsEnv struct {
	serverCA, clientCA, otherCA *pki.CA
	certs                       *atomic.Pointer[CertSet]
}

func newMTLSEnv(t *testing.T) *mtlsEnv {
	t.Helper()
	env := &mtlsEnv{certs: &atomic.Pointer[CertSet]{}}
	var err error
	for _, p := range []**pki.CA{&env.serverCA, &env.clientCA, &env.otherCA} {
		if *p, err = pki.NewCA(fmt.Sprintf("CA %p", p), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := env.serverCA.Issue([]string{"lb.test"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := NewCertSet([]Cert{{ARN: "a", TLS: srv.TLSCertificate()}})
	if err != nil {
		t.Fatal(err)
	}
	env.certs.Store(cs)
	return env
}

// handshake dials addr with cert (nil: none) over ALPN proto and reads
// once: a TLS 1.3 client learns of a refused certificate only then.
func (env *mtlsEnv) handshake(addr string, cert *tls.Certificate, proto string) error {
	cfg := &tls.Config{RootCAs: env.serverCA.Pool(), ServerName: "lb.test", NextProtos: []string{proto}}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if proto == "http/1.1" {
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: lb.test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	_, err = c.Read(make([]byte, 1))
	if errors.Is(err, io.EOF) {
		return nil // the recorder closed it: the handshake had passed
	}
	return err
}

func leafOf(t *testing.T, ca *pki.CA, expired bool) *tls.Certificate {
	t.Helper()
	var l *pki.Leaf
	var err error
	if expired {
		// Issued while the CA was valid (pki backdates CAs a few
		// minutes), expired a minute ago.
		now := time.Now()
		l, err = ca.IssueWith(pki.LeafOptions{DNSNames: []string{"client"}, NotBefore: now.Add(-2 * time.Minute), NotAfter: now.Add(-time.Minute)})
	} else {
		l, err = ca.Issue([]string{"client"}, nil, time.Hour)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := l.TLSCertificate()
	return &c
}

// verify: no certificate, a certificate of another CA and an expired one
// are refused at the handshake, each with its own error; a valid one
// passes, and with ignoreClientCertificateExpiry the expired one too.
func TestMutualAuthVerify(t *testing.T) {
	env := newMTLSEnv(t)
	valid, expired, foreign := leafOf(t, env.clientCA, false), leafOf(t, env.clientCA, true), leafOf(t, env.otherCA, false)
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignoreExpiry=%v", ignore), func(t *testing.T) {
			ev := &errEvents{hs: make(chan struct{}, 16)}
			rec := h2Recorder{got: make(chan []mtls.Header, 16)}
			l, _ := start(t, Options{Certs: env.certs, Events: ev, ClientAuth: &mtls.Config{Mode: mtls.ModeVerify, Pool: env.clientCA.Pool(), IgnoreExpiry: ignore}}, func(l *Listener) { l.opts.H2 = rec })
			addr := l.Addr().String()
			cases := []struct {
				name    string
				cert    *tls.Certificate
				ok      bool
				errWant func(error) bool
			}{
				{"no certificate", nil, false, func(err error) bool { return strings.Contains(err.Error(), "client didn't provide a certificate") }},
				{"wrong CA", foreign, false, func(err error) bool {
					var ua x509.UnknownAuthorityError
					return errors.As(err, &ua)
				}},
				{"expired", expired, ignore, func(err error) bool {
					var ci x509.CertificateInvalidError
					return errors.As(err, &ci) && ci.Reason == x509.Expired
				}},
				{"valid", valid, true, nil},
			}
			for _, c := range cases {
				cerr := env.handshake(addr, c.cert, "h2")
				serr := ev.next(t)
				if c.ok {
					if cerr != nil || serr != nil {
						t.Errorf("%s: refused (client %v, server %v)", c.name, cerr, serr)
						continue
					}
					hd := <-rec.got
					if len(hd) != 5 || hd[0].Name != mtls.HeaderSerialNumber || hd[0].Value != fmt.Sprintf("%X", c.cert.Leaf.SerialNumber.Bytes()) {
						t.Errorf("%s: headers %v, want the five verify headers, serial first", c.name, hd)
					}
					continue
				}
				if cerr == nil || serr == nil {
					t.Errorf("%s: accepted (client %v, server %v)", c.name, cerr, serr)
					continue
				}
				if !c.errWant(serr) {
					t.Errorf("%s: server error %v is not the expected kind", c.name, serr)
				}
			}
		})
	}
}

// passthrough: no certificate is fine (no header); any certificate is
// accepted unverified and its chain goes upstream, on HTTP/2 and on
// HTTP/1.1 (through the handler's context).
func TestMutualAuthPassthrough(t *testing.T) {
	env := newMTLSEnv(t)
	inter, err := env.otherCA.NewIntermediate("Passthrough Intermediate")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := inter.Issue([]string{"client"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := leaf.TLSCertificate() // leaf + intermediate
	ev := &errEvents{hs: make(chan struct{}, 16)}
	rec := h2Recorder{got: make(chan []mtls.Header, 16)}
	seen := make(chan []mtls.Header, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen <- mtls.FromContext(r.Context()) })
	l, _ := start(t, Options{Certs: env.certs, Events: ev, Handler: h, ClientAuth: &mtls.Config{Mode: mtls.ModePassthrough}}, func(l *Listener) { l.opts.H2 = rec })
	addr := l.Addr().String()

	wantChain := mtls.Escape(string(leaf.CertPEM()) + string(inter.CertPEM()))
	if err := env.handshake(addr, &cert, "h2"); err != nil || ev.next(t) != nil {
		t.Fatalf("h2 with a certificate: %v", err)
	}
	if hd := <-rec.got; len(hd) != 1 || hd[0].Name != mtls.HeaderClientCert || hd[0].Value != wantChain {
		t.Errorf("h2 headers = %v, want x-amzn-mtls-clientcert with the chain", hd)
	}
	if err := env.handshake(addr, &cert, "http/1.1"); err != nil || ev.next(t) != nil {
		t.Fatalf("http/1.1 with a certificate: %v", err)
	}
	if hd := <-seen; len(hd) != 1 || hd[0].Value != wantChain {
		t.Errorf("http/1.1 context headers = %v", hd)
	}
	if err := env.handshake(addr, nil, "http/1.1"); err != nil || ev.next(t) != nil {
		t.Fatalf("http/1.1 without a certificate: %v", err)
	}
	if hd := <-seen; hd != nil {
		t.Errorf("no certificate, yet headers %v", hd)
	}
}

// SetClientAuth changes what new handshakes need; a connection verified
// before stays open.
func TestSetClientAuth(t *testing.T) {
	env := newMTLSEnv(t)
	ev := &errEvents{hs: make(chan struct{}, 16)}
	l, _ := start(t, Options{Certs: env.certs, Events: ev}, nil)
	addr := l.Addr().String()
	if err := env.handshake(addr, nil, "http/1.1"); err != nil || ev.next(t) != nil {
		t.Fatalf("off: %v", err)
	}
	l.SetClientAuth(&mtls.Config{Mode: mtls.ModeVerify, Pool: env.clientCA.Pool()})
	if err := env.handshake(addr, nil, "http/1.1"); err == nil || ev.next(t) == nil {
		t.Fatal("verify: a client without a certificate got through")
	}
	if err := env.handshake(addr, leafOf(t, env.clientCA, false), "http/1.1"); err != nil || ev.next(t) != nil {
		t.Fatalf("verify with a valid certificate: %v", err)
	}
	l.SetClientAuth(nil)
	if err := env.handshake(addr, nil, "http/1.1"); err != nil || ev.next(t) != nil {
		t.Fatalf("off again: %v", err)
	}
}

// The header encodings: URL-encoded PEM with +=/ left as they are.
func TestEscape(t *testing.T) {
	in := "-----BEGIN CERTIFICATE-----\nMIIB+a/b=c_d.e~f\n-----END CERTIFICATE-----\n"
	want := "-----BEGIN%20CERTIFICATE-----%0AMIIB+a/b=c_d.e~f%0A-----END%20CERTIFICATE-----%0A"
	if got := mtls.Escape(in); got != want {
		t.Errorf("Escape = %q, want %q", got, want)
	}
	if got := mtls.Escape("a%b:c,d\"é"); got != "a%25b%3Ac%2Cd%22%C3%A9" {
		t.Errorf("Escape of the rest = %q", got)
	}
}
