package fakemilvus

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
)

// restHandler is the HTTP/1.1 side of the shared port. It implements just
// enough of Milvus's /v2/vectordb API for balancer tests, plus a catch-all
// that reports how the request arrived.
func (r *Replica) restHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/vectordb/collections/list", r.restListCollections)
	mux.HandleFunc("/", r.restCatchAll)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.served.Add(1)
		w.Header().Set(ReplicaHeader, r.name)
		if err := r.delay(req.Context()); err != nil {
			return // client gone
		}
		mux.ServeHTTP(w, req)
	})
}

// restReply is Milvus's REST envelope: errors are HTTP 200 with a non-zero code.
type restReply struct {
	Code    int32  `json:"code"`
	Message string `json:"message,omitempty"`
	Data    any    `json:"data,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (r *Replica) restListCollections(w http.ResponseWriter, req *http.Request) {
	var body struct {
		DBName string `json:"dbName"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, req.Body, int64(r.opts.MaxRecvMsgSize)))
	if err != nil {
		writeJSON(w, http.StatusOK, restReply{Code: 1100, Message: "read body: " + err.Error()})
		return
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			writeJSON(w, http.StatusOK, restReply{Code: 1100, Message: "invalid JSON body: " + err.Error()})
			return
		}
	}
	resp, err := r.milvus.ShowCollections(req.Context(), &milvuspb.ShowCollectionsRequest{DbName: body.DBName})
	if err != nil {
		writeJSON(w, http.StatusOK, restReply{Code: 65535, Message: err.Error()})
		return
	}
	if st := resp.GetStatus(); st.GetCode() != 0 || st.GetErrorCode() != 0 {
		code := st.GetCode()
		if code == 0 {
			code = int32(st.GetErrorCode())
		}
		writeJSON(w, http.StatusOK, restReply{Code: code, Message: st.GetReason()})
		return
	}
	names := resp.GetCollectionNames()
	if names == nil {
		names = []string{} // Milvus answers "data":[] for an empty database
	}
	writeJSON(w, http.StatusOK, struct {
		Code int32    `json:"code"`
		Data []string `json:"data"`
	}{0, names})
}

// CatchAll is the JSON the catch-all REST handler answers, so tests can see
// the request as the replica received it.
type CatchAll struct {
	Code      int               `json:"code"`
	Replica   string            `json:"replica"`
	Proto     string            `json:"proto"`
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	Host      string            `json:"host"`
	BodyBytes int64             `json:"bodyBytes"`
	Forwarded map[string]string `json:"forwarded"`
}

func (r *Replica) restCatchAll(w http.ResponseWriter, req *http.Request) {
	n, err := io.Copy(io.Discard, http.MaxBytesReader(w, req.Body, int64(r.opts.MaxRecvMsgSize)))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, restReply{Code: 1100, Message: err.Error()})
		return
	}
	fwd := map[string]string{}
	for key, h := range map[string]string{"for": "X-Forwarded-For", "proto": "X-Forwarded-Proto", "port": "X-Forwarded-Port", "host": "X-Forwarded-Host"} {
		// Several X-Forwarded-For lines are one list (RFC 7230 §3.2.2).
		if vs := req.Header.Values(h); len(vs) > 0 {
			fwd[key] = strings.Join(vs, ", ")
		}
	}
	writeJSON(w, http.StatusOK, CatchAll{
		Replica:   r.name,
		Proto:     req.Proto,
		Method:    req.Method,
		Path:      req.URL.Path,
		Host:      req.Host,
		BodyBytes: n,
		Forwarded: fwd,
	})
}
