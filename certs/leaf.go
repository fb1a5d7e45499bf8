package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// MinterOptions tune leaf minting and caching.
type MinterOptions struct {
	// CacheSize bounds the number of cached leaves (default 4096).
	CacheSize int
	// Validity of a leaf (default 7 days), capped by the CA's NotAfter.
	Validity time.Duration
	// CacheTTL is how long a leaf is served from cache (default a quarter
	// of Validity): a cached leaf always has most of its life left.
	CacheTTL time.Duration
	Now      func() time.Time
}

// Minter mints ECDSA P-256 leaf certificates signed by a CA and caches them.
// It is safe for concurrent use; concurrent misses for one name mint once.
type Minter struct {
	ca    *CA
	opts  MinterOptions
	cache *lru.Cache[string, *cachedLeaf]

	mu       sync.Mutex
	inflight map[string]*mintCall

	// key is shared by all leaves: minting then costs one signature, not
	// a key generation. It never leaves the process.
	key *ecdsa.PrivateKey
}

type cachedLeaf struct {
	cert    *tls.Certificate
	expires time.Time
}

type mintCall struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// NewMinter returns a Minter for ca.
func NewMinter(ca *CA, opts MinterOptions) (*Minter, error) {
	if ca == nil || ca.Signer == nil {
		return nil, errors.New("certs: minter needs a CA with a signer")
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 4096
	}
	if opts.Validity <= 0 {
		opts.Validity = 7 * 24 * time.Hour
	}
	if opts.CacheTTL <= 0 || opts.CacheTTL > opts.Validity/2 {
		opts.CacheTTL = opts.Validity / 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c, err := lru.New[string, *cachedLeaf](opts.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("certs: cache: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: leaf key: %w", err)
	}
	return &Minter{ca: ca, opts: opts, cache: c, inflight: map[string]*mintCall{}, key: key}, nil
}

// CA returns the signing CA.
func (m *Minter) CA() *CA { return m.ca }

// normalizeName lower-cases, strips a port and a trailing dot.
func normalizeName(name string) string {
	if h, _, err := net.SplitHostPort(name); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	return strings.Trim(name, "[]")
}

// Get returns a leaf for name (a DNS name or an IP address), from the cache
// when it has one with enough life left.
func (m *Minter) Get(name string) (*tls.Certificate, error) {
	name = normalizeName(name)
	if name == "" {
		return nil, errors.New("certs: empty server name")
	}
	now := m.opts.Now()
	if e, ok := m.cache.Get(name); ok && now.Before(e.expires) {
		return e.cert, nil
	}
	m.mu.Lock()
	if c, ok := m.inflight[name]; ok {
		m.mu.Unlock()
		<-c.done
		return c.cert, c.err
	}
	c := &mintCall{done: make(chan struct{})}
	m.inflight[name] = c
	m.mu.Unlock()

	c.cert, c.err = m.Mint(name)
	if c.err == nil {
		m.cache.Add(name, &cachedLeaf{cert: c.cert, expires: now.Add(m.opts.CacheTTL)})
	}
	m.mu.Lock()
	delete(m.inflight, name)
	m.mu.Unlock()
	close(c.done)
	return c.cert, c.err
}

// Mint signs a fresh leaf for name without touching the cache.
func (m *Minter) Mint(name string) (*tls.Certificate, error) {
	name = normalizeName(name)
	if name == "" {
		return nil, errors.New("certs: empty server name")
	}
	now := m.opts.Now()
	notAfter := now.Add(m.opts.Validity)
	if caEnd := m.ca.Cert.NotAfter; notAfter.After(caEnd) {
		notAfter = caEnd
	}
	notBefore := now.Add(-time.Hour)
	if notBefore.Before(m.ca.Cert.NotBefore) {
		notBefore = m.ca.Cert.NotBefore
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("certs: CA %q expired at %s", m.ca.Cert.Subject.CommonName, m.ca.Cert.NotAfter.Format(time.RFC3339))
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"aigress"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        m.ca.Cert.SubjectKeyId,
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.ca.Cert, &m.key.PublicKey, m.ca.Signer)
	if err != nil {
		return nil, fmt.Errorf("certs: sign leaf for %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse leaf for %s: %w", name, err)
	}
	chain := make([][]byte, 0, len(m.ca.der)+1)
	chain = append(chain, der)
	chain = append(chain, m.ca.der...)
	return &tls.Certificate{Certificate: chain, PrivateKey: m.key, Leaf: leaf}, nil
}

// TLSConfig returns a server TLS config that mints leaves from the SNI, or
// from fallbackHost when the client sent no SNI. nextProtos is the ALPN list
// offered to clients (e.g. "h2", "http/1.1").
func (m *Minter) TLSConfig(fallbackHost string, nextProtos []string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name := hello.ServerName
			if name == "" {
				name = fallbackHost
			}
			return m.Get(name)
		},
	}
}

// Len is the number of cached leaves.
func (m *Minter) Len() int { return m.cache.Len() }
