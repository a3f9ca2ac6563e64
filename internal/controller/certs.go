package controller

import (
	"crypto/tls"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/l7lb/l7lb/internal/certstore"
)

// secretARNPrefix names a spec.tls Secret as a certificate ARN:
// secretARNPrefix + "namespace/name". The controller adds these to an
// Ingress without certificate-arn, the way LBC discovers ACM certificates
// for spec.tls hosts; an Ingress may not write them itself (that would let
// it serve another namespace's Secret).
const secretARNPrefix = "arn:l7lb:kubernetes:secret:"

// CertIndex resolves certificate ARNs from Secrets: the store's (by the
// ARN annotation) and spec.tls ones (by secretARNPrefix). It implements
// runtime.CertLoader. Parsed certificates are cached by Secret
// resourceVersion, so a resync does not re-parse every key.
type CertIndex struct {
	secrets   corelisters.SecretLister
	namespace string // the store's

	mu    sync.Mutex
	cache map[string]cachedCert // by namespace/name
}

type cachedCert struct {
	version string
	cert    tls.Certificate
	err     error
}

func newCertIndex(secrets corelisters.SecretLister, namespace string) *CertIndex {
	return &CertIndex{secrets: secrets, namespace: namespace, cache: map[string]cachedCert{}}
}

// Load implements runtime.CertLoader.
func (ci *CertIndex) Load(arn string) (tls.Certificate, error) {
	s, err := ci.find(arn)
	if err != nil {
		return tls.Certificate{}, err
	}
	return ci.parse(s)
}

// Describe implements metrics.Certs and admin.Certs: the certificate's
// metadata, for the expiry metric and the admin API.
func (ci *CertIndex) Describe(arn string) (certstore.Certificate, error) {
	tc, err := ci.Load(arn)
	if err != nil {
		return certstore.Certificate{}, err
	}
	if tc.Leaf == nil {
		return certstore.Certificate{}, fmt.Errorf("certificate %s: no parsed leaf", arn)
	}
	d := certstore.DescribeLeaf(tc.Leaf)
	d.ARN = arn
	return d, nil
}

// Known reports whether arn resolves to a usable certificate; it is
// ingress.Options.KnownCertificate, so an unknown or broken one is a
// problem of the Ingress naming it, not of the whole snapshot.
func (ci *CertIndex) Known(arn string) bool {
	_, err := ci.Load(arn)
	return err == nil
}

func (ci *CertIndex) find(arn string) (*corev1.Secret, error) {
	if ref, ok := strings.CutPrefix(arn, secretARNPrefix); ok {
		ns, name, _ := strings.Cut(ref, "/")
		s, err := ci.secrets.Secrets(ns).Get(name)
		if err != nil {
			return nil, fmt.Errorf("TLS Secret %s: %w", ref, err)
		}
		return s, nil
	}
	sel, err := labels.Parse(certstore.KubeSelector(arn))
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", arn, err)
	}
	list, err := ci.secrets.Secrets(ci.namespace).List(sel)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", arn, err)
	}
	for _, s := range list {
		if got, err := certstore.SecretARN(s); err == nil && got == arn {
			return s, nil
		}
	}
	return nil, fmt.Errorf("certificate %s: %w in namespace %s (import it with l7lb cert import --kubernetes)", arn, certstore.ErrNotFound, ci.namespace)
}

func (ci *CertIndex) parse(s *corev1.Secret) (tls.Certificate, error) {
	key := s.Namespace + "/" + s.Name
	ci.mu.Lock()
	defer ci.mu.Unlock()
	if c, ok := ci.cache[key]; ok && c.version == s.ResourceVersion {
		return c.cert, c.err
	}
	cert, err := certstore.LoadSecret(s)
	ci.cache[key] = cachedCert{version: s.ResourceVersion, cert: cert, err: err}
	return cert, err
}

// forget drops cached certificates of Secrets that no longer exist.
func (ci *CertIndex) forget(exists func(key string) bool) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	for k := range ci.cache {
		if !exists(k) {
			delete(ci.cache, k)
		}
	}
}
