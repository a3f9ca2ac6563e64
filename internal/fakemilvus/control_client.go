package fakemilvus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ControlClient drives a cluster's control endpoint from another process
// (tests, the demo).
type ControlClient struct {
	base string
	hc   *http.Client
}

// NewControlClient talks to addr ("127.0.0.1:19500" or "http://...").
// hc nil means a client with a 60 s timeout (a graceful stop can take a while).
func NewControlClient(addr string, hc *http.Client) *ControlClient {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &ControlClient{base: strings.TrimRight(addr, "/"), hc: hc}
}

// Replicas lists every replica.
func (c *ControlClient) Replicas(ctx context.Context) ([]ReplicaStatus, error) {
	var out []ReplicaStatus
	return out, c.do(ctx, http.MethodGet, "/replicas", &out)
}

// Replica reports replica i.
func (c *ControlClient) Replica(ctx context.Context, i int) (ReplicaStatus, error) {
	return c.act(ctx, http.MethodGet, i, "", nil)
}

// Kill kills replica i abruptly.
func (c *ControlClient) Kill(ctx context.Context, i int) (ReplicaStatus, error) {
	return c.act(ctx, http.MethodPost, i, "kill", nil)
}

// Stop stops replica i gracefully; it returns when the replica is down.
func (c *ControlClient) Stop(ctx context.Context, i int) (ReplicaStatus, error) {
	return c.act(ctx, http.MethodPost, i, "stop", nil)
}

// Restart brings replica i back on its address.
func (c *ControlClient) Restart(ctx context.Context, i int) (ReplicaStatus, error) {
	return c.act(ctx, http.MethodPost, i, "restart", nil)
}

// SetServing sets replica i's grpc.health.v1 answer.
func (c *ControlClient) SetServing(ctx context.Context, i int, v bool) (ReplicaStatus, error) {
	return c.act(ctx, http.MethodPost, i, "serving", url.Values{"value": {strconv.FormatBool(v)}})
}

// SetNotReady makes replica i's Milvus methods answer ServiceNotReady.
func (c *ControlClient) SetNotReady(ctx context.Context, i int, v bool) (ReplicaStatus, error) {
	return c.act(ctx, http.MethodPost, i, "notready", url.Values{"value": {strconv.FormatBool(v)}})
}

// SetLatency delays every reply of replica i (millisecond resolution).
func (c *ControlClient) SetLatency(ctx context.Context, i int, d time.Duration) (ReplicaStatus, error) {
	return c.act(ctx, http.MethodPost, i, "latency", url.Values{"ms": {strconv.FormatInt(d.Milliseconds(), 10)}})
}

func (c *ControlClient) act(ctx context.Context, method string, i int, action string, q url.Values) (ReplicaStatus, error) {
	path := "/replicas/" + strconv.Itoa(i)
	if action != "" {
		path += "/" + action
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var st ReplicaStatus
	return st, c.do(ctx, method, path, &st)
}

func (c *ControlClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("fakemilvus control: %s %s: %w", method, path, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("fakemilvus control: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("fakemilvus control: %s %s: read reply: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e controlError
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("fakemilvus control: %s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return fmt.Errorf("fakemilvus control: %s %s: %s", method, path, resp.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("fakemilvus control: %s %s: decode reply: %w", method, path, err)
	}
	return nil
}
