package truststore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l7lb/l7lb/internal/certstore"
)

// The trust stores kept in a cluster are Opaque Secrets in the namespace
// of the certificate store (the controller's --cert-namespace), labelled
// like the certificate Secrets. A trust store name is a valid label value
// (1 to 32 letters, digits and hyphens), so the name label finds the
// Secret; the ARN annotation is the truth it is checked against, so that a
// store deleted and created again under the same name is a new one.
//
// Only the bundle is kept as data: what describe prints (count, subjects,
// digest) is read from it each time, so a bundle edited with kubectl is
// described as it is.
const (
	// KubeLabelStore marks a Secret as a trust store.
	KubeLabelStore = "l7lb.io/trust-store"
	// KubeLabelName holds the trust store's name.
	KubeLabelName = "l7lb.io/trust-store-name"
	// KubeAnnotationARN holds the trust store's ARN.
	KubeAnnotationARN = "l7lb.io/trust-store-arn"
	// KubeBundleKey is the data key of the CA bundle (PEM).
	KubeBundleKey = "ca-bundle.pem"

	kubeAnnotationCreated  = "l7lb.io/created-at"
	kubeAnnotationModified = "l7lb.io/modified-at"
)

// KubeSelector selects the trust store Secrets, or the one named name when
// name is not empty.
func KubeSelector(name string) string {
	s := KubeLabelStore + "=true"
	if name != "" {
		s += "," + KubeLabelName + "=" + name
	}
	return s
}

// KubeSecretName is the Secret holding trust store name. Secret names are
// lower case and trust store names need not be, so a digest of the exact
// name keeps "CA" and "ca" apart.
func KubeSecretName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "l7lb-truststore-" + strings.ToLower(name) + "-" + hex.EncodeToString(sum[:4])
}

// KubeStore is the trust stores kept as Secrets in a namespace. Its
// methods mirror Store's.
type KubeStore struct {
	Client    certstore.KubeClient
	Namespace string
}

// Create checks bundle and writes it as a new trust store called name; the
// name must be new in the namespace, as on the ALB.
func (k KubeStore) Create(ctx context.Context, name string, bundle []byte, now time.Time) (TrustStore, []string, error) {
	if err := ValidName(name); err != nil {
		return TrustStore{}, nil, err
	}
	certs, err := ParseBundle(bundle)
	if err != nil {
		return TrustStore{}, nil, err
	}
	if _, err := k.get(ctx, name); err == nil {
		return TrustStore{}, nil, fmt.Errorf("truststore: %w: %s (namespace %s)", ErrDuplicate, name, k.Namespace)
	} else if !errors.Is(err, ErrNotFound) {
		return TrustStore{}, nil, err
	}
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return TrustStore{}, nil, fmt.Errorf("truststore: new id: %w", err)
	}
	arn := ARN(name, hex.EncodeToString(idb[:]))
	stamp := now.UTC().Format(time.RFC3339)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: k.Namespace,
			Name:      KubeSecretName(name),
			Labels: map[string]string{
				KubeLabelStore:                 "true",
				KubeLabelName:                  name,
				"app.kubernetes.io/managed-by": "l7lb",
			},
			Annotations: map[string]string{
				KubeAnnotationARN:      arn,
				kubeAnnotationCreated:  stamp,
				kubeAnnotationModified: stamp,
			},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{KubeBundleKey: EncodeBundle(certs)},
	}
	created, err := k.Client.CoreV1().Secrets(k.Namespace).Create(ctx, sec, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return TrustStore{}, nil, fmt.Errorf("truststore: %w: %s (Secret %s/%s exists)", ErrDuplicate, name, k.Namespace, sec.Name)
	}
	if err != nil {
		return TrustStore{}, nil, fmt.Errorf("truststore: writing Secret %s/%s: %w", k.Namespace, sec.Name, err)
	}
	ts, _, err := SecretTrustStore(created)
	if err != nil {
		return TrustStore{}, nil, err
	}
	return ts, bundleWarnings(certs, now), nil
}

// Modify replaces the CA bundle of trust store arn in its Secret, keeping
// the ARN. The controller sees the update and verifies new handshakes
// against the new bundle.
func (k KubeStore) Modify(ctx context.Context, arn string, bundle []byte, now time.Time) (TrustStore, []string, error) {
	sec, err := k.find(ctx, arn)
	if err != nil {
		return TrustStore{}, nil, err
	}
	certs, err := ParseBundle(bundle)
	if err != nil {
		return TrustStore{}, nil, err
	}
	sec = sec.DeepCopy()
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	sec.Data[KubeBundleKey] = EncodeBundle(certs)
	sec.Annotations[kubeAnnotationModified] = now.UTC().Format(time.RFC3339)
	// The resourceVersion read above makes this a compare-and-swap: a
	// Secret changed meanwhile is a conflict, not silently overwritten.
	updated, err := k.Client.CoreV1().Secrets(k.Namespace).Update(ctx, sec, metav1.UpdateOptions{})
	if err != nil {
		return TrustStore{}, nil, fmt.Errorf("truststore: updating Secret %s/%s: %w", k.Namespace, sec.Name, err)
	}
	ts, _, err := SecretTrustStore(updated)
	if err != nil {
		return TrustStore{}, nil, err
	}
	return ts, bundleWarnings(certs, now), nil
}

