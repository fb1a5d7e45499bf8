package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestInitAndLoad(t *testing.T) {
	dir := t.TempDir()
	ca, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", st.Mode().Perm())
	}
	if _, ok := ca.Cert.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("CA key is %T, want ECDSA", ca.Cert.PublicKey)
	}
	if _, err := Init(dir, InitOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: %v, want ErrExists", err)
	}
	loaded, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Fingerprint() != ca.Fingerprint() {
		t.Fatal("loaded CA differs")
	}
}

// enterprise builds an RSA root and an ECDSA intermediate below it, as an
// enterprise PKI would hand them over.
func enterprise(t *testing.T) (root *x509.Certificate, certPEM, keyPEM []byte) {
	t.Helper()
	rootKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Corp Root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rt, rt, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ = x509.ParseCertificate(rootDER)
	intKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	it := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Corp Proxy Intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	intDER, err := x509.CreateCertificate(rand.Reader, it, root, &intKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(intKey)
	certPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: intDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})...)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
	return root, certPEM, keyPEM
}

func TestEnterpriseIntermediateChains(t *testing.T) {
	root, certPEM, keyPEM := enterprise(t)
	ca, err := Parse(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMinter(ca, MinterOptions{Validity: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := m.Get("api.openai.com:443")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := leaf.PrivateKey.(*ecdsa.PrivateKey); !ok || leaf.Leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatal("leaf key is not ECDSA")
	}
	if leaf.Leaf.NotAfter.After(ca.Cert.NotAfter) {
		t.Fatalf("leaf outlives CA: %v > %v", leaf.Leaf.NotAfter, ca.Cert.NotAfter)
	}
	if len(leaf.Certificate) != 2 {
		t.Fatalf("chain len %d, want leaf+intermediate (root dropped)", len(leaf.Certificate))
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	inter.AddCert(ca.Cert)
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "api.openai.com", Roots: roots, Intermediates: inter}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	_, certPEM, _ := enterprise(t)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kd, _ := x509.MarshalECPrivateKey(otherKey)
	cases := []struct {
		name      string
		cert, key []byte
	}{
		{"fail/no-cert", []byte("junk"), nil},
		{"fail/no-key", certPEM, []byte("junk")},
		{"fail/key-mismatch", certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})},
		{"fail/encrypted", certPEM, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse(c.cert, c.key); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

func TestLeafSANs(t *testing.T) {
	ca, err := Init(t.TempDir(), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMinter(ca, MinterOptions{})
	cases := []struct{ in, dns, ip string }{
		{"ok/name", "api.openai.com", ""},
		{"ok/upper-dot-port", "API.OpenAI.com.:443", ""},
		{"ok/ipv4", "", "10.1.2.3"},
		{"ok/ipv6", "", "2001:db8::1"},
	}
	_ = cases
	for _, c := range []struct{ name, in, dns, ip string }{
		{"ok/name", "api.openai.com", "api.openai.com", ""},
		{"ok/upper-dot-port", "API.OpenAI.com.:443", "api.openai.com", ""},
		{"ok/ipv4", "10.1.2.3", "", "10.1.2.3"},
		{"ok/ipv6", "[2001:db8::1]:443", "", "2001:db8::1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := m.Get(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if c.dns != "" && (len(l.Leaf.DNSNames) != 1 || l.Leaf.DNSNames[0] != c.dns) {
				t.Fatalf("DNS SANs %v", l.Leaf.DNSNames)
			}
			if c.ip != "" && (len(l.Leaf.IPAddresses) != 1 || l.Leaf.IPAddresses[0].String() != c.ip) {
				t.Fatalf("IP SANs %v", l.Leaf.IPAddresses)
			}
		})
	}
}

func TestCacheSingleFlightAndExpiry(t *testing.T) {
	ca, _ := Init(t.TempDir(), InitOptions{})
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	m, _ := NewMinter(ca, MinterOptions{Validity: 8 * time.Hour, CacheSize: 2,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	var wg sync.WaitGroup
	got := make([]*tls.Certificate, 16)
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got[i], _ = m.Get("claude.ai")
		}(i)
	}
	wg.Wait()
	for _, g := range got[1:] {
		if g != got[0] {
			t.Fatal("concurrent misses minted more than once")
		}
	}
	// Past the cache TTL (validity/4 = 2h) a new leaf is minted.
	clock.Store(now.Add(3 * time.Hour).UnixNano())
	again, _ := m.Get("claude.ai")
	if again == got[0] {
		t.Fatal("stale cache entry served past its TTL")
	}
	// Bounded.
	m.Get("a.example")
	m.Get("b.example")
	m.Get("c.example")
	if m.Len() > 2 {
		t.Fatalf("cache holds %d > 2", m.Len())
	}
}

func BenchmarkMint(b *testing.B) {
	ca, _ := Init(b.TempDir(), InitOptions{})
	m, _ := NewMinter(ca, MinterOptions{})
	for b.Loop() {
		if _, err := m.Mint("api.openai.com"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheHit(b *testing.B) {
	ca, _ := Init(b.TempDir(), InitOptions{})
	m, _ := NewMinter(ca, MinterOptions{})
	m.Get("api.openai.com")
	for b.Loop() {
		m.Get("api.openai.com")
	}
}
