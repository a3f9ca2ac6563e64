package truststore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/l7lb/l7lb/internal/certstore"
)

// TestKubeStore: create, describe, modify, list and delete through Secrets
// on a fake clientset, with the same rules as the directory store.
func TestKubeStore(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	k := KubeStore{Client: client, Namespace: "l7lb"}
	a, b := newCA(t, "A"), newCA(t, "B")
	now := time.Now().UTC().Truncate(time.Second)

	ts, warns, err := k.Create(ctx, "Clients", a.CertPEM(), now)
	if err != nil || len(warns) != 0 {
		t.Fatalf("Create = %v, %v", warns, err)
	}
	if !strings.HasPrefix(ts.ARN, ARNPrefix+"Clients/") || ts.NumberOfCaCertificates != 1 || !ts.CreatedAt.Equal(now) {
		t.Errorf("Create = %+v", ts)
	}
	sec, err := client.CoreV1().Secrets("l7lb").Get(ctx, KubeSecretName("Clients"), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the trust store's Secret: %v", err)
	}
	if sec.Labels[KubeLabelStore] != "true" || sec.Labels[KubeLabelName] != "Clients" || sec.Annotations[KubeAnnotationARN] != ts.ARN || sec.Type != corev1.SecretTypeOpaque {
		t.Errorf("Secret metadata %+v %+v type %s", sec.Labels, sec.Annotations, sec.Type)
	}
	if !strings.HasPrefix(sec.Name, "l7lb-truststore-clients-") {
		t.Errorf("Secret name %q", sec.Name)
	}
	// A name differing only in case is another trust store, in another
	// Secret.
	if _, _, err := k.Create(ctx, "clients", b.CertPEM(), now); err != nil {
		t.Fatalf("Create(clients) next to Clients: %v", err)
	}
	if _, _, err := k.Create(ctx, "Clients", b.CertPEM(), now); !errors.Is(err, ErrDuplicate) {
		t.Errorf("second Create(Clients) = %v, want ErrDuplicate", err)
	}
	if _, _, err := k.Create(ctx, "-bad", a.CertPEM(), now); !errors.Is(err, ErrBadName) {
		t.Errorf("Create(-bad) = %v", err)
	}
	if _, _, err := k.Create(ctx, "nobundle", []byte("junk"), now); err == nil {
		t.Error("Create with no CA accepted")
	}

	for _, ref := range []string{ts.ARN, "Clients"} {
		got, err := k.Describe(ctx, ref)
		if err != nil || got.ARN != ts.ARN || got.SHA256 != ts.SHA256 {
			t.Errorf("Describe(%s) = %+v, %v", ref, got, err)
		}
	}
	other := ARN("Clients", "0123456789abcdef")
	if _, err := k.Describe(ctx, other); !errors.Is(err, ErrNotFound) {
		t.Errorf("Describe(same name, other id) = %v, want ErrNotFound", err)
	}
	if _, err := (KubeStore{Client: client, Namespace: "elsewhere"}).Describe(ctx, ts.ARN); !errors.Is(err, ErrNotFound) {
		t.Errorf("Describe in another namespace = %v, want ErrNotFound", err)
	}

	later := now.Add(time.Hour)
	mod, _, err := k.Modify(ctx, ts.ARN, append(a.CertPEM(), b.CertPEM()...), later)
	if err != nil {
		t.Fatal(err)
	}
	if mod.ARN != ts.ARN || mod.NumberOfCaCertificates != 2 || mod.SHA256 == ts.SHA256 || !mod.CreatedAt.Equal(now) || !mod.ModifiedAt.Equal(later) {
		t.Errorf("Modify = %+v (before %+v)", mod, ts)
	}
	if _, _, err := k.Modify(ctx, other, a.CertPEM(), later); !errors.Is(err, ErrNotFound) {
		t.Errorf("Modify(other id) = %v", err)
	}
	if _, _, err := k.Modify(ctx, ts.ARN, []byte("junk"), later); err == nil {
		t.Error("Modify with a bad bundle accepted")
	}
	if got, _ := k.Describe(ctx, ts.ARN); got.SHA256 != mod.SHA256 {
		t.Error("a refused Modify changed the bundle")
	}

	list, err := k.List(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "Clients" || list[1].Name != "clients" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := k.Delete(ctx, ts.ARN); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Describe(ctx, "Clients"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Describe after Delete = %v", err)
	}
	if err := k.Delete(ctx, ts.ARN); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v", err)
	}
	again, _, err := k.Create(ctx, "Clients", a.CertPEM(), later)
	if err != nil || again.ARN == ts.ARN {
		t.Errorf("re-created trust store has ARN %s (old %s), err %v", again.ARN, ts.ARN, err)
	}
}

// TestSecretTrustStore: a Secret whose labels, annotation or bundle do not
// agree is refused with the Secret's name in the error.
func TestSecretTrustStore(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	k := KubeStore{Client: client, Namespace: "l7lb"}
	a := newCA(t, "A")
	ts, _, err := k.Create(ctx, "clients", a.CertPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	good, err := client.CoreV1().Secrets("l7lb").Get(ctx, KubeSecretName("clients"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := a.Issue([]string{"client"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(s *corev1.Secret)) *corev1.Secret {
		s := good.DeepCopy()
		f(s)
		return s
	}
	cases := []struct {
		name string
		sec  *corev1.Secret
		want string // "" for ok
	}{
		{"as written", good, ""},
		{"no store label", edit(func(s *corev1.Secret) { delete(s.Labels, KubeLabelStore) }), "not a trust store"},
		{"ARN of another name", edit(func(s *corev1.Secret) { s.Annotations[KubeAnnotationARN] = ARN("other", "0123456789abcdef") }), `names trust store "other" but label`},
		{"no ARN", edit(func(s *corev1.Secret) { delete(s.Annotations, KubeAnnotationARN) }), "annotation " + KubeAnnotationARN},
		{"client certificate as bundle", edit(func(s *corev1.Secret) { s.Data[KubeBundleKey] = leaf.CertPEM() }), "Secret l7lb/" + good.Name + " key ca-bundle.pem: certificate 1: CN=client is not a CA certificate"},
		{"no bundle", edit(func(s *corev1.Secret) { s.Data = nil }), "no certificate found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, certs, err := SecretTrustStore(tc.sec)
			if tc.want == "" {
				if err != nil || got.ARN != ts.ARN || len(certs) != 1 || !certs[0].Equal(a.Cert) {
					t.Fatalf("SecretTrustStore = %+v, %d certs, %v", got, len(certs), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	// Two Secrets claiming one name: neither is used.
	twin := good.DeepCopy()
	twin.Name, twin.ResourceVersion = "copied-by-hand", ""
	if _, err := client.CoreV1().Secrets("l7lb").Create(ctx, twin, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Describe(ctx, "clients"); err == nil || !strings.Contains(err.Error(), "copied-by-hand, "+good.Name) {
		t.Errorf("Describe with two Secrets for one name = %v", err)
	}
}

// TestCommandKubernetes: the CLI with --kubernetes writes the Secrets the
// controller reads, in --namespace, and prints what it prints for a
// directory.
func TestCommandKubernetes(t *testing.T) {
	client := fake.NewClientset()
	var gotNS string
	old := newKubeClient
	newKubeClient = func(k *certstore.KubeFlags) (certstore.KubeClient, error) {
		gotNS = k.Namespace
		return client, nil
	}
	t.Cleanup(func() { newKubeClient = old })
	dir := t.TempDir()
	a, b := newCA(t, "A"), newCA(t, "B")
	bundle := filepath.Join(dir, "ca-bundle.pem")
	if err := os.WriteFile(bundle, append(a.CertPEM(), b.CertPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "create", "--kubernetes", "--namespace", "lb-system", "--name", "clients", "--ca-certificates-bundle", "fileb://"+bundle)
	m := createOutRE.FindStringSubmatch(out)
	if code != 0 || m == nil || gotNS != "lb-system" {
		t.Fatalf("create --kubernetes: %d ns %q\n%s%s", code, gotNS, out, errOut)
	}
	sec, err := client.CoreV1().Secrets("lb-system").Get(context.Background(), KubeSecretName("clients"), metav1.GetOptions{})
	if err != nil || sec.Annotations[KubeAnnotationARN] != m[1] {
		t.Fatalf("Secret after create: %v, %v", sec, err)
	}
	if code, out, _ = runCmd(t, "describe", "--kubernetes", "--namespace", "lb-system", "--trust-store-arns", m[1]); code != 0 || !createOutRE.MatchString(out) {
		t.Errorf("describe --kubernetes: %d\n%s", code, out)
	}
	if code, _, errOut = runCmd(t, "modify", "--kubernetes", "--namespace", "lb-system", "--trust-store-arn", m[1], "--ca-certificates-bundle", "fileb://"+bundle); code != 0 {
		t.Errorf("modify --kubernetes: %d %s", code, errOut)
	}
	if code, _, errOut = runCmd(t, "list", "--kubernetes", "--store", dir); code != 2 || !strings.Contains(errOut, "not both") {
		t.Errorf("--store with --kubernetes: %d %q", code, errOut)
	}
	if code, _, errOut = runCmd(t, "delete", "--kubernetes", "--namespace", "lb-system", "--trust-store-arn", m[1]); code != 0 {
		t.Errorf("delete --kubernetes: %d %s", code, errOut)
	}
	if code, out, _ = runCmd(t, "list", "--kubernetes", "--namespace", "lb-system"); code != 0 || !strings.Contains(out, `"TrustStores": []`) {
		t.Errorf("list after delete: %d\n%s", code, out)
	}
}
