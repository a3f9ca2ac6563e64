package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/l7lb/l7lb/internal/targetgroup"
)

// forwardREST forwards a non-gRPC request (Milvus's REST API, health
// pages) to one target. For GRPC target groups it goes as HTTP/1.1 to the
// same port: Milvus serves REST and gRPC on 19530 and tells them apart by
// protocol, so REST must not arrive as HTTP/2.
func (h *Handler) forwardREST(w http.ResponseWriter, r *http.Request, g *targetgroup.Group) {
	target, ok := g.Pick()
	if !ok {
		msg := fmt.Sprintf("l7lb: no reachable target in target group %s", g.Name())
		noteError(r, msg)
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	if rec := recordOf(r); rec != nil {
		rec.Target, rec.TargetStart = target.Addr, time.Now()
	}
	target.Meter.Start()
	target.Served.Add(1)
	defer target.Meter.Done()
	if limit := g.Config.MaxMessageBytes; limit > 0 && r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	rp := &httputil.ReverseProxy{
		Transport:     g.Pool.REST(),
		FlushInterval: -1, // stream replies as they come
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = g.Pool.Scheme()
			pr.Out.URL.Host = target.Addr
			pr.Out.Host = r.Host
			pr.SetXForwarded()
			pr.Out.Header["X-Forwarded-For"] = nil
			h.setForwarded(pr.Out.Header, r)
			setMTLS(pr.Out.Header, r)
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				http.Error(w, fmt.Sprintf("l7lb: request body larger than %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
				return
			}
			h.Log.Debug("REST upstream error", "target", target.Addr, "targetGroup", g.Name(), "error", err)
			msg := fmt.Sprintf("l7lb: target %s of target group %s: %v", target.Addr, g.Name(), err)
			noteError(r, msg)
			http.Error(w, msg, http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}
