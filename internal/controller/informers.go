package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/l7lb/l7lb/internal/truststore"
)

// The informers are built here from cache.ListWatch rather than taken
// from k8s.io/client-go/informers: that package's factory, and every
// generated informer through informers/internalinterfaces, takes the whole
// kubernetes.Interface, so using it links every API group's client,
// informer and lister into the binary (issue 13). What follows is what the
// generated NewFilteredXxxInformer functions do, for the kinds the
// controller watches, over the narrow Client.

// listWatch is one kind's list and watch calls, all namespaces; L is the
// kind's list type.
type listWatch[L k8sruntime.Object] struct {
	list  func(ctx context.Context, opts metav1.ListOptions) (L, error)
	watch func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// newInformer is a generated informer's constructor: a shared index
// informer with the namespace index, tweak applied to every list and watch
// (nil: none). client decides, as in the generated code, whether the
// reflector may use watch-list semantics (the fake clientset cannot).
func newInformer[L k8sruntime.Object](client Client, lw listWatch[L], obj k8sruntime.Object, resync time.Duration, tweak func(*metav1.ListOptions)) cache.SharedIndexInformer {
	opts := func(o metav1.ListOptions) metav1.ListOptions {
		if tweak != nil {
			tweak(&o)
		}
		return o
	}
	list := func(ctx context.Context, o metav1.ListOptions) (k8sruntime.Object, error) {
		return lw.list(ctx, opts(o))
	}
	watchf := func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return lw.watch(ctx, opts(o))
	}
	return cache.NewSharedIndexInformerWithOptions(
		cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
			ListFunc:             func(o metav1.ListOptions) (k8sruntime.Object, error) { return list(context.Background(), o) },
			WatchFunc:            func(o metav1.ListOptions) (watch.Interface, error) { return watchf(context.Background(), o) },
			ListWithContextFunc:  list,
			WatchFuncWithContext: watchf,
		}, client),
		obj,
		cache.SharedIndexInformerOptions{
			ResyncPeriod: resync,
			Indexers:     cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		},
	)
}

// informerSet is the controller's informers: what the two shared informer
// factories held before, the Secrets one with its field selector, and the
// trust store Secrets of the certificate namespace.
type informerSet struct {
	ingresses, classes, services, slices, secrets cache.SharedIndexInformer
	// trust watches only trustNS, by label: trust stores are Opaque
	// Secrets, which the TLS field selector of secrets keeps out.
	trust cache.SharedIndexInformer
	wg    sync.WaitGroup
}

func newInformerSet(client Client, resync time.Duration, trustNS string) *informerSet {
	all := metav1.NamespaceAll
	// Only TLS Secrets: spec.tls ones and the certificate store's. The
	// field selector keeps every other Secret out of memory.
	tlsOnly := func(lo *metav1.ListOptions) {
		lo.FieldSelector = fields.OneTermEqualSelector("type", string(corev1.SecretTypeTLS)).String()
	}
	ings := client.NetworkingV1().Ingresses(all)
	ics := client.NetworkingV1().IngressClasses()
	svcs := client.CoreV1().Services(all)
	eps := client.DiscoveryV1().EndpointSlices(all)
	secs := client.CoreV1().Secrets(all)
	trustSecs := client.CoreV1().Secrets(trustNS)
	trustOnly := func(lo *metav1.ListOptions) { lo.LabelSelector = truststore.KubeSelector("") }
	return &informerSet{
		ingresses: newInformer(client, listWatch[*networkingv1.IngressList]{ings.List, ings.Watch}, &networkingv1.Ingress{}, resync, nil),
		classes:   newInformer(client, listWatch[*networkingv1.IngressClassList]{ics.List, ics.Watch}, &networkingv1.IngressClass{}, resync, nil),
		services:  newInformer(client, listWatch[*corev1.ServiceList]{svcs.List, svcs.Watch}, &corev1.Service{}, resync, nil),
		slices:    newInformer(client, listWatch[*discoveryv1.EndpointSliceList]{eps.List, eps.Watch}, &discoveryv1.EndpointSlice{}, resync, nil),
		secrets:   newInformer(client, listWatch[*corev1.SecretList]{secs.List, secs.Watch}, &corev1.Secret{}, resync, tlsOnly),
		trust:     newInformer(client, listWatch[*corev1.SecretList]{trustSecs.List, trustSecs.Watch}, &corev1.Secret{}, resync, trustOnly),
	}
}

// named lists the informers with the kind each watches, for errors.
func (s *informerSet) named() []struct {
	kind string
	inf  cache.SharedIndexInformer
} {
	return []struct {
		kind string
		inf  cache.SharedIndexInformer
	}{
		{"Ingress", s.ingresses}, {"IngressClass", s.classes}, {"Service", s.services},
		{"EndpointSlice", s.slices}, {"Secret", s.secrets}, {"trust store Secret", s.trust},
	}
}

// start runs every informer until ctx ends; shutdown waits for them.
func (s *informerSet) start(ctx context.Context) {
	for _, n := range s.named() {
		s.wg.Go(func() { n.inf.RunWithContext(ctx) })
	}
}

func (s *informerSet) shutdown() { s.wg.Wait() }

// waitForSync waits until every informer has listed its kind once; the
// error names those that had not when ctx ended.
func (s *informerSet) waitForSync(ctx context.Context) error {
	named := s.named()
	checks := make([]cache.DoneChecker, 0, len(named))
	for _, n := range named {
		checks = append(checks, n.inf.HasSyncedChecker())
	}
	cache.WaitFor(ctx, "" /* no logging */, checks...)
	var unsynced []string
	for _, n := range named {
		if !n.inf.HasSynced() {
			unsynced = append(unsynced, n.kind)
		}
	}
	if len(unsynced) > 0 {
		return fmt.Errorf("controller: cache of %v did not sync: %w", unsynced, context.Cause(ctx))
	}
	return nil
}
