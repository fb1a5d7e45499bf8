package mitm

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// transparentEnv is a proxy with a transparent listener whose original
// destination lookup is injected (as eBPF mode does).
type transparentEnv struct {
	*env
	p     *Proxy
	rec   *recorder
	addr  string // transparent listener
	bank  *httptest.Server
	orig  atomic.Pointer[netip.AddrPort]
	proc  *Process
	plain *httptest.Server
}

func newTransparentEnv(t *testing.T) *transparentEnv {
	e := newEnv(t)
	te := &transparentEnv{env: e, proc: &Process{PID: 4242, UID: 1000, Comm: "curl", Cgroup: "/user.slice"}}
	te.bank = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "bank")
	}))
	t.Cleanup(te.bank.Close)
	te.plain = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(te.plain.Close)
	bankAP := netip.MustParseAddrPort(te.bank.Listener.Addr().String())
	te.orig.Store(&bankAP)

	resolve := map[string]string{
		// The AI name at the (fake) original port goes to the AI upstream.
		net.JoinHostPort(aiHost, strconv.Itoa(int(bankAP.Port()))): e.up.Listener.Addr().String(),
		aiHost + ":80":     te.plain.Listener.Addr().String(),
		bankHost + ":443":  te.bank.Listener.Addr().String(),
		bankHost + ":1234": "127.0.0.1:1", // never used: would show a wrong dial
	}
	te.p, _, te.rec = e.startProxy(t, Options{Resolve: resolve}, connectStage{defaultConnect})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	te.addr = l.Addr().String()
	opts := TransparentOptions{OrigDst: func(c net.Conn) (netip.AddrPort, *Process, bool) {
		return *te.orig.Load(), te.proc, true
	}}
	go func() { _ = te.p.ServeTransparent(l, opts) }()
	return te
}

// httpClient dials the transparent listener whatever the URL says, as a
// redirected client would.
func (te *transparentEnv) httpClient(h2 bool, tc *tls.Config) (*http.Client, *http.Transport) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, te.addr)
		},
		TLSClientConfig: tc,
	}
	if h2 {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}, tr
}

