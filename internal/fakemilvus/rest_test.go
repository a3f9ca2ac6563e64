package fakemilvus

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

// standIn is a minimal MilvusService so the REST tests do not depend on the
// engine's schema rules.
type standIn struct {
	milvuspb.UnimplementedMilvusServiceServer
	notReady func() bool
	names    []string
}

func (s *standIn) ShowCollections(_ context.Context, req *milvuspb.ShowCollectionsRequest) (*milvuspb.ShowCollectionsResponse, error) {
	if s.notReady() {
		return &milvuspb.ShowCollectionsResponse{Status: &commonpb.Status{
			ErrorCode: commonpb.ErrorCode_NotReadyServe, Code: 1, Reason: "service not ready", Retriable: true,
		}}, nil
	}
	if req.GetDbName() == "empty" {
		return &milvuspb.ShowCollectionsResponse{Status: &commonpb.Status{}}, nil
	}
	return &milvuspb.ShowCollectionsResponse{Status: &commonpb.Status{}, CollectionNames: s.names}, nil
}

func standInCluster(t *testing.T, names ...string) *Cluster {
	return startCluster(t, Options{Replicas: 2, MilvusServer: func(notReady func() bool) milvuspb.MilvusServiceServer {
		return &standIn{notReady: notReady, names: names}
	}})
}

func TestRESTListCollections(t *testing.T) {
	c := standInCluster(t, "books", "films")
	tests := []struct {
		name     string
		body     string
		notReady bool
		want     string
	}{
		{"default db", `{}`, false, `{"code":0,"data":["books","films"]}`},
		{"empty body", ``, false, `{"code":0,"data":["books","films"]}`},
		{"empty db lists []", `{"dbName":"empty"}`, false, `{"code":0,"data":[]}`},
		{"not ready", `{}`, true, `{"code":1,"message":"service not ready"}`},
		{"bad json", `{`, false, `{"code":1100,"message":"invalid JSON body: unexpected end of JSON input"}`},
	}
	for _, r := range c.Replicas() {
		for _, tc := range tests {
			t.Run(r.Name()+"/"+tc.name, func(t *testing.T) {
				r.SetNotReady(tc.notReady)
				defer r.SetNotReady(false)
				resp, err := http.Post("http://"+r.Addr()+"/v2/vectordb/collections/list", "application/json", strings.NewReader(tc.body))
				if err != nil {
					t.Fatalf("post: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("HTTP %d, want 200 (Milvus reports errors in the body)", resp.StatusCode)
				}
				if got := strings.TrimSpace(string(body)); got != tc.want {
					t.Errorf("body = %s, want %s", got, tc.want)
				}
				if got := resp.Header.Get(ReplicaHeader); got != r.Name() {
					t.Errorf("%s = %q, want %q", ReplicaHeader, got, r.Name())
				}
			})
		}
	}
}

// TestRESTCatchAllIsHTTP1OnSharedPort sends a raw HTTP/1.1 request to the
// port that also serves gRPC and checks what the server saw.
func TestRESTCatchAllIsHTTP1OnSharedPort(t *testing.T) {
	c := standInCluster(t)
	r := c.Replicas()[1]
	tests := []struct {
		name    string
		request string
		want    CatchAll
	}{
		{
			name: "POST with forwarded headers",
			request: "POST /v2/vectordb/entities/search HTTP/1.1\r\nHost: milvus.example\r\n" +
				"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n" +
				"Content-Length: 5\r\nConnection: close\r\n\r\nhello",
			want: CatchAll{Replica: "replica-1", Proto: "HTTP/1.1", Method: "POST", Path: "/v2/vectordb/entities/search",
				Host: "milvus.example", BodyBytes: 5, Forwarded: map[string]string{"for": "10.0.0.1, 10.0.0.2", "proto": "https", "port": "443"}},
		},
		{
			name:    "GET without body",
			request: "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			want:    CatchAll{Replica: "replica-1", Proto: "HTTP/1.1", Method: "GET", Path: "/healthz", Host: "x", Forwarded: map[string]string{}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", r.Addr(), 5*time.Second)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, tc.request); err != nil {
				t.Fatalf("write: %v", err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			defer resp.Body.Close()
			if resp.Proto != "HTTP/1.1" || resp.Header.Get(ReplicaHeader) != r.Name() {
				t.Errorf("response %s with %s=%q", resp.Proto, ReplicaHeader, resp.Header.Get(ReplicaHeader))
			}
			var got CatchAll
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.Replica != tc.want.Replica || got.Proto != tc.want.Proto || got.Method != tc.want.Method ||
				got.Path != tc.want.Path || got.Host != tc.want.Host || got.BodyBytes != tc.want.BodyBytes ||
				len(got.Forwarded) != len(tc.want.Forwarded) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			for k, v := range tc.want.Forwarded {
				if got.Forwarded[k] != v {
					t.Errorf("forwarded[%s] = %q, want %q", k, got.Forwarded[k], v)
				}
			}
		})
	}
	// The same port still speaks gRPC.
	if _, err := echo.NewClient(dial(t, r.Addr())).Unary(testCtx(t), nil); err != nil {
		t.Errorf("gRPC on the shared port: %v", err)
	}
}

