package mitm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// flowCase is one exchange through the explicit proxy. run acts as the
// client and checks what the client saw; want checks the flow at Done.
type flowCase struct {
	name     string
	opts     func(e *env, o *Options)
	connect  func(*Flow) ConnectVerdict
	request  func(*Flow)
	response func(*Flow)
	roots    func(e *env) *x509.CertPool // client trust (default: the aigress CA)
	run      func(t *testing.T, e *env, c *http.Client)
	want     func(t *testing.T, e *env, d doneRec)

	wantKind   string
	wantStatus int
	wantErr    bool
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func get(t *testing.T, c *http.Client, method, url string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// upstreamError checks a JSON 502 from aigress and returns its code and
// event ID.
func upstreamError(t *testing.T, resp *http.Response) (code, id string) {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502; body %s", resp.StatusCode, body)
	}
	var v struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
		ID string `json:"aigress_event_id"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("502 body is not JSON: %v: %s", err, body)
	}
	if h := resp.Header.Get("X-Aigress-Event-Id"); h != v.ID {
		t.Errorf("event id header %q, body %q", h, v.ID)
	}
	return v.Error.Code, v.ID
}

func flowCases() []flowCase {
	const bigN = 64 << 10
	big := bytes.Repeat([]byte("0123456789abcdef"), bigN/16)
	var gotID string // event ID seen by the client, checked against Done
	return []flowCase{
		{
			name: "ok/normal",
			run: func(t *testing.T, e *env, c *http.Client) {
				resp := get(t, c, http.MethodPost, "https://"+aiHost+"/echo", strings.NewReader("small body"))
				if got := readAll(t, resp); got != sha([]byte("small body")) {
					t.Errorf("body %q", got)
				}
			},
			want: func(t *testing.T, e *env, d doneRec) {
				if string(d.InBody) != "small body" || d.BodyTooLarge || d.ReqBytes != 10 {
					t.Errorf("InBody %q BodyTooLarge %v ReqBytes %d", d.InBody, d.BodyTooLarge, d.ReqBytes)
				}
				if d.RespBytes != int64(len(sha([]byte("small body")))) {
					t.Errorf("RespBytes %d", d.RespBytes)
				}
				if d.Dest.Host != aiHost || d.Dest.Port != 443 || d.Mode != ModeExplicit {
					t.Errorf("dest %+v mode %s", d.Dest, d.Mode)
				}
			},
			wantKind: KindIntercept, wantStatus: 200,
		},
		{
			name: "ok/sse-chunk-by-chunk",
			run: func(t *testing.T, e *env, c *http.Client) {
				sse := e.newSSE(t.Name(), false)
				resp := get(t, c, http.MethodGet, "https://"+aiHost+"/sse?id="+t.Name(), nil)
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				for i := range 4 {
					// The upstream sends event i only now: if the proxy
					// buffered, the read below would never see it.
					if i > 0 {
						sse.step <- struct{}{}
					}
					line, err := br.ReadString('\n')
					if err != nil || line != "data: "+string(rune('0'+i))+"\n" {
						t.Fatalf("event %d: %q %v", i, line, err)
					}
					if blank, _ := br.ReadString('\n'); blank != "\n" {
						t.Fatalf("event %d: separator %q", i, blank)
					}
				}
				close(sse.step)
				if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
					t.Fatalf("tail %q %v", rest, err)
				}
			},
			want: func(t *testing.T, e *env, d doneRec) {
				if d.RespBytes != int64(4*len("data: 0\n\n")) {
					t.Errorf("RespBytes %d", d.RespBytes)
				}
			},
			wantKind: KindIntercept, wantStatus: 200,
		},
		{
			name: "ok/filter-finishes-stream",
			response: func(f *Flow) {
				f.AddStreamFilter(&stopAfterFirst{})
			},
			run: func(t *testing.T, e *env, c *http.Client) {
				sse := e.newSSE(t.Name(), true)
				resp := get(t, c, http.MethodGet, "https://"+aiHost+"/sse?id="+t.Name(), nil)
				// The first read may hold more than one event.
				if body := readAll(t, resp); !strings.HasPrefix(body, "data: 0\n\n") || !strings.HasSuffix(body, "data: STOP\n\n") || strings.Count(body, "STOP") != 1 {
					t.Errorf("body %q", body)
				}
				// The upstream, which would stream for 10 s more, is cancelled.
				select {
				case <-sse.gone:
				case <-time.After(5 * time.Second):
					t.Error("the upstream kept streaming after a filter finished the body")
				}
			},
			wantKind: KindIntercept, wantStatus: 200,
		},
		{
			name: "ok/short-circuit",
			request: func(f *Flow) {
				f.Reply(http.StatusForbidden, http.Header{"Content-Type": {"text/plain"}}, []byte("blocked"))
			},
			run: func(t *testing.T, e *env, c *http.Client) {
				before := e.hits.Load()
				resp := get(t, c, http.MethodPost, "https://"+aiHost+"/echo", strings.NewReader("secret"))
				if body := readAll(t, resp); resp.StatusCode != 403 || body != "blocked" {
					t.Errorf("got %d %q", resp.StatusCode, body)
				}
				if e.hits.Load() != before {
					t.Error("the upstream was contacted")
				}
			},
			want: func(t *testing.T, e *env, d doneRec) {
				if !d.ShortCircuit || string(d.InBody) != "secret" {
					t.Errorf("ShortCircuit %v InBody %q", d.ShortCircuit, d.InBody)
				}
			},
			wantKind: KindIntercept, wantStatus: 403,
		},
		{
			name: "ok/204",
			run: func(t *testing.T, e *env, c *http.Client) {
				resp := get(t, c, http.MethodGet, "https://"+aiHost+"/nocontent", nil)
				if body := readAll(t, resp); resp.StatusCode != 204 || body != "" {
					t.Errorf("got %d %q", resp.StatusCode, body)
				}
			},
			wantKind: KindIntercept, wantStatus: 204,
		},
		{
			name: "ok/head",
			run: func(t *testing.T, e *env, c *http.Client) {
				resp := get(t, c, http.MethodHead, "https://"+aiHost+"/ok", nil)
				if body := readAll(t, resp); resp.StatusCode != 200 || body != "" {
					t.Errorf("got %d %q", resp.StatusCode, body)
				}
			},
			wantKind: KindIntercept, wantStatus: 200,
		},
		{
			name: "fail/client-gone-mid-stream",
			run: func(t *testing.T, e *env, c *http.Client) {
				sse := e.newSSE(t.Name(), true)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+aiHost+"/sse?id="+t.Name(), nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line != "data: 0\n" {
					t.Fatalf("first event %q %v", line, err)
				}
				// Go away: the connection (h1) or stream (h2) is closed.
				cancel()
				_ = resp.Body.Close()
				c.Transport.(*http.Transport).CloseIdleConnections()
				select {
				case <-sse.gone:
				case <-time.After(15 * time.Second):
					t.Error("the upstream request was not cancelled after the client left")
				}
			},
			wantKind: KindIntercept, wantStatus: 200, wantErr: true,
		},
		{
			name: "fail/upstream-refused",
			opts: func(e *env, o *Options) { o.Resolve = map[string]string{aiHost + ":443": closedPort(e.t)} },
			run: func(t *testing.T, e *env, c *http.Client) {
				code, id := upstreamError(t, get(t, c, http.MethodGet, "https://"+aiHost+"/ok", nil))
				if code != "upstream_refused" {
					t.Errorf("code %q", code)
				}
				gotID = id
			},
			want: func(t *testing.T, e *env, d doneRec) {
				if d.ID != gotID {
					t.Errorf("client saw event %q, Done %q", gotID, d.ID)
				}
			},
			wantKind: KindIntercept, wantStatus: 502, wantErr: true,
		},
		{
			name: "fail/upstream-bad-certificate",
			run: func(t *testing.T, e *env, c *http.Client) {
				code, id := upstreamError(t, get(t, c, http.MethodGet, "https://"+badHost+"/ok", nil))
				if code != "upstream_bad_certificate" {
					t.Errorf("code %q", code)
				}
				gotID = id
			},
			want: func(t *testing.T, e *env, d doneRec) {
				if d.ID != gotID {
					t.Errorf("client saw event %q, Done %q", gotID, d.ID)
				}
			},
			wantKind: KindIntercept, wantStatus: 502, wantErr: true,
		},
		{
			name:  "ok/tunnel",
			roots: func(e *env) *x509.CertPool { return e.upRoots }, // only the bank's own certificate
			run: func(t *testing.T, e *env, c *http.Client) {
				resp := get(t, c, http.MethodGet, "https://"+bankHost+"/ok", nil)
				if body := readAll(t, resp); body != "hello" {
					t.Errorf("body %q", body)
				}
				if !resp.TLS.PeerCertificates[0].Equal(e.up.Certificate()) {
					t.Error("the client did not see the bank's own certificate")
				}
			},
			want: func(t *testing.T, e *env, d doneRec) {
				if d.ReqBytes <= 0 || d.RespBytes <= 0 || d.Dest.Host != bankHost {
					t.Errorf("ReqBytes %d RespBytes %d dest %+v", d.ReqBytes, d.RespBytes, d.Dest)
				}
			},
			wantKind: KindTunnel, wantStatus: 200,
		},
		{
			name:    "fail/connect-reject",
			connect: func(*Flow) ConnectVerdict { return ConnectVerdict{Action: Reject} },
			run: func(t *testing.T, e *env, c *http.Client) {
				_, err := c.Get("https://" + aiHost + "/ok")
				if err == nil || !strings.Contains(err.Error(), "Forbidden") {
					t.Errorf("err %v, want a 403 to CONNECT", err)
				}
			},
			wantKind: KindConnectBlock, wantStatus: 403,
		},
		{
			name: "fail/misdirected-host",
			run: func(t *testing.T, e *env, c *http.Client) {
				before := e.hits.Load()
				req, _ := http.NewRequest(http.MethodGet, "https://"+aiHost+"/ok", nil)
				req.Host = bankHost
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				if body := readAll(t, resp); resp.StatusCode != http.StatusMisdirectedRequest {
					t.Errorf("got %d %q", resp.StatusCode, body)
				}
				if e.hits.Load() != before {
					t.Error("the upstream was contacted")
				}
			},
			wantKind: KindIntercept, wantStatus: 421, wantErr: true,
		},
		{
			name: "ok/body-too-large",
			opts: func(e *env, o *Options) { o.MaxBodyBytes = 1024 },
			run: func(t *testing.T, e *env, c *http.Client) {
				resp := get(t, c, http.MethodPost, "https://"+aiHost+"/echo", bytes.NewReader(big))
				if got := readAll(t, resp); got != sha(big) {
					t.Errorf("upstream got %q, want %q", got, sha(big))
				}
			},
			want: func(t *testing.T, e *env, d doneRec) {
				if !d.BodyTooLarge || d.InBody != nil {
					t.Errorf("BodyTooLarge %v InBody %d bytes", d.BodyTooLarge, len(d.InBody))
				}
			},
			wantKind: KindIntercept, wantStatus: 200,
		},
		{
			name: "ok/body-too-large-unknown-length",
			opts: func(e *env, o *Options) { o.MaxBodyBytes = 1024 },
			run: func(t *testing.T, e *env, c *http.Client) {
				// A reader of unknown length: chunked (h1) or no content-length (h2).
				body := io.MultiReader(bytes.NewReader(big[:bigN/2]), bytes.NewReader(big[bigN/2:]))
				resp := get(t, c, http.MethodPost, "https://"+aiHost+"/echo", body)
				if got := readAll(t, resp); got != sha(big) {
					t.Errorf("upstream got %q, want %q", got, sha(big))
				}
			},
			want: func(t *testing.T, e *env, d doneRec) {
				if !d.BodyTooLarge || d.InBody != nil {
					t.Errorf("BodyTooLarge %v InBody %d bytes", d.BodyTooLarge, len(d.InBody))
				}
			},
			wantKind: KindIntercept, wantStatus: 200,
		},
		{
			name: "ok/filter-holds-back",
			response: func(f *Flow) {
				f.AddStreamFilter(&holdBack{n: 4})
				f.AddStreamFilter(upper{})
			},
			run: func(t *testing.T, e *env, c *http.Client) {
				resp := get(t, c, http.MethodGet, "https://"+aiHost+"/stream", nil)
				if got := readAll(t, resp); got != "ABCDEFGHIJ" {
					t.Errorf("body %q", got)
				}
			},
			want: func(t *testing.T, e *env, d doneRec) {
				if d.RespBytes != 10 {
					t.Errorf("RespBytes %d", d.RespBytes)
				}
			},
			wantKind: KindIntercept, wantStatus: 200,
		},
	}
}

// TestFlowDoneOnce: every exchange ends with exactly one Done carrying the
// right kind, status and error, over HTTP/1.1 and HTTP/2 to the client.
func TestFlowDoneOnce(t *testing.T) {
	e := newEnv(t)
	for _, proto := range []string{"h1", "h2"} {
		for _, tc := range flowCases() {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				var opts Options
				if tc.opts != nil {
					tc.opts(e, &opts)
				}
				connect := tc.connect
				if connect == nil {
					connect = defaultConnect
				}
				stages := []any{connectStage{connect}}
				if tc.request != nil {
					stages = append(stages, requestStage{tc.request})
				}
				if tc.response != nil {
					stages = append(stages, responseStage{tc.response})
				}
				p, addr, rec := e.startProxy(t, opts, stages...)
				roots := e.caPool
				if tc.roots != nil {
					roots = tc.roots(e)
				}
				c, tr := client(addr, proto == "h2", roots)
				tc.run(t, e, c)
				tr.CloseIdleConnections()
				d := rec.next(t)

				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := p.Shutdown(ctx); err != nil {
					t.Errorf("shutdown: %v", err)
				}
				rec.exactlyOnce(t, 1)
				if p.Active() != 0 {
					t.Errorf("Active %d after the flow", p.Active())
				}
				if d.Kind != tc.wantKind || d.Status != tc.wantStatus || (d.Err != nil) != tc.wantErr {
					t.Errorf("Done: kind %q status %d err %v; want %q %d err=%v",
						d.Kind, d.Status, d.Err, tc.wantKind, tc.wantStatus, tc.wantErr)
				}
				if tc.want != nil {
					tc.want(t, e, d)
				}
			})
		}
	}
}

// TestProtoThroughMITM: the client really speaks the protocol the table
// claims (h2 via ALPN through the MITM), and so does the upstream leg.
func TestProtoThroughMITM(t *testing.T) {
	e := newEnv(t)
	for _, proto := range []string{"h1", "h2"} {
		t.Run("ok/"+proto, func(t *testing.T) {
			_, addr, rec := e.startProxy(t, Options{}, connectStage{defaultConnect})
			c, tr := client(addr, proto == "h2", e.caPool)
			defer tr.CloseIdleConnections()
			resp := get(t, c, http.MethodGet, "https://"+aiHost+"/ok", nil)
			readAll(t, resp)
			want := 1
			if proto == "h2" {
				want = 2
			}
			if resp.ProtoMajor != want {
				t.Errorf("client got %s, want major %d", resp.Proto, want)
			}
			if got := resp.Header.Get("X-Upstream-Proto"); got != "HTTP/2.0" {
				t.Errorf("upstream leg %q, want HTTP/2.0", got)
			}
			if !resp.TLS.PeerCertificates[0].Equal(resp.TLS.VerifiedChains[0][0]) ||
				resp.TLS.VerifiedChains[0][len(resp.TLS.VerifiedChains[0])-1].Subject.CommonName != "aigress local CA" {
				t.Error("the client did not get a leaf from the test CA")
			}
			rec.next(t)
		})
	}
}

// TestShutdownGrace: an in-flight SSE stream finishes within the grace
// period while new connections are refused.
func TestShutdownGrace(t *testing.T) {
	e := newEnv(t)
	for _, proto := range []string{"h1", "h2"} {
		t.Run("ok/"+proto, func(t *testing.T) {
			p, addr, rec := e.startProxy(t, Options{}, connectStage{defaultConnect})
			c, tr := client(addr, proto == "h2", e.caPool)
			defer tr.CloseIdleConnections()
			sse := e.newSSE(t.Name(), false)
			resp := get(t, c, http.MethodGet, "https://"+aiHost+"/sse?id="+t.Name(), nil)
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if line, err := br.ReadString('\n'); err != nil || line != "data: 0\n" {
				t.Fatalf("first event %q %v", line, err)
			}
			_, _ = br.ReadString('\n')

			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- p.Shutdown(ctx) }()

			// New connections are refused once the listener is closed.
			refused := false
			for range 200 {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					refused = true
					break
				}
				conn.Close()
				time.Sleep(10 * time.Millisecond)
			}
			if !refused {
				t.Fatal("the listener still accepts during shutdown")
			}
			select {
			case err := <-shut:
				t.Fatalf("shutdown returned (%v) with a stream in flight", err)
			default:
			}

			// The stream in flight goes on to its end.
			for i := 1; i < 3; i++ {
				sse.step <- struct{}{}
				if line, err := br.ReadString('\n'); err != nil || line != "data: "+string(rune('0'+i))+"\n" {
					t.Fatalf("event %d: %q %v", i, line, err)
				}
				_, _ = br.ReadString('\n')
			}
			close(sse.step)
			if _, err := io.ReadAll(br); err != nil {
				t.Fatalf("stream end: %v", err)
			}
			if err := <-shut; err != nil {
				t.Errorf("shutdown: %v", err)
			}
			d := rec.next(t)
			if d.Status != 200 || d.Err != nil {
				t.Errorf("Done status %d err %v", d.Status, d.Err)
			}
			rec.exactlyOnce(t, 1)
		})
	}
}

// TestShutdownIdleKeepAlive: an idle intercepted keep-alive connection does
// not hold Shutdown up (this deadlocked once), and it is closed.
func TestShutdownIdleKeepAlive(t *testing.T) {
	e := newEnv(t)
	for _, proto := range []string{"h1", "h2"} {
		t.Run("ok/"+proto, func(t *testing.T) {
			p, addr, rec := e.startProxy(t, Options{}, connectStage{defaultConnect})
			c, tr := client(addr, proto == "h2", e.caPool)
			defer tr.CloseIdleConnections()
			for range 2 {
				readAll(t, get(t, c, http.MethodGet, "https://"+aiHost+"/ok", nil))
				rec.next(t)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- p.Shutdown(ctx) }()
			select {
			case err := <-shut:
				if err != nil {
					t.Fatalf("shutdown: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("shutdown hangs on an idle keep-alive connection")
			}
			rec.exactlyOnce(t, 2)
			// The idle connection was closed: the next request cannot use it
			// and the listener is gone.
			if _, err := c.Get("https://" + aiHost + "/ok"); err == nil {
				t.Error("request after shutdown succeeded")
			}
			p.mu.Lock()
			n := len(p.hijacked)
			p.mu.Unlock()
			if n != 0 {
				t.Errorf("%d hijacked connections still tracked", n)
			}
		})
	}
}

// TestUpstreamErrorCode: the cause names used in the JSON 502.
func TestUpstreamErrorCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"ok/dns", &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, "upstream_dns"},
		{"ok/timeout", context.DeadlineExceeded, "upstream_timeout"},
		{"ok/unknown-authority", x509.UnknownAuthorityError{}, "upstream_bad_certificate"},
		{"ok/other", errors.New("boom"), "upstream_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := upstreamErrorCode(tc.err); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// stopAfterFirst passes the first chunk, then ends the body with a marker,
// as an output block does.
type stopAfterFirst struct{ done bool }

func (s *stopAfterFirst) Chunk(p []byte) []byte {
	if s.done {
		return nil
	}
	s.done = true
	return append(append([]byte(nil), p...), "data: STOP\n\n"...)
}
func (s *stopAfterFirst) End() []byte    { return nil }
func (s *stopAfterFirst) Finished() bool { return s.done }
