package mitm

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigress/aigress/certs"
)

const (
	aiHost   = "api.example.com"   // intercepted by the default connect stage
	bankHost = "bank.example.com"  // tunnelled by the default connect stage
	badHost  = "api.untrusted.com" // intercepted; its upstream has an untrusted certificate
)

// doneRec is a snapshot of a flow taken in its Done stage.
type doneRec struct {
	ID           string
	Kind, Mode   string
	Status       int
	Err          error
	ShortCircuit bool
	BodyTooLarge bool
	InBody       []byte
	ReqBytes     int64
	RespBytes    int64
	Client       Client
	Dest         Dest
}

// recorder is a DoneStage that counts Done calls per flow.
type recorder struct {
	mu    sync.Mutex
	calls map[*Flow]int
	ch    chan doneRec
}

func newRecorder() *recorder {
	return &recorder{calls: map[*Flow]int{}, ch: make(chan doneRec, 256)}
}

func (r *recorder) Done(f *Flow) {
	r.mu.Lock()
	r.calls[f]++
	r.mu.Unlock()
	rec := doneRec{ID: f.ID, Kind: f.Kind, Mode: f.Mode, Status: f.Status, Err: f.Err, ShortCircuit: f.ShortCircuit,
		BodyTooLarge: f.BodyTooLarge, InBody: f.InBody, ReqBytes: f.ReqBytes, RespBytes: f.RespBytes,
		Client: f.Client, Dest: f.Dest}
	select {
	case r.ch <- rec:
	default:
	}
}

// next waits for the next Done.
func (r *recorder) next(t testing.TB) doneRec {
	t.Helper()
	select {
	case d := <-r.ch:
		return d
	case <-time.After(15 * time.Second):
		t.Fatal("no Done call")
		return doneRec{}
	}
}

// exactlyOnce asserts n flows ended, each with exactly one Done.
func (r *recorder) exactlyOnce(t testing.TB, n int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) != n {
		t.Errorf("Done ran for %d flows, want %d", len(r.calls), n)
	}
	for f, c := range r.calls {
		if c != 1 {
			t.Errorf("Done ran %d times for flow %s", c, f.ID)
		}
	}
}

// Small test stages.
type connectStage struct{ fn func(*Flow) ConnectVerdict }

func (s connectStage) Connect(f *Flow) (ConnectVerdict, bool) { return s.fn(f), true }

type requestStage struct{ fn func(*Flow) }

func (s requestStage) Request(f *Flow) { s.fn(f) }

type responseStage struct{ fn func(*Flow) }

func (s responseStage) Response(f *Flow) { s.fn(f) }

// defaultConnect intercepts the AI names and tunnels the rest.
func defaultConnect(f *Flow) ConnectVerdict {
	if f.Dest.Host == aiHost || f.Dest.Host == badHost {
		return ConnectVerdict{Action: Intercept}
	}
	return ConnectVerdict{Action: Tunnel}
}

// sseCtl drives one SSE response event by event.
type sseCtl struct {
	step chan struct{} // one receive per event after the first
	free bool          // after the first event, stream until the request is cancelled
	gone chan struct{} // closed when the upstream handler saw its request end early
}