// TestRESTAndGRPCConcurrently interleaves both protocols on one port.
func TestRESTAndGRPCConcurrently(t *testing.T) {
	c := standInCluster(t, "c")
	r := c.Replicas()[0]
	ec := echo.NewClient(dial(t, r.Addr(), grpc.WithDefaultCallOptions()))
	hc := &http.Client{Timeout: 5 * time.Second}
	errc := make(chan error, 40)
	for i := 0; i < 20; i++ {
		go func() { _, err := ec.Unary(testCtx(t), []byte("x")); errc <- err }()
		go func() {
			resp, err := hc.Post("http://"+r.Addr()+"/v2/vectordb/collections/list", "application/json", nil)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
	}
	for i := 0; i < 40; i++ {
		if err := <-errc; err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if got := r.Served(); got != 40 {
		t.Errorf("Served = %d, want 40", got)
	}
}

// TestRESTWithEngine shows the engine is shared: a collection created over
// gRPC on one replica is listed over REST on another.
func TestRESTWithEngine(t *testing.T) {
	c := startCluster(t, Options{Replicas: 2})
	ctx := testCtx(t)
	resp, err := http.Post("http://"+c.Replicas()[1].Addr()+"/v2/vectordb/collections/list", "application/json", strings.NewReader(`{"dbName":"default"}`))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := strings.TrimSpace(string(body)); got != `{"code":0,"data":[]}` {
		t.Errorf("empty engine lists %s", got)
	}
	schema, err := proto.Marshal(&schemapb.CollectionSchema{Name: "books", Fields: []*schemapb.FieldSchema{
		{Name: "id", DataType: schemapb.DataType_Int64, IsPrimaryKey: true},
		{Name: "v", DataType: schemapb.DataType_FloatVector, TypeParams: []*commonpb.KeyValuePair{{Key: "dim", Value: "4"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	mc := milvuspb.NewMilvusServiceClient(dial(t, c.Replicas()[0].Addr()))
	st, err := mc.CreateCollection(ctx, &milvuspb.CreateCollectionRequest{CollectionName: "books", Schema: schema})
	if err != nil || st.GetCode() != 0 {
		t.Fatalf("CreateCollection over gRPC: %v %v", st, err)
	}
	resp, err = http.Post("http://"+c.Replicas()[1].Addr()+"/v2/vectordb/collections/list", "application/json", nil)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := strings.TrimSpace(string(body)); got != `{"code":0,"data":["books"]}` {
		t.Errorf("after create, replica-1 lists %s", got)
	}
}
