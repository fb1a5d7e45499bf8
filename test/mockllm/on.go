package mockllm

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// StartOn is Start on a listener the caller opened, e.g. one created inside
// a network namespace for transparent-mode tests.
func StartOn(ln net.Listener, opts Options) (*Server, error) {
	if opts.ChunkDelay <= 0 {
		opts.ChunkDelay = 20 * time.Millisecond
	}
	if opts.Chunks <= 0 {
		opts.Chunks = 5
	}
	ca, err := newTestCA("aigress mockllm test CA")
	if err != nil {
		return nil, err
	}
	leaf, err := ca.leaf(opts.Hosts)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, ca: ca, conns: map[net.Conn]struct{}{}}
	s.ln = serveTLSOn(ln, leaf, s, &s.srv, &s.wg)
	return s, nil
}

// StartPlainTLSOn is StartPlainTLS on a listener the caller opened.
func StartPlainTLSOn(ln net.Listener, name string) (*TLSServer, error) {
	t, err := StartPlainTLS(name)
	if err != nil {
		return nil, err
	}
	// Serve the same site on ln too; Close stops both.
	leaf := t.srv.TLSConfig.Certificates[0]
	var extra *http.Server
	serveTLSOn(ln, leaf, t.srv.Handler, &extra, &t.wg)
	t.extra = append(t.extra, extra)
	return t, nil
}

func serveTLSOn(ln net.Listener, leaf tls.Certificate, h http.Handler, out **http.Server, wg *sync.WaitGroup) net.Listener {
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{leaf}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	*out = srv
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.ServeTLS(ln, "", "")
	}()
	return ln
}
