package mockllm

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// TLSServer is a plain HTTPS site with its own CA: a stand-in for a
// non-AI origin ("bank.example") that must be tunnelled untouched, or for
// an upstream with an untrusted certificate.
type TLSServer struct {
	ln          net.Listener
	srv         *http.Server
	wg          sync.WaitGroup
	caPEM       []byte
	fingerprint string
	hits        atomic.Int64
	extra       []*http.Server // servers on caller-provided listeners (StartPlainTLSOn)
}

// BankBody is what a TLSServer answers on every path.
const BankBody = "bank.example: origin says hello\n"

// StartPlainTLS serves HTTPS on 127.0.0.1:0 with a leaf for name (plus
// localhost and loopback IPs) from its own, distinct test CA. Every request
// gets 200 with BankBody.
func StartPlainTLS(name string) (*TLSServer, error) {
	return startTLSServer("aigress mockllm bank CA", []string{name}, true)
}

// StartUntrusted serves like StartPlainTLS for hosts, but its CA is never
// exposed: no client can verify it (for 502-on-bad-certificate tests).
func StartUntrusted(hosts ...string) (*TLSServer, error) {
	return startTLSServer("aigress mockllm untrusted CA", hosts, false)
}

func startTLSServer(caName string, hosts []string, exposeCA bool) (*TLSServer, error) {
	ca, err := newTestCA(caName)
	if err != nil {
		return nil, err
	}
	leaf, err := ca.leaf(hosts)
	if err != nil {
		return nil, err
	}
	t := &TLSServer{fingerprint: Fingerprint(leaf.Certificate[0])}
	if exposeCA {
		t.caPEM = ca.pem
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.hits.Add(1)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", fmt.Sprint(len(BankBody)))
		_, _ = w.Write([]byte(BankBody))
	})
	ln, err := serveTLS(leaf, h, &t.srv, &t.wg)
	if err != nil {
		return nil, err
	}
	t.ln = ln
	return t, nil
}

// Addr is "127.0.0.1:PORT".
func (t *TLSServer) Addr() string { return t.ln.Addr().String() }

// CAPEM is the site's own CA certificate (nil for StartUntrusted).
func (t *TLSServer) CAPEM() []byte { return bytes.Clone(t.caPEM) }

// Fingerprint is the hex SHA-256 of the leaf certificate's DER: what a
// client that reached the origin untouched sees.
func (t *TLSServer) Fingerprint() string { return t.fingerprint }

// Hits counts requests served.
func (t *TLSServer) Hits() int64 { return t.hits.Load() }

// Close stops the server.
func (t *TLSServer) Close() error {
	err := t.srv.Close()
	for _, x := range t.extra {
		_ = x.Close()
	}
	t.wg.Wait()
	return err
}