// env is a test CA, a trusted TLS upstream (h1+h2) and an untrusted one.
type env struct {
	t         testing.TB
	minter    *certs.Minter
	caPool    *x509.CertPool // trusts the aigress test CA
	up        *httptest.Server
	upRoots   *x509.CertPool // trusts the upstream (httptest) certificate
	untrusted *httptest.Server
	hits      atomic.Int64
	sse       sync.Map // id -> *sseCtl
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ca, err := certs.Init(t.TempDir(), certs.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := certs.NewMinter(ca, certs.MinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, minter: m, caPool: x509.NewCertPool()}
	e.caPool.AddCert(ca.Cert)

	e.up = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.up.EnableHTTP2 = true
	e.up.StartTLS()
	t.Cleanup(e.up.Close)
	e.upRoots = x509.NewCertPool()
	e.upRoots.AddCert(e.up.Certificate())

	// An upstream whose certificate comes from a CA nobody trusts.
	other, err := certs.Init(t.TempDir(), certs.InitOptions{CommonName: "untrusted test CA"})
	if err != nil {
		t.Fatal(err)
	}
	om, err := certs.NewMinter(other, certs.MinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := om.Get(badHost)
	if err != nil {
		t.Fatal(err)
	}
	e.untrusted = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.untrusted.TLS = &tls.Config{Certificates: []tls.Certificate{*leaf}}
	e.untrusted.StartTLS()
	t.Cleanup(e.untrusted.Close)
	return e
}

func (e *env) serve(w http.ResponseWriter, r *http.Request) {
	e.hits.Add(1)
	w.Header().Set("X-Upstream-Proto", r.Proto)
	switch r.URL.Path {
	case "/ok":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello")
	case "/echo":
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		_, _ = fmt.Fprintf(w, "%s:%d", hex.EncodeToString(h.Sum(nil)), n)
	case "/nocontent":
		w.WriteHeader(http.StatusNoContent)
	case "/stream":
		fl := w.(http.Flusher)
		for _, s := range []string{"abc", "defg", "hij"} {
			_, _ = io.WriteString(w, s)
			fl.Flush()
		}
	case "/sse":
		v, ok := e.sse.Load(r.URL.Query().Get("id"))
		if !ok {
			http.Error(w, "unknown sse id", http.StatusNotFound)
			return
		}
		c := v.(*sseCtl)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		fl := w.(http.Flusher)
		fl.Flush()
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; ; i++ {
			// The first event goes out with the headers: goproxy's HTTP/2
			// side sends the response headers only with the first body
			// bytes. Later events wait for the test (or stream freely).
			switch {
			case i == 0:
			case c.free:
				if i > 20000 || time.Now().After(deadline) {
					return
				}
				select {
				case <-r.Context().Done():
					close(c.gone)
					return
				case <-time.After(time.Millisecond):
				}
			default:
				select {
				case _, more := <-c.step:
					if !more {
						return // the test ends the stream
					}
				case <-r.Context().Done():
					close(c.gone)
					return
				}
			}
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			fl.Flush()
		}
	default:
		http.NotFound(w, r)
	}
}

func (e *env) newSSE(id string, free bool) *sseCtl {
	c := &sseCtl{step: make(chan struct{}), free: free, gone: make(chan struct{})}
	e.sse.Store(id, c)
	return c
}

// startProxy starts an explicit proxy with the given stages followed by a
// recorder. Cleanup shuts it down.
func (e *env) startProxy(t testing.TB, opts Options, stages ...any) (*Proxy, string, *recorder) {
	t.Helper()
	rec := newRecorder()
	opts.Minter = e.minter
	opts.Pipeline = NewPipeline(append(stages, rec)...)
	if opts.UpstreamRoots == nil {
		opts.UpstreamRoots = e.upRoots
	}
	if opts.Resolve == nil {
		opts.Resolve = map[string]string{}
	}
	for _, h := range []string{aiHost, bankHost} {
		if _, ok := opts.Resolve[h+":443"]; !ok {
			opts.Resolve[h+":443"] = e.up.Listener.Addr().String()
		}
	}
	if _, ok := opts.Resolve[badHost+":443"]; !ok {
		opts.Resolve[badHost+":443"] = e.untrusted.Listener.Addr().String()
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return p, l.Addr().String(), rec
}

// client returns an HTTP client using the proxy at addr, speaking HTTP/2
// (ALPN) or HTTP/1.1 towards the MITM, trusting roots.
func client(addr string, h2 bool, roots *x509.CertPool) (*http.Client, *http.Transport) {
	tr := &http.Transport{
		Proxy:           http.ProxyURL(&url.URL{Scheme: "http", Host: addr}),
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}
	if h2 {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}, tr
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]) + ":" + strconv.Itoa(len(b))
}

// holdBack keeps the last n bytes seen and releases them in End.
type holdBack struct {
	n    int
	held []byte
}

func (h *holdBack) Chunk(p []byte) []byte {
	all := append(h.held, p...)
	if len(all) <= h.n {
		h.held = all
		return nil
	}
	cut := len(all) - h.n
	h.held = append([]byte(nil), all[cut:]...)
	return all[:cut]
}

func (h *holdBack) End() []byte { return h.held }

// upper upper-cases ASCII letters.
type upper struct{}

func (upper) Chunk(p []byte) []byte {
	out := make([]byte, len(p))
	for i, c := range p {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

func (upper) End() []byte { return nil }
