package e2e

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/l7lb/l7lb/internal/fakemilvus"
)

// TestRESTReachesBackendAsHTTP1 sends Milvus REST requests to the same
// host:443 as gRPC, once over HTTP/1.1 and once over h2 (as curl does by
// default), and checks that both reach the Milvus port as HTTP/1.1 with
// X-Forwarded-* headers.
func TestRESTReachesBackendAsHTTP1(t *testing.T) {
	e := startEnv(t, envOptions{})
	tlsConf := &tls.Config{RootCAs: e.ca.Pool(), ServerName: serverName}
	clients := map[string]*http.Client{
		"HTTP/1.1": {Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}},
		"HTTP/2.0": {Timeout: 10 * time.Second, Transport: &http2.Transport{TLSClientConfig: tlsConf}},
	}
	for proto, c := range clients {
		t.Run(proto, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, "https://"+e.addr+"/v2/vectordb/entities/search", strings.NewReader(`{"collectionName":"x"}`))
			req.Host = serverName
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.Proto != proto {
				t.Fatalf("client side spoke %s, want %s", resp.Proto, proto)
			}
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if resp.Header.Get(fakemilvus.ReplicaHeader) == "" {
				t.Errorf("no %s header", fakemilvus.ReplicaHeader)
			}
			var got struct {
				Proto     string            `json:"proto"`
				Method    string            `json:"method"`
				Path      string            `json:"path"`
				BodyBytes int               `json:"bodyBytes"`
				Forwarded map[string]string `json:"forwarded"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got.Proto != "HTTP/1.1" || got.Method != http.MethodPost || got.Path != "/v2/vectordb/entities/search" || got.BodyBytes != 22 {
				t.Errorf("backend saw %+v; want a 22-byte HTTP/1.1 POST to the same path", got)
			}
			t.Logf("backend saw %+v", got)
			// The backend reports X-Forwarded-For/-Proto/-Port as for/proto/port.
			if got.Forwarded["for"] != "127.0.0.1" || got.Forwarded["proto"] != "https" || got.Forwarded["port"] != "443" {
				t.Errorf("X-Forwarded-* = %v", got.Forwarded)
			}
		})
	}
}
