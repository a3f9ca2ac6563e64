package fakemilvus

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"

	"github.com/l7lb/l7lb/internal/fakemilvus/engine"
)

// ReplicaHeader names the replica on every gRPC and REST reply.
const ReplicaHeader = "x-milvus-replica"

// Milvus proxy defaults that a balancer has to live with.
const (
	// KeepaliveMinTime is the shortest ping interval the server tolerates.
	KeepaliveMinTime = 5 * time.Second
	// KeepaliveTime and KeepaliveTimeout are the server's own idle pings.
	KeepaliveTime    = 60 * time.Second
	KeepaliveTimeout = 10 * time.Second
	// DefaultMaxRecvMsgSize is proxy.grpc.serverMaxRecvSize (64 MiB).
	DefaultMaxRecvMsgSize = 64 << 20
	// MaxSendMsgSize is proxy.grpc.serverMaxSendSize (256 MiB).
	MaxSendMsgSize = 256 << 20
	// DefaultStopGrace bounds a graceful Stop before in-flight RPCs are cut.
	DefaultStopGrace = 30 * time.Second
)

// Options configure Start. The zero value starts three replicas on random
// loopback ports with a fresh engine.
type Options struct {
	// Replicas is the number of replica listeners (default 3, or len(Ports)).
	Replicas int
	// Name, when set, prefixes the replicas' names ("<Name>/replica-<i>"),
	// so that a test running two clusters behind one balancer can tell from
	// the ReplicaHeader which cluster served an RPC.
	Name string
	// Host to listen on (default 127.0.0.1).
	Host string
	// Ports per replica; missing entries and 0 mean any free port.
	Ports []int
	// Engine shared by all replicas; nil creates a new one.
	Engine *engine.Engine
	// Logger for lifecycle events; nil discards.
	Logger *slog.Logger
	// MaxRecvMsgSize overrides DefaultMaxRecvMsgSize when > 0.
	MaxRecvMsgSize int
	// StopGrace overrides DefaultStopGrace when > 0.
	StopGrace time.Duration
	// MilvusServer, when set, replaces Engine.Server as the per-replica
	// MilvusService implementation (a stand-in for tests). notReady reports
	// the replica's SetNotReady state.
	MilvusServer func(notReady func() bool) milvuspb.MilvusServiceServer
}

func (o Options) withDefaults() (Options, error) {
	if o.Replicas < 0 {
		return o, fmt.Errorf("fakemilvus: replicas %d < 0", o.Replicas)
	}
	if o.Replicas == 0 {
		o.Replicas = len(o.Ports)
		if o.Replicas == 0 {
			o.Replicas = 3
		}
	}
	if len(o.Ports) > o.Replicas {
		return o, fmt.Errorf("fakemilvus: %d ports given for %d replicas", len(o.Ports), o.Replicas)
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Engine == nil {
		o.Engine = engine.New()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxRecvMsgSize <= 0 {
		o.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	if o.MilvusServer == nil {
		e := o.Engine
		o.MilvusServer = func(notReady func() bool) milvuspb.MilvusServiceServer {
			return e.Server(engine.ServerOptions{NotReady: notReady})
		}
	}
	return o, nil
}
