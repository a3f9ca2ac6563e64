package certstore

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// The certificate store kept in a cluster is a set of Secrets of type
// kubernetes.io/tls in one namespace. ARNs contain ':' and '/', which label
// values cannot, so a Secret is labelled with a hash of its ARN (to find it
// with a label selector) and annotated with the ARN itself (the truth that
// the hash is checked against).
const (
	// KubeLabelStore marks a Secret as a certificate-store entry.
	KubeLabelStore = "l7lb.io/certificate-store"
	// KubeLabelARNHash holds KubeARNHash(arn).
	KubeLabelARNHash = "l7lb.io/certificate-arn-hash"
	// KubeAnnotationARN holds the full ARN.
	KubeAnnotationARN = "l7lb.io/certificate-arn"
	// KubeChainKey is the data key of the chain; tls.crt holds only the
	// leaf and tls.key the PKCS#8 key, as kubernetes.io/tls expects.
	KubeChainKey = "chain.crt"
	// KubeDefaultNamespace is where `cert import --kubernetes` writes
	// when no namespace is given: the controller's own (deploy/).
	KubeDefaultNamespace = "l7lb"
)

// KubeARNHash is the label value for arn: 32 hex digits of its SHA-256.
func KubeARNHash(arn string) string {
	sum := sha256.Sum256([]byte(arn))
	return hex.EncodeToString(sum[:16])
}

// KubeSelector selects the store's Secrets, or the one for arn when arn is
// not empty.
func KubeSelector(arn string) string {
	s := KubeLabelStore + "=true"
	if arn != "" {
		s += "," + KubeLabelARNHash + "=" + KubeARNHash(arn)
	}
	return s
}

// KubeClient is the part of a Kubernetes clientset the store uses
// (kubeclient.Clientset, or client-go's fake clientset in tests); not
// kubernetes.Interface, which would link every API group's client.
type KubeClient interface {
	CoreV1() typedcorev1.CoreV1Interface
}

// KubeStore is the certificate store kept as Secrets in a namespace.
type KubeStore struct {
	Client    KubeClient
	Namespace string
}

// Import checks the PEMs as Store.Import does and writes them to a Secret.
// With arn empty the certificate gets a new ARN of this store's form; with
// arn set, the Secret for that ARN is created or replaced, as ACM's
// import-certificate --certificate-arn re-imports in place. That also lets
// an Ingress keep an ARN written for AWS unchanged (the seed's file).
func (k KubeStore) Import(ctx context.Context, certPEM, chainPEM, keyPEM []byte, arn string, now time.Time) (Certificate, []string, error) {
	c, warns, err := check(certPEM, chainPEM, keyPEM, now)
	if err != nil {
		return Certificate{}, nil, err
	}
	if arn == "" {
		id, err := uuid.NewRandom()
		if err != nil {
			return Certificate{}, nil, fmt.Errorf("certstore: new certificate id: %w", err)
		}
		arn = ARN(id.String())
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return Certificate{}, nil, fmt.Errorf("certstore: encoding private key: %w", err)
	}
	meta := c.meta
	meta.ARN = arn
	meta.ImportedAt = now.UTC()
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: k.Namespace,
			Name:      "l7lb-cert-" + KubeARNHash(arn),
			Labels: map[string]string{
				KubeLabelStore:                 "true",
				KubeLabelARNHash:               KubeARNHash(arn),
				"app.kubernetes.io/managed-by": "l7lb",
			},
			Annotations: map[string]string{
				KubeAnnotationARN:     arn,
				"l7lb.io/domain-name": meta.DomainName,
				"l7lb.io/not-after":   meta.NotAfter.UTC().Format(time.RFC3339),
				"l7lb.io/imported-at": meta.ImportedAt.Format(time.RFC3339),
				"l7lb.io/sha256":      meta.SHA256,
				"l7lb.io/subject":     meta.Subject,
			},
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       encodeCerts(c.leaf),
			corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
			KubeChainKey:            encodeCerts(c.chain...),
		},
	}
	secrets := k.Client.CoreV1().Secrets(k.Namespace)
	_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		warns = append(warns, fmt.Sprintf("replacing the certificate stored as %s", arn))
		var cur *corev1.Secret
		cur, err = secrets.Get(ctx, sec.Name, metav1.GetOptions{})
		if err == nil {
			sec.ResourceVersion = cur.ResourceVersion
			_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return Certificate{}, nil, fmt.Errorf("certstore: writing Secret %s/%s: %w", k.Namespace, sec.Name, err)
	}
	return meta, warns, nil
}

// LoadSecret turns a kubernetes.io/tls Secret into a serving certificate:
// tls.crt (the leaf, possibly followed by its chain, as cert-manager writes
// it), tls.key, and the store's chain.crt when present. The pair must match;
// self-signed roots are not sent, as in Store.Load.
func LoadSecret(s *corev1.Secret) (tls.Certificate, error) {
	name := s.Namespace + "/" + s.Name
	crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if len(crt) == 0 || len(key) == 0 {
		return tls.Certificate{}, fmt.Errorf("Secret %s: needs %s and %s", name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	certs, err := parseCerts(crt, InputCertificate)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("Secret %s: %s: %w", name, corev1.TLSCertKey, err)
	}
	if len(certs) == 0 {
		return tls.Certificate{}, fmt.Errorf("Secret %s: %s holds no certificate", name, corev1.TLSCertKey)
	}
	chain := certs[1:]
	if extra := s.Data[KubeChainKey]; len(extra) > 0 {
		more, err := parseCerts(extra, InputChain)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("Secret %s: %s: %w", name, KubeChainKey, err)
		}
		chain = append(chain, more...)
	}
	signer, err := parseKey(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("Secret %s: %s: %w", name, corev1.TLSPrivateKeyKey, err)
	}
	leaf := certs[0]
	if err := matchKey(leaf, signer); err != nil {
		return tls.Certificate{}, fmt.Errorf("Secret %s: %w", name, err)
	}
	tc := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: signer, Leaf: leaf}
	for _, c := range chain {
		if !selfSigned(c) && !c.Equal(leaf) {
			tc.Certificate = append(tc.Certificate, c.Raw)
		}
	}
	return tc, nil
}

// SecretARN returns the ARN a store Secret holds, checked against its label
// so that a Secret copied or relabelled by hand is not mistaken for another.
func SecretARN(s *corev1.Secret) (string, error) {
	if s.Labels[KubeLabelStore] != "true" {
		return "", errors.New("not a certificate-store Secret")
	}
	arn := s.Annotations[KubeAnnotationARN]
	if arn == "" || s.Labels[KubeLabelARNHash] != KubeARNHash(arn) {
		return "", fmt.Errorf("Secret %s/%s: annotation %s does not match label %s", s.Namespace, s.Name, KubeAnnotationARN, KubeLabelARNHash)
	}
	return arn, nil
}
