package proxy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

// ssl-redirect: REST gets a 301 to the same host, path and query on the
// HTTPS port (no port in the URL for 443); gRPC gets UNIMPLEMENTED.
func TestSSLRedirect(t *testing.T) {
	empty := route.Compile[*targetgroup.Group](nil, func(string) *targetgroup.Group { return nil })
	for _, tc := range []struct {
		port     int
		target   string
		wantLoc  string
		grpc     bool
		wantGRPC string
		wantCode int
	}{
		{443, "http://milvus.test/v2/vectordb/collections/list?x=1", "https://milvus.test/v2/vectordb/collections/list?x=1", false, "", http.StatusMovedPermanently},
		{8443, "http://milvus.test:80/a", "https://milvus.test:8443/a", false, "", http.StatusMovedPermanently},
		{443, "http://milvus.test/milvus.proto.milvus.MilvusService/Search", "", true, "12", http.StatusOK},
	} {
		h := NewHandler(80, false, func() *Table { return empty }, slog.New(slog.DiscardHandler))
		h.Redirect = func() int { return tc.port }
		r := httptest.NewRequest("POST", tc.target, nil)
		if tc.grpc {
			r.ProtoMajor = 2
			r.Header.Set("Content-Type", "application/grpc")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.wantCode || w.Header().Get("Location") != tc.wantLoc || w.Header().Get("Grpc-Status") != tc.wantGRPC {
			t.Errorf("%s: %d Location %q grpc-status %q; want %d %q %q", tc.target, w.Code, w.Header().Get("Location"), w.Header().Get("Grpc-Status"), tc.wantCode, tc.wantLoc, tc.wantGRPC)
		}
	}
}
