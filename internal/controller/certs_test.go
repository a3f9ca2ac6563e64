package controller

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/pki"
)

func tlsIngress(name string, secrets ...string) *networkingv1.Ingress {
	i := ing(name, name+".milvus.io", map[string]string{"alb.ingress.kubernetes.io/listen-ports": `[{"HTTPS":443}]`})
	for _, s := range secrets {
		i.Spec.TLS = append(i.Spec.TLS, networkingv1.IngressTLS{Hosts: []string{name + ".milvus.io"}, SecretName: s})
	}
	return i
}

// TestSpecTLSSecret: a spec.tls Secret becomes a certificate of the HTTPS
// listener for the Ingress's hosts; what cannot be a certificate is the
// Ingress's problem.
func TestSpecTLSSecret(t *testing.T) {
	good, leaf := tlsSecret(t, testNS, "demo-tls", "demo.milvus.io", "*.demo.milvus.io")
	good2, leaf2 := tlsSecret(t, testNS, "demo-tls-2", "demo.milvus.io")
	otherNS, _ := tlsSecret(t, "elsewhere", "elsewhere-only", "demo.milvus.io")
	mismatched := good.DeepCopy()
	mismatched.Name = "mismatched"
	mismatched.Data[corev1.TLSPrivateKeyKey] = good2.Data[corev1.TLSPrivateKeyKey]
	empty := good.DeepCopy()
	empty.Name = "empty"
	empty.Data = nil

	arn := func(name string) string { return secretARNPrefix + testNS + "/" + name }
	tests := []struct {
		name     string
		ingress  *networkingv1.Ingress
		wantARNs []string // listener 443's certificates; nil: not served
		wantLeaf []*pki.Leaf
		says     string // the Warning, when not served
	}{
		{"one Secret", tlsIngress("demo", "demo-tls"), []string{arn("demo-tls")}, []*pki.Leaf{leaf}, ""},
		{"two Secrets, one repeated", tlsIngress("demo", "demo-tls", "demo-tls-2", "demo-tls"), []string{arn("demo-tls"), arn("demo-tls-2")}, []*pki.Leaf{leaf, leaf2}, ""},
		{"empty secretName skipped", tlsIngress("demo", "", "demo-tls"), []string{arn("demo-tls")}, []*pki.Leaf{leaf}, ""},
		{"missing Secret", tlsIngress("demo", "absent"), nil, nil, "spec.tls Secret milvus/absent"},
		{"Secret of another namespace is not used", tlsIngress("demo", "elsewhere-only"), nil, nil, "spec.tls Secret milvus/elsewhere-only"},
		{"key does not match", tlsIngress("demo", "mismatched"), nil, nil, "spec.tls Secret milvus/mismatched"},
		{"no data", tlsIngress("demo", "empty"), nil, nil, "needs tls.crt and tls.key"},
		{"one bad Secret fails the Ingress", tlsIngress("demo", "demo-tls", "absent"), nil, nil, "spec.tls Secret milvus/absent"},
		{
			name: "Ingress may not name a Secret ARN itself",
			ingress: func() *networkingv1.Ingress {
				i := tlsIngress("demo")
				i.Annotations[annCertificateARN] = secretARNPrefix + "kube-system/stolen"
				return i
			}(),
			says: "names are made by l7lb from spec.tls",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{}, objects(backend("milvus-demo"),
				[]k8sruntime.Object{l7lbClass(), good, good2, otherNS, mismatched, empty, tt.ingress})...)
			snap := h.sync()
			l := listener(snap, 443)
			ev := eventsFor(h.rec.take(), "milvus/demo")
			if tt.wantARNs == nil {
				if l != nil {
					t.Errorf("served with %v", l.CertificateARNs)
				}
				if len(ev) != 1 || ev[0].typ != corev1.EventTypeWarning || !strings.Contains(ev[0].msg, tt.says) {
					t.Errorf("events %+v, want a Warning with %q", ev, tt.says)
				}
				return
			}
			if l == nil {
				t.Fatalf("no HTTPS listener; events %+v", ev)
			}
			if !slices.Equal(l.CertificateARNs, tt.wantARNs) {
				t.Errorf("certificates %v, want %v", l.CertificateARNs, tt.wantARNs)
			}
			for i, a := range tt.wantARNs {
				tc, err := h.c.Certificates().Load(a)
				if err != nil {
					t.Fatalf("Load(%s): %v", a, err)
				}
				if !tc.Leaf.Equal(tt.wantLeaf[i].Cert) {
					t.Errorf("Load(%s) is not the Secret's certificate", a)
				}
				if err := tc.Leaf.VerifyHostname("demo.milvus.io"); err != nil {
					t.Errorf("certificate for the wrong host: %v", err)
				}
			}
			// The cached Ingress object is not modified.
			if _, ok := tt.ingress.Annotations[annCertificateARN]; ok {
				t.Errorf("prepare wrote into the cached Ingress")
			}
		})
	}
}

