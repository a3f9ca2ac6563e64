package controller

import (
	"crypto/x509"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/l7lb/l7lb/internal/truststore"
)

// TrustIndex resolves mutual-authentication trust stores (ARN or name)
// from the trust store Secrets of the certificate namespace, as written by
// `l7lb truststore create --kubernetes`. It implements
// runtime.TrustStoreLoader. Pools are cached by Secret resourceVersion:
// every snapshot loads them again, and an edited bundle (a new version)
// is parsed once and verifies the handshakes that follow.
type TrustIndex struct {
	secrets   corelisters.SecretLister
	namespace string

	mu    sync.Mutex
	cache map[string]cachedTrust // by namespace/name
}

type cachedTrust struct {
	version string
	pool    *x509.CertPool
	ts      truststore.TrustStore
	err     error
}

func newTrustIndex(secrets corelisters.SecretLister, namespace string) *TrustIndex {
	return &TrustIndex{secrets: secrets, namespace: namespace, cache: map[string]cachedTrust{}}
}

// Load implements runtime.TrustStoreLoader.
func (ti *TrustIndex) Load(ref string) (*x509.CertPool, truststore.TrustStore, error) {
	name := ref
	if strings.HasPrefix(ref, "arn:") {
		n, _, err := truststore.ParseARN(ref)
		if err != nil {
			return nil, truststore.TrustStore{}, fmt.Errorf("%w: %w", truststore.ErrNotFound, err)
		}
		name = n
	} else if err := truststore.ValidName(ref); err != nil {
		return nil, truststore.TrustStore{}, fmt.Errorf("%w: %w", truststore.ErrNotFound, err)
	}
	sel, err := labels.Parse(truststore.KubeSelector(name))
	if err != nil {
		return nil, truststore.TrustStore{}, fmt.Errorf("trust store %s: %w", ref, err)
	}
	secs, err := ti.secrets.Secrets(ti.namespace).List(sel)
	if err != nil {
		return nil, truststore.TrustStore{}, fmt.Errorf("trust store %s: %w", ref, err)
	}
	s, err := truststore.PickSecret(secs, name, ti.namespace)
	if err != nil {
		return nil, truststore.TrustStore{}, err
	}
	key := s.Namespace + "/" + s.Name
	ti.mu.Lock()
	c, ok := ti.cache[key]
	if !ok || c.version != s.ResourceVersion {
		ts, certs, err := truststore.SecretTrustStore(s)
		c = cachedTrust{version: s.ResourceVersion, ts: ts, err: err}
		if err == nil {
			c.pool = truststore.Pool(certs)
		}
		ti.cache[key] = c
	}
	ti.mu.Unlock()
	if c.err != nil {
		return nil, truststore.TrustStore{}, c.err
	}
	if ref != name && c.ts.ARN != ref {
		// The name was deleted and created again: another trust store,
		// as on the ALB.
		return nil, truststore.TrustStore{}, fmt.Errorf("truststore: %w: %s (namespace %s holds %s under that name)", truststore.ErrNotFound, ref, ti.namespace, c.ts.ARN)
	}
	return c.pool, c.ts, nil
}

// Known reports whether ref resolves to a usable trust store; it is
// ingress.Options.KnownTrustStore, so a missing or broken one is a problem
// of the Ingress naming it, not of the whole snapshot.
func (ti *TrustIndex) Known(ref string) bool {
	_, _, err := ti.Load(ref)
	return err == nil
}

// forget drops cached pools of Secrets that no longer exist.
func (ti *TrustIndex) forget(exists func(key string) bool) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	for k := range ti.cache {
		if !exists(k) {
			delete(ti.cache, k)
		}
	}
}
