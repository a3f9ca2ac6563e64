package fakemilvus

import (
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/l7lb/l7lb/internal/fakemilvus/engine"
)

// Cluster is one stand-in Milvus cluster: replicas sharing one engine.
type Cluster struct {
	opts     Options
	replicas []*Replica

	mu       sync.Mutex
	controls []net.Listener
}

// Start listens on every replica and serves until Close.
func Start(opts Options) (*Cluster, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts}
	for i := 0; i < opts.Replicas; i++ {
		port := 0
		if i < len(opts.Ports) {
			port = opts.Ports[i]
		}
		r := newReplica(i, net.JoinHostPort(opts.Host, strconv.Itoa(port)), &c.opts)
		if err := r.start(); err != nil {
			c.Close()
			return nil, fmt.Errorf("fakemilvus: start %s: %w", r.name, err)
		}
		c.replicas = append(c.replicas, r)
	}
	return c, nil
}

// Replicas returns the replicas in index order.
func (c *Cluster) Replicas() []*Replica { return append([]*Replica(nil), c.replicas...) }

// Engine is the engine shared by all replicas.
func (c *Cluster) Engine() *engine.Engine { return c.opts.Engine }

// Addrs lists the replica addresses in index order.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.replicas))
	for i, r := range c.replicas {
		out[i] = r.Addr()
	}
	return out
}

// Close kills every replica (abruptly; Stop replicas first for a graceful
// shutdown) and closes the control listeners.
func (c *Cluster) Close() {
	c.mu.Lock()
	controls := c.controls
	c.controls = nil
	c.mu.Unlock()
	for _, l := range controls {
		l.Close()
	}
	for _, r := range c.replicas {
		r.Kill()
	}
}
