package certstore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// Input names one of the three PEM inputs of an import, in ACM's words.
type Input string

const (
	InputCertificate Input = "certificate"
	InputChain       Input = "certificate chain"
	InputKey         Input = "private key"
)

// InputError is a problem with one of the import inputs. Import only sees
// bytes, so File is empty when it returns; a caller that read the bytes from
// a file sets File (errors.As gives a pointer) so the message names it.
//
// Messages never quote PEM contents: a key file's bytes must not reach a log.
type InputError struct {
	Input Input
	File  string
	Block int // 1-based PEM block number; 0 when the problem is not one block
	Err   error
}

func (e *InputError) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Input))
	if e.File != "" {
		b.WriteString(" ")
		b.WriteString(e.File)
	}
	b.WriteString(": ")
	if e.Block > 0 {
		fmt.Fprintf(&b, "PEM block %d: ", e.Block)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *InputError) Unwrap() error { return e.Err }

func inputErr(in Input, block int, format string, args ...any) *InputError {
	return &InputError{Input: in, Block: block, Err: fmt.Errorf(format, args...)}
}

// pemBlocks splits data into PEM blocks and rejects anything pem.Decode would
// silently skip after the first block: a truncated or corrupted block would
// otherwise just vanish, and the import would go ahead with less than the
// operator gave us. Text before the first block is allowed because
// `openssl pkcs12` and some CAs put "Bag Attributes"/"subject=" lines there.
func pemBlocks(data []byte, in Input) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	leftover := bytes.TrimSpace(rest)
	switch {
	case len(leftover) == 0:
		return blocks, nil
	case len(blocks) == 0 && bytes.Contains(leftover, []byte("-----BEGIN")):
		return nil, inputErr(in, 1, "malformed PEM (bad base64, or a missing or mismatched END line)")
	case len(blocks) == 0:
		return nil, inputErr(in, 0, "no PEM data found; if the file is DER, convert it with `openssl x509 -inform der` (certificates) or `openssl pkey -inform der` (keys)")
	case bytes.Contains(leftover, []byte("-----BEGIN")):
		return nil, inputErr(in, len(blocks)+1, "malformed PEM (bad base64, or a missing or mismatched END line)")
	default:
		return nil, inputErr(in, 0, "unexpected non-PEM data after PEM block %d", len(blocks))
	}
}

// parseCerts parses every block of data as a certificate.
func parseCerts(data []byte, in Input) ([]*x509.Certificate, error) {
	blocks, err := pemBlocks(data, in)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			if strings.Contains(b.Type, "PRIVATE KEY") {
				return nil, inputErr(in, i+1, "holds a %s, not a certificate; keys go in the private key file", b.Type)
			}
			return nil, inputErr(in, i+1, "type %q, want CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, &InputError{Input: in, Block: i + 1, Err: err}
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// parseLeaf parses the certificate input, which must hold exactly one
// certificate, as ACM requires.
func parseLeaf(data []byte) (*x509.Certificate, error) {
	certs, err := parseCerts(data, InputCertificate)
	if err != nil {
		return nil, err
	}
	switch len(certs) {
	case 0:
		return nil, inputErr(InputCertificate, 0, "no certificate found")
	case 1:
		return certs[0], nil
	default:
		return nil, inputErr(InputCertificate, 0, "holds %d certificates; put only the server certificate here and its issuers in the certificate chain", len(certs))
	}
}

// parseKey parses the private key input: one unencrypted PKCS#8, PKCS#1 (RSA)
// or SEC1 (EC) key. An "EC PARAMETERS" block, which `openssl ecparam
// -genkey` writes before the key, is skipped.
func parseKey(data []byte) (crypto.Signer, error) {
	blocks, err := pemBlocks(data, InputKey)
	if err != nil {
		return nil, err
	}
	var (
		key   any
		found int
	)
	for i, b := range blocks {
		n := i + 1
		if b.Type == "EC PARAMETERS" {
			continue
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "" {
			return nil, inputErr(InputKey, n, "the key is encrypted; decrypt it first (`openssl pkey -in KEY -out KEY.plain`)")
		}
		var perr error
		switch b.Type {
		case "PRIVATE KEY":
			key, perr = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, perr = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, perr = x509.ParseECPrivateKey(b.Bytes)
		case "CERTIFICATE":
			return nil, inputErr(InputKey, n, "holds a CERTIFICATE, not a private key")
		default:
			return nil, inputErr(InputKey, n, "type %q, want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", b.Type)
		}
		if perr != nil {
			return nil, &InputError{Input: InputKey, Block: n, Err: perr}
		}
		found++
	}
	switch {
	case found == 0:
		return nil, inputErr(InputKey, 0, "no private key found")
	case found > 1:
		return nil, inputErr(InputKey, 0, "holds %d private keys, want one", found)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, inputErr(InputKey, 0, "unsupported key type %T; use RSA, ECDSA or Ed25519", key)
	}
	if keyAlgorithm(signer.Public()) == "" {
		return nil, inputErr(InputKey, 0, "unsupported key type %T; use RSA, ECDSA or Ed25519", key)
	}
	return signer, nil
}

// matchKey checks that key is the private half of cert's public key.
func matchKey(cert *x509.Certificate, key crypto.Signer) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if ok && pub.Equal(cert.PublicKey) {
		return nil
	}
	detail := "a different key of the same type"
	if ka, ca := keyAlgorithm(key.Public()), keyAlgorithm(cert.PublicKey); ka != ca {
		detail = fmt.Sprintf("key is %s, certificate has %s", ka, ca)
	}
	return &InputError{Input: InputKey, Err: fmt.Errorf("does not match the certificate's public key (%s)", detail)}
}

// keyAlgorithm names a public key the way ACM's describe-certificate does
// (RSA_2048, EC_prime256v1, ...). ACM has no Ed25519; we call it ED25519.
// It returns "" for key types we do not serve.
func keyAlgorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA_%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		switch k.Curve.Params().Name {
		case "P-256":
			return "EC_prime256v1"
		case "P-384":
			return "EC_secp384r1"
		case "P-521":
			return "EC_secp521r1"
		}
		return "EC_" + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "ED25519"
	}
	return ""
}

func isBlank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }
