package certstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/l7lb/l7lb/internal/pki"
)

// TestKubeStoreImport: `cert import --kubernetes` writes one labelled,
// annotated kubernetes.io/tls Secret per ARN, which LoadSecret and
// SecretARN read back; re-importing under an ARN replaces it in place.
func TestKubeStoreImport(t *testing.T) {
	p := newTestPKI(t)
	ctx := context.Background()
	now := time.Now()
	const fixedARN = "arn:aws:acm:us-east-1:123456789012:certificate/seed"
	tests := []struct {
		name string
		arn  string
	}{
		{"new ARN", ""},
		{"given ARN", fixedARN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset()
			ks := KubeStore{Client: client, Namespace: "l7lb"}
			meta, warns, err := ks.Import(ctx, p.leaf.CertPEM(), p.leaf.ChainPEM(), p.leaf.KeyPEM(), tt.arn, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) != 0 {
				t.Errorf("warnings %v", warns)
			}
			if tt.arn != "" && meta.ARN != tt.arn {
				t.Errorf("ARN %s, want %s", meta.ARN, tt.arn)
			}
			if tt.arn == "" && !strings.HasPrefix(meta.ARN, ARNPrefix) {
				t.Errorf("new ARN %s lacks %s", meta.ARN, ARNPrefix)
			}
			if meta.DomainName != host {
				t.Errorf("domain %q", meta.DomainName)
			}
			list, err := client.CoreV1().Secrets("l7lb").List(ctx, metav1.ListOptions{LabelSelector: KubeSelector(meta.ARN)})
			if err != nil || len(list.Items) != 1 {
				t.Fatalf("selector %s finds %v (%v)", KubeSelector(meta.ARN), list, err)
			}
			s := &list.Items[0]
			if s.Type != corev1.SecretTypeTLS || s.Name != "l7lb-cert-"+KubeARNHash(meta.ARN) {
				t.Errorf("Secret %s of type %s", s.Name, s.Type)
			}
			if got, err := SecretARN(s); err != nil || got != meta.ARN {
				t.Errorf("SecretARN = %q, %v", got, err)
			}
			tc, err := LoadSecret(s)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.Leaf.Equal(p.leaf.Cert) || len(tc.Certificate) != 2 {
				t.Errorf("loaded %d certificates; leaf matches %v (want leaf + intermediate)", len(tc.Certificate), tc.Leaf.Equal(p.leaf.Cert))
			}
			if err := tc.Leaf.VerifyHostname(host); err != nil {
				t.Error(err)
			}
			// The whole store selector finds it too, the other ARN's does not.
			all, _ := client.CoreV1().Secrets("l7lb").List(ctx, metav1.ListOptions{LabelSelector: KubeSelector("")})
			none, _ := client.CoreV1().Secrets("l7lb").List(ctx, metav1.ListOptions{LabelSelector: KubeSelector(meta.ARN + "x")})
			if len(all.Items) != 1 || len(none.Items) != 0 {
				t.Errorf("store selector finds %d, other ARN's %d", len(all.Items), len(none.Items))
			}
		})
	}

	t.Run("re-import replaces in place", func(t *testing.T) {
		client := fake.NewClientset()
		ks := KubeStore{Client: client, Namespace: "l7lb"}
		if _, _, err := ks.Import(ctx, p.leaf.CertPEM(), p.leaf.ChainPEM(), p.leaf.KeyPEM(), fixedARN, now); err != nil {
			t.Fatal(err)
		}
		renewed := p.issueWith(t, pki.LeafOptions{Key: ecKey(t)})
		_, warns, err := ks.Import(ctx, renewed.CertPEM(), renewed.ChainPEM(), renewed.KeyPEM(), fixedARN, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(warns) != 1 || !strings.Contains(warns[0], "replacing") {
			t.Errorf("warnings %v", warns)
		}
		list, _ := client.CoreV1().Secrets("l7lb").List(ctx, metav1.ListOptions{})
		if len(list.Items) != 1 {
			t.Fatalf("%d Secrets after a re-import", len(list.Items))
		}
		tc, err := LoadSecret(&list.Items[0])
		if err != nil || !tc.Leaf.Equal(renewed.Cert) {
			t.Errorf("re-imported Secret holds the old certificate (%v)", err)
		}
	})

	t.Run("refused input writes nothing", func(t *testing.T) {
		client := fake.NewClientset()
		ks := KubeStore{Client: client, Namespace: "l7lb"}
		other := p.issueWith(t, pki.LeafOptions{Key: ecKey(t)})
		if _, _, err := ks.Import(ctx, p.leaf.CertPEM(), p.leaf.ChainPEM(), other.KeyPEM(), "", now); err == nil {
			t.Fatal("a key of another certificate was accepted")
		}
		if n := len(client.Actions()); n != 0 {
			t.Errorf("%d API calls for a refused import", n)
		}
	})

	t.Run("API error", func(t *testing.T) {
		client := fake.NewClientset()
		client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
			return true, nil, errors.New("forbidden by test")
		})
		ks := KubeStore{Client: client, Namespace: "l7lb"}
		_, _, err := ks.Import(ctx, p.leaf.CertPEM(), p.leaf.ChainPEM(), p.leaf.KeyPEM(), fixedARN, now)
		if err == nil || !strings.Contains(err.Error(), "forbidden by test") || !strings.Contains(err.Error(), "l7lb/l7lb-cert-") {
			t.Errorf("error %v", err)
		}
	})
}

// TestSecretARN: a Secret is a store entry only when its label marks it and
// its hash label matches its ARN annotation.
func TestSecretARN(t *testing.T) {
	const arn = "arn:aws:acm:us-east-1:1:certificate/a"
	mk := func(store, hash, ann string) *corev1.Secret {
		s := &corev1.Secret{}
		s.Labels = map[string]string{}
		s.Annotations = map[string]string{}
		if store != "" {
			s.Labels[KubeLabelStore] = store
		}
		if hash != "" {
			s.Labels[KubeLabelARNHash] = hash
		}
		if ann != "" {
			s.Annotations[KubeAnnotationARN] = ann
		}
		return s
	}
	tests := []struct {
		name string
		s    *corev1.Secret
		ok   bool
	}{
		{"entry", mk("true", KubeARNHash(arn), arn), true},
		{"not marked", mk("", KubeARNHash(arn), arn), false},
		{"marked false", mk("false", KubeARNHash(arn), arn), false},
		{"annotation edited", mk("true", KubeARNHash(arn), arn+"x"), false},
		{"no annotation", mk("true", KubeARNHash(""), ""), false},
		{"no hash", mk("true", "", arn), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SecretARN(tt.s)
			if (err == nil) != tt.ok || (tt.ok && got != arn) {
				t.Errorf("SecretARN = %q, %v", got, err)
			}
		})
	}
	if h := KubeARNHash(arn); len(h) != 32 || h == KubeARNHash(arn+"x") {
		t.Errorf("KubeARNHash = %q", h)
	}
}

// TestLoadSecret: what a kubernetes.io/tls Secret may hold.
func TestLoadSecret(t *testing.T) {
	p := newTestPKI(t)
	other := p.issueWith(t, pki.LeafOptions{Key: ecKey(t)})
	rk := rsaKey(t)
	rsaLeaf := p.issueWith(t, pki.LeafOptions{Key: rk})
	tests := []struct {
		name  string
		data  map[string][]byte
		certs int    // certificates sent
		err   string // "" when it loads
	}{
		{"leaf only", map[string][]byte{"tls.crt": p.leaf.CertPEM(), "tls.key": p.leaf.KeyPEM()}, 1, ""},
		{"leaf and chain in tls.crt (cert-manager)", map[string][]byte{"tls.crt": cat(p.leaf.CertPEM(), p.leaf.ChainPEM()), "tls.key": p.leaf.KeyPEM()}, 2, ""},
		{"chain.crt", map[string][]byte{"tls.crt": p.leaf.CertPEM(), "tls.key": p.leaf.KeyPEM(), KubeChainKey: p.leaf.ChainPEM()}, 2, ""},
		{"PKCS#1 key", map[string][]byte{"tls.crt": rsaLeaf.CertPEM(), "tls.key": pkcs1(t, rk)}, 1, ""},
		{"no key", map[string][]byte{"tls.crt": p.leaf.CertPEM()}, 0, "needs tls.crt and tls.key"},
		{"no certificate", map[string][]byte{"tls.key": p.leaf.KeyPEM()}, 0, "needs tls.crt and tls.key"},
		{"garbage certificate", map[string][]byte{"tls.crt": []byte("not PEM"), "tls.key": p.leaf.KeyPEM()}, 0, "tls.crt"},
		{"garbage chain", map[string][]byte{"tls.crt": p.leaf.CertPEM(), "tls.key": p.leaf.KeyPEM(), KubeChainKey: []byte("junk")}, 0, KubeChainKey},
		{"garbage key", map[string][]byte{"tls.crt": p.leaf.CertPEM(), "tls.key": []byte("junk")}, 0, "tls.key"},
		{"key of another certificate", map[string][]byte{"tls.crt": p.leaf.CertPEM(), "tls.key": other.KeyPEM()}, 0, "ns/s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: tt.data}
			s.Namespace, s.Name = "ns", "s"
			tc, err := LoadSecret(s)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.Certificate) != tt.certs || (!tc.Leaf.Equal(p.leaf.Cert) && !tc.Leaf.Equal(rsaLeaf.Cert)) {
				t.Errorf("%d certificates sent, want %d", len(tc.Certificate), tt.certs)
			}
		})
	}
}
