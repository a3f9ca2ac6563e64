package fakemilvus

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ReplicaStatus is one replica as the control endpoint reports it.
type ReplicaStatus struct {
	Index     int    `json:"index"`
	Name      string `json:"name"`
	Addr      string `json:"addr"`
	Served    int64  `json:"served"`
	Health    int64  `json:"healthChecks"`
	Serving   bool   `json:"serving"`
	NotReady  bool   `json:"notReady"`
	LatencyMS int64  `json:"latencyMs"`
	Latency   string `json:"latency"`
	Up        bool   `json:"up"`
}

// Status snapshots the replica.
func (r *Replica) Status() ReplicaStatus {
	lat := r.Latency()
	return ReplicaStatus{
		Index:     r.index,
		Name:      r.name,
		Addr:      r.Addr(),
		Served:    r.Served(),
		Health:    r.HealthChecks(),
		Serving:   r.Serving(),
		NotReady:  r.NotReady(),
		LatencyMS: lat.Milliseconds(),
		Latency:   lat.String(),
		Up:        r.Up(),
	}
}

// controlError is the body of every non-2xx control reply.
type controlError struct {
	Error string `json:"error"`
}

// ControlHandler serves the control API:
//
//	GET  /replicas
//	GET  /replicas/{i}
//	POST /replicas/{i}/kill | stop | restart
//	POST /replicas/{i}/serving?value=true|false
//	POST /replicas/{i}/notready?value=true|false
//	POST /replicas/{i}/latency?ms=N
//
// Every replica endpoint answers the replica's ReplicaStatus.
func (c *Cluster) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /replicas", func(w http.ResponseWriter, _ *http.Request) {
		out := make([]ReplicaStatus, len(c.replicas))
		for i, r := range c.replicas {
			out[i] = r.Status()
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /replicas/{i}", c.withReplica(func(*Replica, *http.Request) error { return nil }))
	mux.HandleFunc("POST /replicas/{i}/kill", c.withReplica(func(r *Replica, _ *http.Request) error { r.Kill(); return nil }))
	mux.HandleFunc("POST /replicas/{i}/stop", c.withReplica(func(r *Replica, _ *http.Request) error { r.Stop(); return nil }))
	mux.HandleFunc("POST /replicas/{i}/restart", c.withReplica(func(r *Replica, _ *http.Request) error { return r.Restart() }))
	mux.HandleFunc("POST /replicas/{i}/serving", c.withReplicaFlag((*Replica).SetServing))
	mux.HandleFunc("POST /replicas/{i}/notready", c.withReplicaFlag((*Replica).SetNotReady))
	mux.HandleFunc("POST /replicas/{i}/latency", c.withReplica(func(r *Replica, req *http.Request) error {
		ms, err := strconv.ParseInt(req.URL.Query().Get("ms"), 10, 64)
		if err != nil || ms < 0 {
			return badRequest{fmt.Errorf("ms: want a non-negative integer, got %q", req.URL.Query().Get("ms"))}
		}
		r.SetLatency(time.Duration(ms) * time.Millisecond)
		return nil
	}))
	return mux
}

type badRequest struct{ error }

func (c *Cluster) withReplica(act func(*Replica, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		i, err := strconv.Atoi(req.PathValue("i"))
		if err != nil || i < 0 || i >= len(c.replicas) {
			writeJSON(w, http.StatusNotFound, controlError{fmt.Sprintf("no replica %q (have 0..%d)", req.PathValue("i"), len(c.replicas)-1)})
			return
		}
		r := c.replicas[i]
		if err := act(r, req); err != nil {
			code := http.StatusConflict // e.g. restart while up
			if errors.As(err, new(badRequest)) {
				code = http.StatusBadRequest
			}
			writeJSON(w, code, controlError{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, r.Status())
	}
}

// withReplicaFlag serves a ?value=true|false endpoint: it hands the parsed
// value to set.
func (c *Cluster) withReplicaFlag(set func(*Replica, bool)) http.HandlerFunc {
	return c.withReplica(func(r *Replica, req *http.Request) error {
		v, err := strconv.ParseBool(req.URL.Query().Get("value"))
		if err != nil {
			return badRequest{fmt.Errorf("value: %w", err)}
		}
		set(r, v)
		return nil
	})
}

// ServeControl serves ControlHandler on addr (loopback recommended: it is
// unauthenticated) until the returned listener or the Cluster is closed.
func (c *Cluster) ServeControl(addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fakemilvus: control listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: c.ControlHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	cl := &controlListener{Listener: lis, srv: srv}
	c.mu.Lock()
	c.controls = append(c.controls, cl)
	c.mu.Unlock()
	c.opts.Logger.Info("control endpoint up", "addr", lis.Addr().String())
	return cl, nil
}

// controlListener closes the whole control server, keep-alive connections
// included, so a closed endpoint stops answering at once.
type controlListener struct {
	net.Listener
	srv *http.Server
}

func (l *controlListener) Close() error { return l.srv.Close() }
