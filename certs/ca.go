package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// File names inside a CA directory.
const (
	CertFile = "ca.pem"
	KeyFile  = "ca-key.pem"
)

// ErrExists is returned by Init when a CA is already present: a CA is never
// overwritten, because every client that trusts it would break.
var ErrExists = errors.New("certs: CA already exists")

// CA is a signing certificate authority: a root made by aigress or an
// enterprise root or intermediate. Signing goes through crypto.Signer so the
// key can later live in a KMS or HSM.
type CA struct {
	Cert   *x509.Certificate
	Chain  []*x509.Certificate // intermediates above Cert, if any (not the root)
	Signer crypto.Signer
	der    [][]byte // Cert then Chain, DER
}

// InitOptions tune Init.
type InitOptions struct {
	CommonName   string
	Organization string
	Validity     time.Duration
	Now          func() time.Time
}

// Init creates an ECDSA P-256 root CA in dir (ca.pem, ca-key.pem mode 0600).
// It refuses to overwrite an existing CA.
func Init(dir string, opts InitOptions) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrExists, p)
		}
	}
	if opts.CommonName == "" {
		opts.CommonName = "aigress local CA"
	}
	if opts.Organization == "" {
		opts.Organization = "aigress"
	}
	if opts.Validity == 0 {
		opts.Validity = 5 * 365 * 24 * time.Hour
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	skid := keyID(&key.PublicKey)
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.CommonName, Organization: []string{opts.Organization}},
		NotBefore:             t.Add(-time.Hour),
		NotAfter:              t.Add(opts.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: create CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: marshal CA key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: create %s: %w", dir, err)
	}
	// O_EXCL: never overwrite, even if another process raced us.
	if err := writeExcl(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeExcl(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		_ = os.Remove(keyPath)
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse new CA: %w", err)
	}
	return &CA{Cert: cert, Signer: key, der: [][]byte{der}}, nil
}

func writeExcl(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, path)
		}
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}

// Load reads a CA from a certificate PEM (the signing certificate first,
// then optionally its chain up to, not necessarily including, the root) and
// a private key PEM (PKCS#8, PKCS#1 RSA or SEC1 EC). RSA and ECDSA CAs are
// accepted; leaves are ECDSA P-256 either way.
func Load(certPath, keyPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("certs: load CA %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("certs: load CA key %s: %w", keyPath, err)
	}
	ca, err := Parse(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: load CA %s: %w", certPath, err)
	}
	return ca, nil
}

// LoadDir loads ca.pem and ca-key.pem from dir.
func LoadDir(dir string) (*CA, error) {
	return Load(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
}

// Parse builds a CA from PEM data. See Load.
func Parse(certPEM, keyPEM []byte) (*CA, error) {
	var certs []*x509.Certificate
	var ders [][]byte
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
		ders = append(ders, b.Bytes)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE block")
	}
	signer, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	ca := certs[0]
	if !ca.IsCA || !ca.BasicConstraintsValid {
		return nil, errors.New("certificate is not a CA (basicConstraints CA:TRUE missing)")
	}
	if ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("CA certificate lacks keyCertSign usage")
	}
	if !publicKeysEqual(ca.PublicKey, signer.Public()) {
		return nil, errors.New("private key does not match the CA certificate")
	}
	// Drop a self-signed root from the chain we send: clients must have it.
	chain := certs[1:]
	chainDER := ders[1:]
	if n := len(chain); n > 0 && isSelfSigned(chain[n-1]) {
		chain, chainDER = chain[:n-1], chainDER[:n-1]
	}
	all := append([][]byte{ders[0]}, chainDER...)
	return &CA{Cert: ca, Chain: chain, Signer: signer, der: all}, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	for rest := keyPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no private key PEM block")
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported key type %T", k)
			}
			switch s.(type) {
			case *ecdsa.PrivateKey, *rsa.PrivateKey:
				return s, nil
			}
			return nil, fmt.Errorf("unsupported CA key type %T (want RSA or ECDSA)", k)
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse RSA key: %w", err)
			}
			return k, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse EC key: %w", err)
			}
			return k, nil
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported: decrypt it or use a KMS signer")
		}
	}
}

type equaler interface{ Equal(crypto.PublicKey) bool }

func publicKeysEqual(a, b crypto.PublicKey) bool {
	if e, ok := a.(equaler); ok {
		return e.Equal(b)
	}
	return false
}

// CertPEM returns the CA certificate (not its chain) as PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// CertDER returns the CA certificate as DER.
func (ca *CA) CertDER() []byte { return ca.Cert.Raw }

// Fingerprint is the SHA-256 of the CA certificate, hex, for display.
func (ca *CA) Fingerprint() string {
	s := sha256.Sum256(ca.Cert.Raw)
	return fmt.Sprintf("%X", s[:])
}

func randSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	s := sha256.Sum256(der)
	return s[:20]
}