// List returns every trust store of the namespace, by name. A Secret that
// is labelled as a trust store but is not a valid one is an error naming
// it, not skipped: list is how one finds it.
func (k KubeStore) List(ctx context.Context) ([]TrustStore, error) {
	list, err := k.Client.CoreV1().Secrets(k.Namespace).List(ctx, metav1.ListOptions{LabelSelector: KubeSelector("")})
	if err != nil {
		return nil, fmt.Errorf("truststore: listing Secrets in %s: %w", k.Namespace, err)
	}
	out := []TrustStore{}
	for i := range list.Items {
		ts, _, err := SecretTrustStore(&list.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, ts)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Describe returns the trust store ref names: an ARN or a bare name.
func (k KubeStore) Describe(ctx context.Context, ref string) (TrustStore, error) {
	sec, err := k.find(ctx, ref)
	if err != nil {
		return TrustStore{}, err
	}
	ts, _, err := SecretTrustStore(sec)
	return ts, err
}

// Delete removes the Secret of trust store arn.
func (k KubeStore) Delete(ctx context.Context, arn string) error {
	sec, err := k.find(ctx, arn)
	if err != nil {
		return err
	}
	pre := metav1.Preconditions{UID: &sec.UID}
	err = k.Client.CoreV1().Secrets(k.Namespace).Delete(ctx, sec.Name, metav1.DeleteOptions{Preconditions: &pre})
	if apierrors.IsNotFound(err) {
		return k.notFound(arn)
	}
	if err != nil {
		return fmt.Errorf("truststore: deleting Secret %s/%s: %w", k.Namespace, sec.Name, err)
	}
	return nil
}

// find returns the Secret of ref (an ARN or a name).
func (k KubeStore) find(ctx context.Context, ref string) (*corev1.Secret, error) {
	name, err := refName(ref)
	if err != nil {
		return nil, err
	}
	sec, err := k.get(ctx, name)
	if err != nil {
		return nil, err
	}
	if got := sec.Annotations[KubeAnnotationARN]; ref != name && got != ref {
		return nil, k.notFound(ref)
	}
	return sec, nil
}

// get returns the Secret labelled with trust store name.
func (k KubeStore) get(ctx context.Context, name string) (*corev1.Secret, error) {
	list, err := k.Client.CoreV1().Secrets(k.Namespace).List(ctx, metav1.ListOptions{LabelSelector: KubeSelector(name)})
	if err != nil {
		return nil, fmt.Errorf("truststore: looking up %s in namespace %s: %w", name, k.Namespace, err)
	}
	secs := make([]*corev1.Secret, 0, len(list.Items))
	for i := range list.Items {
		secs = append(secs, &list.Items[i])
	}
	return PickSecret(secs, name, k.Namespace)
}

func (k KubeStore) notFound(ref string) error {
	return fmt.Errorf("truststore: %w: %s (namespace %s)", ErrNotFound, ref, k.Namespace)
}

// refName is the trust store name inside ref, an ARN or a name.
func refName(ref string) (string, error) {
	if strings.HasPrefix(ref, "arn:") {
		name, _, err := ParseARN(ref)
		if err != nil {
			return "", fmt.Errorf("truststore: %w: %w", ErrNotFound, err)
		}
		return name, nil
	}
	if err := ValidName(ref); err != nil {
		return "", fmt.Errorf("truststore: %w: %w", ErrNotFound, err)
	}
	return ref, nil
}

// PickSecret chooses, among the Secrets labelled with trust store name,
// the one; two Secrets claiming one name are an error naming both, since
// choosing either could verify clients against the wrong CAs.
func PickSecret(secs []*corev1.Secret, name, namespace string) (*corev1.Secret, error) {
	switch len(secs) {
	case 0:
		return nil, fmt.Errorf("truststore: %w: %s (namespace %s; create it with l7lb truststore create --kubernetes)", ErrNotFound, name, namespace)
	case 1:
		return secs[0], nil
	}
	names := make([]string, 0, len(secs))
	for _, s := range secs {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("truststore: %s: Secrets %s in namespace %s all claim this name; delete all but one", name, strings.Join(names, ", "), namespace)
}

// SecretTrustStore reads a trust store Secret: its description and its CA
// certificates. Label, name and ARN must agree, and the bundle must parse
// as a CA bundle; every error names the Secret.
func SecretTrustStore(s *corev1.Secret) (TrustStore, []*x509.Certificate, error) {
	where := "Secret " + s.Namespace + "/" + s.Name
	if s.Labels[KubeLabelStore] != "true" {
		return TrustStore{}, nil, fmt.Errorf("truststore: %s: not a trust store (label %s=true missing)", where, KubeLabelStore)
	}
	name := s.Labels[KubeLabelName]
	arn := s.Annotations[KubeAnnotationARN]
	got, _, err := ParseARN(arn)
	if err != nil {
		return TrustStore{}, nil, fmt.Errorf("truststore: %s: annotation %s: %w", where, KubeAnnotationARN, err)
	}
	if got != name {
		return TrustStore{}, nil, fmt.Errorf("truststore: %s: annotation %s names trust store %q but label %s is %q", where, KubeAnnotationARN, got, KubeLabelName, name)
	}
	certs, err := ParseBundle(s.Data[KubeBundleKey])
	if err != nil {
		var be *BundleError
		if errors.As(err, &be) {
			be.File = where + " key " + KubeBundleKey
		}
		return TrustStore{}, nil, err
	}
	ts := describeBundle(certs)
	ts.Name, ts.ARN = name, arn
	ts.CreatedAt = parseStamp(s.Annotations[kubeAnnotationCreated], s.CreationTimestamp.Time)
	ts.ModifiedAt = parseStamp(s.Annotations[kubeAnnotationModified], ts.CreatedAt)
	return ts, certs, nil
}

func parseStamp(v string, otherwise time.Time) time.Time {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t
	}
	return otherwise.UTC()
}

// Pool makes a CertPool of certs.
func Pool(certs []*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}