func TestTransparent(t *testing.T) {
	te := newTransparentEnv(t)
	bankAP := *te.orig.Load()

	checkEBPF := func(t *testing.T, d doneRec) {
		t.Helper()
		if d.Mode != ModeEBPF || d.Client.Process == nil || d.Client.Process.PID != 4242 || d.Client.Process.Comm != "curl" {
			t.Errorf("mode %q process %+v", d.Mode, d.Client.Process)
		}
		if !d.Client.Addr.Addr().IsLoopback() {
			t.Errorf("client addr %v", d.Client.Addr)
		}
	}

	for _, proto := range []string{"h1", "h2"} {
		t.Run("ok/ai-sni-intercepted/"+proto, func(t *testing.T) {
			c, tr := te.httpClient(proto == "h2", &tls.Config{RootCAs: te.caPool})
			resp := get(t, c, http.MethodPost, "https://"+aiHost+"/echo", strings.NewReader("prompt"))
			if body := readAll(t, resp); body != sha([]byte("prompt")) {
				t.Errorf("body %q", body)
			}
			tr.CloseIdleConnections()
			chain := resp.TLS.VerifiedChains[0]
			if chain[len(chain)-1].Subject.CommonName != "aigress local CA" {
				t.Errorf("leaf not issued by the test CA: %v", chain[len(chain)-1].Subject)
			}
			if want := map[string]int{"h1": 1, "h2": 2}[proto]; resp.ProtoMajor != want {
				t.Errorf("proto %s", resp.Proto)
			}
			d := te.rec.next(t)
			checkEBPF(t, d)
			if d.Kind != KindIntercept || d.Status != 200 || d.Err != nil || string(d.InBody) != "prompt" {
				t.Errorf("Done %+v", d)
			}
			if d.Dest.SNI != aiHost || d.Dest.Host != aiHost || d.Dest.OrigAddr != bankAP || d.Dest.Port != int(bankAP.Port()) {
				t.Errorf("dest %+v", d.Dest)
			}
		})
	}

	t.Run("ok/other-sni-tunnelled", func(t *testing.T) {
		c, tr := te.httpClient(false, &tls.Config{RootCAs: te.upRoots})
		resp := get(t, c, http.MethodGet, "https://"+bankHost+"/", nil)
		if body := readAll(t, resp); body != "bank" {
			t.Errorf("body %q", body)
		}
		if !resp.TLS.PeerCertificates[0].Equal(te.bank.Certificate()) {
			t.Error("the client did not see the bank's certificate")
		}
		tr.CloseIdleConnections()
		d := te.rec.next(t)
		checkEBPF(t, d)
		if d.Kind != KindTunnel || d.Status != 200 || d.Dest.SNI != bankHost || d.Dest.OrigAddr != bankAP || d.RespBytes <= 0 || d.ReqBytes <= 0 {
			t.Errorf("Done %+v", d)
		}
	})

	t.Run("ok/no-sni-passed-through", func(t *testing.T) {
		// Connecting by IP: Go sends no SNI and verifies the IP SAN.
		conn, err := tls.Dial("tcp", te.addr, &tls.Config{RootCAs: te.upRoots})
		if err != nil {
			t.Fatal(err)
		}
		if !conn.ConnectionState().PeerCertificates[0].Equal(te.bank.Certificate()) {
			t.Error("the client did not see the bank's certificate")
		}
		_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); body != "bank" {
			t.Errorf("body %q", body)
		}
		conn.Close()
		d := te.rec.next(t)
		checkEBPF(t, d)
		if d.Kind != KindTunnel || d.Dest.SNI != "" || d.Dest.Host != "127.0.0.1" || d.Dest.OrigAddr != bankAP {
			t.Errorf("Done %+v", d)
		}
	})

	t.Run("ok/plain-http-inspected", func(t *testing.T) {
		c, tr := te.httpClient(false, nil)
		resp := get(t, c, http.MethodPost, "http://"+aiHost+"/echo", strings.NewReader("plain prompt"))
		if body := readAll(t, resp); body != sha([]byte("plain prompt")) {
			t.Errorf("body %q", body)
		}
		tr.CloseIdleConnections()
		d := te.rec.next(t)
		checkEBPF(t, d)
		if d.Kind != KindIntercept || d.Status != 200 || string(d.InBody) != "plain prompt" || d.Dest.Port != 80 {
			t.Errorf("Done %+v", d)
		}
	})

	t.Run("ok/orig-is-listener-dialled-by-name", func(t *testing.T) {
		// DNS steering: the "original destination" is the listener itself;
		// it must be dialled by name (resolve map), never to itself.
		self := netip.MustParseAddrPort(te.addr)
		te.orig.Store(&self)
		defer te.orig.Store(&bankAP)
		c, tr := te.httpClient(false, &tls.Config{RootCAs: te.upRoots})
		resp := get(t, c, http.MethodGet, "https://"+bankHost+"/", nil)
		if body := readAll(t, resp); body != "bank" {
			t.Errorf("body %q", body)
		}
		tr.CloseIdleConnections()
		d := te.rec.next(t)
		if d.Kind != KindTunnel || d.Dest.OrigAddr.IsValid() || d.Dest.Port != 443 {
			t.Errorf("Done %+v", d)
		}
	})
}

// TestOriginalDst pins the contract on connections that were not
// redirected: an error, or the connection's own local address (when
// conntrack has an entry). Wrappers are unwrapped; non-TCP is an error.
func TestOriginalDst(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	local := netip.MustParseAddrPort(sc.LocalAddr().String())

	t.Run("ok/loopback-not-redirected", func(t *testing.T) {
		ap, err := OriginalDst(sc)
		if err == nil && ap != local {
			t.Errorf("got %v, want an error or the local address %v", ap, local)
		}
		t.Logf("OriginalDst on a plain loopback connection: %v, %v", ap, err)
		// Wrapped the way handleTransparent wraps it: same answer.
		wrapped := newIdleConn(&peekedConn{Conn: sc, r: bufio.NewReader(sc)}, time.Minute)
		ap2, err2 := OriginalDst(wrapped)
		if ap2 != ap || (err == nil) != (err2 == nil) {
			t.Errorf("wrapped: %v, %v; unwrapped: %v, %v", ap2, err2, ap, err)
		}
	})
	t.Run("fail/not-tcp", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if _, err := OriginalDst(a); err == nil {
			t.Error("no error for a pipe")
		}
	})
}
