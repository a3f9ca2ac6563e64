package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

const plainAndTLSIngress = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  namespace: milvus
  name: milvus-demo
  annotations:
    alb.ingress.kubernetes.io/backend-protocol-version: GRPC
    alb.ingress.kubernetes.io/listen-ports: '[{"HTTP":80},{"HTTPS":443}]'
    alb.ingress.kubernetes.io/certificate-arn: "{{ARN}}"
spec:
  ingressClassName: alb
  rules:
    - http:
        paths:
        - path: /
          pathType: Prefix
          backend:
            service:
              name: milvus-demo
              port:
                number: 19530
`

// TestHTTPListener: a plaintext HTTP listener takes gRPC as h2c with prior
// knowledge and REST as HTTP/1.1 on the same port, balanced per RPC.
func TestHTTPListener(t *testing.T) {
	e := startEnv(t, envOptions{ingress: plainAndTLSIngress})
	plain := e.addrs[80].String()
	cc, err := grpc.NewClient(plain, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cli := echo.NewClient(cc)
	before := e.served()
	for i := 0; i < 30; i++ {
		if _, err := cli.Unary(ctxT(t, 5*time.Second), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	after := e.served()
	for i := range after {
		if after[i]-before[i] != 10 {
			t.Errorf("replica-%d served %d of 30 h2c RPCs, want 10", i, after[i]-before[i])
		}
	}

	resp, err := (&http.Client{Timeout: 5 * time.Second}).Post("http://"+plain+"/v2/vectordb/collections/list", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(fakemilvus.ReplicaHeader) == "" || !strings.Contains(string(body), `"code":0`) {
		t.Fatalf("REST over HTTP/1.1: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}
