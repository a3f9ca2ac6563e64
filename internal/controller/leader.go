package controller

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// IsLeader reports whether this replica writes status and Events now.
func (c *Controller) IsLeader() bool { return c.leader.Load() }

// elect campaigns for the Lease until ctx ends. Losing the Lease (the API
// server unreachable past the renew deadline) only stops the writing: the
// replica keeps serving and campaigns again. On ctx's end the Lease is
// released, so the next replica takes over without waiting it out.
func (c *Controller) elect(ctx context.Context) {
	if c.opts.LeaseName == "" {
		c.becomeLeader()
		<-ctx.Done()
		return
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.opts.Namespace, Name: c.opts.LeaseName},
		Client:     c.opts.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.opts.Identity},
	}
	for ctx.Err() == nil { // bounded by ctx: one campaign per lost term
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   c.opts.LeaseDuration,
			RenewDeadline:   c.opts.RenewDeadline,
			RetryPeriod:     c.opts.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            c.opts.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) { c.becomeLeader() },
				OnStoppedLeading: func() {
					c.leader.Store(false)
					c.log.Info("no longer the leader", "identity", c.opts.Identity)
				},
				OnNewLeader: func(id string) {
					if id != c.opts.Identity {
						c.log.Info("leader", "identity", id)
					}
				},
			},
		})
		select {
		case <-ctx.Done():
		case <-time.After(c.opts.RetryPeriod):
		}
	}
}

func (c *Controller) becomeLeader() {
	c.leader.Store(true)
	c.log.Info("leading: writing Ingress status and Events", "identity", c.opts.Identity)
	// What followers skipped (status, Events) is written on the next sync.
	c.freshLeader.Store(true)
	c.kick()
}