// TestSpecTLSIgnoredWithCertificateARN: an Ingress naming certificate-arn
// keeps it; spec.tls is then not looked at (as LBC).
func TestSpecTLSIgnoredWithCertificateARN(t *testing.T) {
	store := storeSecret(t, "l7lb", "arn:aws:acm:us-east-1:123:certificate/abc")
	i := tlsIngress("demo", "absent")
	i.Annotations[annCertificateARN] = "arn:aws:acm:us-east-1:123:certificate/abc"
	h := newHarness(t, Options{}, objects(backend("milvus-demo"), []k8sruntime.Object{l7lbClass(), store, i})...)
	l := listener(h.sync(), 443)
	if l == nil || !slices.Equal(l.CertificateARNs, []string{"arn:aws:acm:us-east-1:123:certificate/abc"}) {
		t.Fatalf("listener %+v; events %+v", l, h.rec.take())
	}
}

// storeSecret is a certificate-store Secret for arn, as `cert import
// --kubernetes` writes it (through KubeStore on a fake clientset).
func storeSecret(t *testing.T, ns, arn string) *corev1.Secret {
	t.Helper()
	root, err := pki.NewCA("Store Root", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("Store Intermediate")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := inter.Issue([]string{"demo.milvus.io"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Options{})
	ks := certstore.KubeStore{Client: h.client, Namespace: ns}
	if _, _, err := ks.Import(context.Background(), leaf.CertPEM(), leaf.ChainPEM(), leaf.KeyPEM(), arn, time.Now()); err != nil {
		t.Fatal(err)
	}
	list, err := h.client.CoreV1().Secrets(ns).List(context.Background(), metaListAll)
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("store Secrets: %v, %v", list, err)
	}
	s := list.Items[0]
	s.ResourceVersion = "1"
	return &s
}

// TestCertIndexStore: the certificate store's Secrets resolve by ARN in the
// store's namespace only, and only when label and annotation agree.
func TestCertIndexStore(t *testing.T) {
	const arn = "arn:aws:acm:us-east-1:123:certificate/abc"
	inStore := storeSecret(t, "l7lb", arn)
	wrongNS := storeSecret(t, "default", "arn:aws:acm:us-east-1:123:certificate/other-ns")
	relabelled := storeSecret(t, "l7lb", "arn:aws:acm:us-east-1:123:certificate/relabelled")
	relabelled.Annotations[certstore.KubeAnnotationARN] = "arn:aws:acm:us-east-1:123:certificate/forged"

	h := newHarness(t, Options{Namespace: "l7lb"}, inStore, wrongNS, relabelled)
	ci := h.c.Certificates()
	tests := []struct {
		arn      string
		ok       bool
		notFound bool
	}{
		{arn, true, false},
		{"arn:aws:acm:us-east-1:123:certificate/other-ns", false, true},
		{"arn:aws:acm:us-east-1:123:certificate/relabelled", false, true},
		{"arn:aws:acm:us-east-1:123:certificate/forged", false, true},
		{"arn:aws:acm:us-east-1:123:certificate/never", false, true},
		{secretARNPrefix + "l7lb/" + inStore.Name, true, false}, // a store Secret is a TLS Secret too
		{secretARNPrefix + "nowhere/x", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.arn, func(t *testing.T) {
			tc, err := ci.Load(tt.arn)
			if (err == nil) != tt.ok || ci.Known(tt.arn) != tt.ok {
				t.Fatalf("Load = %v, Known = %v; want ok %v", err, ci.Known(tt.arn), tt.ok)
			}
			if tt.notFound && !errors.Is(err, certstore.ErrNotFound) {
				t.Errorf("error %v is not ErrNotFound", err)
			}
			if tt.ok && len(tc.Certificate) != 2 {
				t.Errorf("%d certificates sent, want leaf and intermediate (not the root)", len(tc.Certificate))
			}
		})
	}
	if cn := "l7lb"; h.c.opts.CertNamespace != cn {
		t.Errorf("CertNamespace defaults to %q, want the controller's %q", h.c.opts.CertNamespace, cn)
	}
}

// TestCertIndexCache: parsed certificates are reused while the Secret's
// resourceVersion stays, re-read when it changes, and forgotten once the
// Secret is gone.
func TestCertIndexCache(t *testing.T) {
	s1, leaf1 := tlsSecret(t, testNS, "demo-tls", "demo.milvus.io")
	s2, leaf2 := tlsSecret(t, testNS, "demo-tls", "demo.milvus.io")
	h := newHarness(t, Options{}, objects(backend("milvus-demo"), []k8sruntime.Object{l7lbClass(), s1, tlsIngress("demo", "demo-tls")})...)
	h.sync()
	arn := secretARNPrefix + testNS + "/demo-tls"
	load := func() *pki.Leaf {
		t.Helper()
		tc, err := h.c.Certificates().Load(arn)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case tc.Leaf.Equal(leaf1.Cert):
			return leaf1
		case tc.Leaf.Equal(leaf2.Cert):
			return leaf2
		}
		t.Fatal("unknown certificate")
		return nil
	}
	if load() != leaf1 {
		t.Fatal("first load")
	}
	// Same resourceVersion, new content: the cache answers (a resync does
	// not re-parse); a real update always changes the version.
	same := s2.DeepCopy()
	same.ResourceVersion = s1.ResourceVersion
	h.store(same, false)
	if load() != leaf1 {
		t.Error("re-parsed a Secret whose resourceVersion did not change")
	}
	s2.ResourceVersion = "2"
	h.store(s2, false)
	if load() != leaf2 {
		t.Error("renewed Secret not re-read")
	}
	h.c.certs.mu.Lock()
	n := len(h.c.certs.cache)
	h.c.certs.mu.Unlock()
	if n != 1 {
		t.Errorf("%d cached certificates, want 1", n)
	}
	h.remove(s2)
	h.sync()
	h.c.certs.mu.Lock()
	n = len(h.c.certs.cache)
	h.c.certs.mu.Unlock()
	if n != 0 {
		t.Errorf("deleted Secret still cached (%d entries)", n)
	}
	if _, err := h.c.Certificates().Load(arn); err == nil {
		t.Error("deleted Secret still loads")
	}
}

var metaListAll = metav1.ListOptions{}

// TestCertIndexDescribe: the controller's certificates are described for
// the expiry metric and the admin API as the directory store describes
// its own.
func TestCertIndexDescribe(t *testing.T) {
	s, leaf := tlsSecret(t, testNS, "demo-tls", "demo.milvus.io")
	h := newHarness(t, Options{}, s)
	arn := secretARNPrefix + testNS + "/demo-tls"
	d, err := h.c.Certificates().Describe(arn)
	if err != nil {
		t.Fatal(err)
	}
	want := certstore.DescribeLeaf(leaf.Cert)
	if d.ARN != arn || d.DomainName != want.DomainName || !d.NotAfter.Equal(leaf.Cert.NotAfter.UTC()) || d.SHA256 != want.SHA256 {
		t.Errorf("Describe = %+v, want %+v with ARN %s", d, want, arn)
	}
	if _, err := h.c.Certificates().Describe(secretARNPrefix + testNS + "/absent"); err == nil {
		t.Error("Describe of a missing Secret succeeded")
	}
}
