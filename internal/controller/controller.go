package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// Controller keeps the runtime serving what the cluster's Ingresses say.
type Controller struct {
	opts Options
	log  *slog.Logger

	informers *informerSet
	ingresses networkinglisters.IngressLister
	classes   networkinglisters.IngressClassLister
	services  corelisters.ServiceLister
	slices    discoverylisters.EndpointSliceLister
	secrets   corelisters.SecretLister
	trustSecs corelisters.SecretLister // the trust stores'
	certs     *CertIndex
	trust     *TrustIndex

	broadcaster record.EventBroadcaster
	events      EventRecorder

	wake        chan struct{} // buffered 1: "something changed"
	leader      atomic.Bool
	freshLeader atomic.Bool
	ready       atomic.Bool
	synced      atomic.Int64 // snapshots applied, for tests and logs

	// Owned by the sync goroutine.
	lastGood  map[string]*networkingv1.Ingress
	lastEvent map[types.UID]string
}

// New sets up the informers; Run starts them.
func New(opts Options) (*Controller, error) {
	if opts.Client == nil {
		return nil, errors.New("controller: no Kubernetes client")
	}
	if opts.Namespace == "" {
		return nil, errors.New("controller: no namespace for the Lease and certificate store")
	}
	opts.defaults()
	c := &Controller{
		opts:      opts,
		log:       opts.Log,
		wake:      make(chan struct{}, 1),
		lastGood:  map[string]*networkingv1.Ingress{},
		lastEvent: map[types.UID]string{},
	}
	c.informers = newInformerSet(opts.Client, opts.Resync, opts.CertNamespace)
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.kick() },
		UpdateFunc: func(any, any) { c.kick() },
		DeleteFunc: func(any) { c.kick() },
	}
	for _, n := range c.informers.named() {
		if _, err := n.inf.AddEventHandler(handler); err != nil {
			return nil, fmt.Errorf("controller: adding %s event handler: %w", n.kind, err)
		}
	}
	c.ingresses = networkinglisters.NewIngressLister(c.informers.ingresses.GetIndexer())
	c.classes = networkinglisters.NewIngressClassLister(c.informers.classes.GetIndexer())
	c.services = corelisters.NewServiceLister(c.informers.services.GetIndexer())
	c.slices = discoverylisters.NewEndpointSliceLister(c.informers.slices.GetIndexer())
	c.secrets = corelisters.NewSecretLister(c.informers.secrets.GetIndexer())
	c.certs = newCertIndex(c.secrets, opts.CertNamespace)
	c.trustSecs = corelisters.NewSecretLister(c.informers.trust.GetIndexer())
	c.trust = newTrustIndex(c.trustSecs, opts.CertNamespace)

	c.broadcaster = record.NewBroadcaster()
	c.events = c.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "l7lb", Host: opts.Identity})
	return c, nil
}

// Certificates resolves certificate ARNs from the cluster's Secrets; it is
// the runtime's CertLoader (runtime.Options.Certs).
func (c *Controller) Certificates() *CertIndex { return c.certs }

// TrustStores resolves mutual-authentication trust stores from the trust
// store Secrets of the certificate namespace; it is the runtime's
// TrustStoreLoader (runtime.Options.TrustStores).
func (c *Controller) TrustStores() *TrustIndex { return c.trust }

// Ready reports whether the caches synced and a snapshot is serving.
func (c *Controller) Ready() bool { return c.ready.Load() }

// Applied counts the snapshots applied so far.
func (c *Controller) Applied() int64 { return c.synced.Load() }

func (c *Controller) kick() {
	select {
	case c.wake <- struct{}{}:
	default: // a sync is already pending; it will see this change too
	}
}

// Run watches the cluster and applies snapshots to rt until ctx ends.
func (c *Controller) Run(ctx context.Context, rt Applier) error {
	c.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.opts.Client.CoreV1().Events("")})
	defer c.broadcaster.Shutdown()
	c.informers.start(ctx)
	defer c.informers.shutdown() // the informers end with ctx
	if err := c.informers.waitForSync(ctx); err != nil {
		return err
	}
	c.log.Info("caches synced", "classes", c.opts.Classes, "namespace", c.opts.Namespace, "identity", c.opts.Identity)
	electDone := make(chan struct{})
	go func() {
		defer close(electDone)
		c.elect(ctx)
	}()
	defer func() { <-electDone }()

	c.kick()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			c.ready.Store(false)
			return nil
		case <-c.wake:
		case <-retry.C:
		}
		// Gather a burst of changes (a rollout touches many slices).
		select {
		case <-ctx.Done():
			continue
		case <-time.After(c.opts.Debounce):
		}
		select {
		case <-c.wake:
		default:
		}
		if err := c.sync(ctx, rt); err != nil {
			c.log.Error("sync failed; retrying in 5 s", "error", err)
			retry.Reset(5 * time.Second)
		}
	}
}

// sync builds and applies one snapshot, then (as leader) writes status and
// Events.
func (c *Controller) sync(ctx context.Context, rt Applier) error {
	v, err := c.gather()
	if err != nil {
		return err
	}
	r, err := c.translate(v)
	if err != nil {
		return err
	}
	if err := rt.Apply(r.snap); err != nil {
		return fmt.Errorf("applying snapshot: %w", err)
	}
	c.synced.Add(1)
	for k, ps := range r.failed {
		c.log.Warn("Ingress not served as is", "ingress", k, "lastGood", r.served[k] != nil, "problems", joinProblems(ps))
	}
	if !c.ready.Swap(true) {
		c.log.Info("serving", "ingresses", len(r.served))
	}
	for k, ing := range r.served {
		c.lastGood[k] = ing
	}
	for k := range c.lastGood {
		if v.served[k] == nil {
			delete(c.lastGood, k)
		}
	}
	c.certs.forget(func(key string) bool {
		ns, name := splitKey(key)
		_, err := c.secrets.Secrets(ns).Get(name)
		return err == nil
	})
	c.trust.forget(func(key string) bool {
		ns, name := splitKey(key)
		_, err := c.trustSecs.Secrets(ns).Get(name)
		return err == nil
	})
	if !c.leader.Load() {
		return nil
	}
	if c.freshLeader.Swap(false) {
		clear(c.lastEvent)
	}
	c.publishEvents(v, r)
	return c.publishStatus(ctx, v, r)
}
