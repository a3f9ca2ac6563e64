package controller

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/truststore"
)

// trustSecret is a trust store Secret as `truststore create --kubernetes`
// writes it (KubeStore on a fake clientset), with its ARN.
func trustSecret(t *testing.T, ns, name string, ca *pki.CA) (*corev1.Secret, string) {
	t.Helper()
	client := fake.NewClientset()
	ts, _, err := truststore.KubeStore{Client: client, Namespace: ns}.Create(context.Background(), name, ca.CertPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.CoreV1().Secrets(ns).Get(context.Background(), truststore.KubeSecretName(name), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.ResourceVersion = "1"
	return s, ts.ARN
}

// verifies reports whether pool verifies a client certificate of ca.
func verifies(t *testing.T, pool *x509.CertPool, ca *pki.CA) bool {
	t.Helper()
	leaf, err := ca.Issue([]string{"client"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = leaf.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

func mtlsIngress(name, trustStore string) *networkingv1.Ingress {
	i := tlsIngress(name, "demo-tls")
	i.Annotations["alb.ingress.kubernetes.io/mutual-authentication"] = `[{"port":443,"mode":"verify","trustStore":"` + trustStore + `"}]`
	return i
}

// TestTrustStoreSecrets: an Ingress's mutual-authentication verify names a
// trust store Secret of the certificate namespace by ARN or name; the
// runtime's loader gives its CAs. A trust store that is missing, in
// another namespace, or of another id is the Ingress's problem.
func TestTrustStoreSecrets(t *testing.T) {
	caA := newTestCA(t, "Clients A")
	inStore, arn := trustSecret(t, "l7lb", "clients", caA)
	elsewhere, otherARN := trustSecret(t, "milvus", "elsewhere", caA)
	cert, _ := tlsSecret(t, testNS, "demo-tls", "demo.milvus.io")
	tests := []struct {
		name, ref string
		says      string // the Warning when not served
	}{
		{"by ARN", arn, ""},
		{"by name", "clients", ""},
		{"missing", "absent", "trust store absent not found"},
		{"other namespace", otherARN, "not found"},
		{"same name, other id", truststore.ARN("clients", "0123456789abcdef"), "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{}, objects(backend("milvus-demo"),
				[]k8sruntime.Object{l7lbClass(), cert, inStore, elsewhere, mtlsIngress("demo", tt.ref)})...)
			snap := h.sync()
			l := listener(snap, 443)
			ev := eventsFor(h.rec.take(), "milvus/demo")
			if tt.says != "" {
				if l != nil {
					t.Fatalf("served: %+v", l.MutualAuthentication)
				}
				if len(ev) != 1 || ev[0].typ != corev1.EventTypeWarning || !strings.Contains(ev[0].msg, tt.says) {
					t.Fatalf("events %+v, want a Warning with %q", ev, tt.says)
				}
				return
			}
			if l == nil || l.MutualAuthentication == nil || l.MutualAuthentication.TrustStore != tt.ref {
				t.Fatalf("listener 443 %+v; events %+v", l, ev)
			}
			pool, ts, err := h.c.TrustStores().Load(tt.ref)
			if err != nil || ts.ARN != arn {
				t.Fatalf("Load(%s) = %+v, %v", tt.ref, ts, err)
			}
			if !verifies(t, pool, caA) || verifies(t, pool, newTestCA(t, "Stranger")) {
				t.Error("the pool is not the trust store's CAs")
			}
		})
	}
}

// TestTrustStoreModified: a Secret whose bundle changed (a new
// resourceVersion) gives a new pool to the next snapshot; a broken edit
// makes the Ingress's listener unservable rather than verifying against
// nothing, and a deleted Secret is forgotten.
func TestTrustStoreModified(t *testing.T) {
	caA, caB := newTestCA(t, "Clients A"), newTestCA(t, "Clients B")
	sec, arn := trustSecret(t, "l7lb", "clients", caA)
	cert, _ := tlsSecret(t, testNS, "demo-tls", "demo.milvus.io")
	h := newHarness(t, Options{}, objects(backend("milvus-demo"),
		[]k8sruntime.Object{l7lbClass(), cert, sec, mtlsIngress("demo", arn)})...)
	h.sync()
	load := func() *x509.CertPool {
		t.Helper()
		pool, _, err := h.c.TrustStores().Load(arn)
		if err != nil {
			t.Fatal(err)
		}
		return pool
	}
	if p := load(); !verifies(t, p, caA) || verifies(t, p, caB) {
		t.Fatal("first bundle")
	}
	mod := sec.DeepCopy()
	mod.Data[truststore.KubeBundleKey] = caB.CertPEM()
	mod.ResourceVersion = "2"
	h.store(mod, false)
	if l := listener(h.sync(), 443); l == nil || l.MutualAuthentication == nil {
		t.Fatal("not served after the bundle changed")
	}
	if p := load(); verifies(t, p, caA) || !verifies(t, p, caB) {
		t.Error("new bundle not loaded")
	}

	broken := mod.DeepCopy()
	broken.Data[truststore.KubeBundleKey] = []byte("not a bundle")
	broken.ResourceVersion = "3"
	h.store(broken, false)
	if _, _, err := h.c.TrustStores().Load(arn); err == nil || !strings.Contains(err.Error(), "Secret l7lb/"+sec.Name) {
		t.Errorf("broken bundle: %v", err)
	}
	if h.c.TrustStores().Known(arn) {
		t.Error("a broken trust store is Known")
	}

	h.remove(broken)
	h.sync()
	h.c.trust.mu.Lock()
	n := len(h.c.trust.cache)
	h.c.trust.mu.Unlock()
	if n != 0 {
		t.Errorf("deleted Secret still cached (%d entries)", n)
	}
	if _, _, err := h.c.TrustStores().Load(arn); !errors.Is(err, truststore.ErrNotFound) {
		t.Errorf("Load after delete = %v, want ErrNotFound", err)
	}
}

// TestTrustStoreNamespace: the trust stores are read from CertNamespace
// when it differs from the controller's namespace.
func TestTrustStoreNamespace(t *testing.T) {
	ca := newTestCA(t, "Clients")
	sec, arn := trustSecret(t, "certs", "clients", ca)
	h := newHarness(t, Options{Namespace: "l7lb", CertNamespace: "certs"}, sec)
	if _, ts, err := h.c.TrustStores().Load(arn); err != nil || ts.Name != "clients" {
		t.Fatalf("Load from --cert-namespace = %+v, %v", ts, err)
	}
	h2 := newHarness(t, Options{Namespace: "certs", CertNamespace: "l7lb"}, sec)
	if h2.c.TrustStores().Known(arn) {
		t.Error("trust store found outside CertNamespace")
	}
}

func newTestCA(t *testing.T, cn string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(cn, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}
