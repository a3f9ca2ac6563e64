package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/lbtest"
)

// TestInboundCIDRsAndDualStackSDK drives inbound-cidrs and
// ip-address-type through the Go SDK, over reloads of one running l7lb:
//   - inbound-cidrs 10.0.0.0/8: the SDK on 127.0.0.1 cannot connect, and
//     no RPC reaches a replica;
//   - 127.0.0.0/8 and ::1/128 with dualstack: it connects over IPv4, and
//     over [::1] at the same port;
//   - ipv4 again: [::1] is no longer served; IPv4 clients keep working,
//     and the connection opened before the reload too.
func TestInboundCIDRsAndDualStackSDK(t *testing.T) {
	annotations := func(cidrs, ipType string) string {
		return "    alb.ingress.kubernetes.io/inbound-cidrs: " + cidrs + "\n    alb.ingress.kubernetes.io/ip-address-type: " + ipType
	}
	doc := func(cidrs, ipType string) string {
		return lbtest.Ingress(`[{"HTTPS":443}]`, annotations(cidrs, ipType))
	}
	lb, cl := lbtest.StartWithCluster(t, fakemilvus.Options{Replicas: 2}, lbtest.Options{Ingress: doc("10.0.0.0/8", "ipv4")})
	endpoints := map[string][]config.Endpoint{lbtest.Service: lbtest.Endpoints(cl.Addrs()...)}
	addr := lb.Addr(443)
	_, port, _ := net.SplitHostPort(addr)
	v6 := net.JoinHostPort("::1", port)

	// list connects the SDK to a and lists collections; short deadlines:
	// a refused client would otherwise wait out the SDK's dial retries.
	list := func(a string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := demo.Connect(ctx, a, serverName, lb.CA.Pool(), grpc.WithReturnConnectionError())
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		_, err = c.ListCollections(ctx, milvusclient.NewListCollectionOption())
		return err
	}
	served := func() int64 { return lbtest.Served(cl) }

	before := served()
	if err := list(addr); err == nil {
		t.Fatal("inbound-cidrs 10.0.0.0/8: the SDK on 127.0.0.1 was served")
	} else {
		t.Logf("outside inbound-cidrs: %v", err)
	}
	if n := served() - before; n != 0 {
		t.Fatalf("outside inbound-cidrs: %d RPCs reached a replica", n)
	}

	if err := lb.Reload(doc("127.0.0.0/8,::1/128", "dualstack"), endpoints); err != nil {
		t.Fatal(err)
	}
	if err := list(addr); err != nil {
		t.Fatalf("inside inbound-cidrs, IPv4: %v", err)
	}
	ipv6 := true
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		ipv6 = false
		t.Logf("no IPv6 loopback here (%v): the dualstack part is not checked", err)
	} else {
		ln.Close()
	}
	if ipv6 {
		if err := list(v6); err != nil {
			t.Fatalf("dualstack: the SDK on [::1] at the listener's port: %v", err)
		}
	}

	// A client connected before the next reload keeps its connection.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kept, err := demo.Connect(ctx, addr, serverName, lb.CA.Pool())
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close(context.Background())
	if err := lb.Reload(doc("127.0.0.0/8,::1/128", "ipv4"), endpoints); err != nil {
		t.Fatal(err)
	}
	if ipv6 {
		if err := list(v6); err == nil {
			t.Fatal("ipv4 again: the SDK on [::1] was still served")
		}
	}
	if err := list(addr); err != nil {
		t.Fatalf("ipv4 again, IPv4: %v", err)
	}
	for i := range 5 {
		if _, err := kept.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil {
			t.Fatalf("connection opened before the reload, call %d: %v", i, err)
		}
	}
}

// TestSSLRedirectE2E: with ssl-redirect, a REST request on the HTTP
// listener gets the ALB's 301 to HTTPS, a gRPC client on it (h2c) gets
// UNIMPLEMENTED naming the TLS port, and the SDK over TLS is served.
func TestSSLRedirectE2E(t *testing.T) {
	doc := lbtest.Ingress(`[{"HTTP":80},{"HTTPS":443}]`, "    alb.ingress.kubernetes.io/ssl-redirect: '443'")
	lb, _ := lbtest.StartWithCluster(t, fakemilvus.Options{Replicas: 1}, lbtest.Options{Ingress: doc})

	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest("POST", "http://"+lb.Addr(80)+"/v2/vectordb/collections/list?x=1", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = serverName
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://" + serverName + "/v2/vectordb/collections/list?x=1"; resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Fatalf("REST on port 80: %d Location %q; want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	cc, err := grpc.NewClient(lb.Addr(80), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(serverName))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = milvuspb.NewMilvusServiceClient(cc).ListDatabases(ctx, &milvuspb.ListDatabasesRequest{})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(status.Convert(err).Message(), "port 443") {
		t.Fatalf("gRPC on port 80: %v; want UNIMPLEMENTED naming port 443", err)
	}

	c, err := demo.Connect(ctx, lb.Addr(443), serverName, lb.CA.Pool())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil {
		t.Fatalf("SDK over TLS on 443: %v", err)
	}
}
