package fakemilvus

import (
	"strings"
	"testing"
	"time"
)

func TestControlEndpoint(t *testing.T) {
	c := startCluster(t, Options{Replicas: 2})
	lis, err := c.ServeControl("127.0.0.1:0")
	if err != nil {
		t.Fatalf("serve control: %v", err)
	}
	cl := NewControlClient(lis.Addr().String(), nil)
	ctx := testCtx(t)

	list, err := cl.Replicas(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list) != 2 || list[1].Name != "replica-1" || list[1].Addr != c.Replicas()[1].Addr() || !list[1].Up || !list[1].Serving {
		t.Fatalf("list = %+v", list)
	}

	r := c.Replicas()[1]
	tests := []struct {
		name  string
		do    func() (ReplicaStatus, error)
		check func(ReplicaStatus) bool
	}{
		{"latency", func() (ReplicaStatus, error) { return cl.SetLatency(ctx, 1, 250*time.Millisecond) },
			func(s ReplicaStatus) bool { return s.LatencyMS == 250 && r.Latency() == 250*time.Millisecond }},
		{"not serving", func() (ReplicaStatus, error) { return cl.SetServing(ctx, 1, false) },
			func(s ReplicaStatus) bool { return !s.Serving && !r.Serving() }},
		{"not ready", func() (ReplicaStatus, error) { return cl.SetNotReady(ctx, 1, true) },
			func(s ReplicaStatus) bool { return s.NotReady && r.NotReady() }},
		{"kill", func() (ReplicaStatus, error) { return cl.Kill(ctx, 1) },
			func(s ReplicaStatus) bool { return !s.Up && !r.Up() }},
		{"restart", func() (ReplicaStatus, error) { return cl.Restart(ctx, 1) },
			func(s ReplicaStatus) bool { return s.Up && r.Up() }},
		{"stop", func() (ReplicaStatus, error) { return cl.Stop(ctx, 1) },
			func(s ReplicaStatus) bool { return !s.Up && !r.Up() }},
		{"get one", func() (ReplicaStatus, error) { return cl.Replica(ctx, 0) },
			func(s ReplicaStatus) bool { return s.Name == "replica-0" && s.Up }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := tc.do()
			if err != nil {
				t.Fatalf("control: %v", err)
			}
			if !tc.check(st) {
				t.Errorf("unexpected status %+v", st)
			}
		})
	}

	errTests := []struct {
		name string
		do   func() (ReplicaStatus, error)
		want string
	}{
		{"no such replica", func() (ReplicaStatus, error) { return cl.Kill(ctx, 7) }, "404"},
		{"restart while up", func() (ReplicaStatus, error) { return cl.Restart(ctx, 0) }, "409"},
		{"negative latency", func() (ReplicaStatus, error) { return cl.SetLatency(ctx, 0, -time.Second) }, "400"},
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.do()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
		})
	}

	c.Close()
	if _, err := cl.Replicas(ctx); err == nil {
		t.Error("control endpoint still answers after Cluster.Close")
	}
}
