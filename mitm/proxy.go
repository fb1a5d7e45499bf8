package mitm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/sirupsen/logrus"

	"github.com/aigress/aigress/certs"
)

// Options configure a Proxy. Zero values get safe defaults.
type Options struct {
	Minter   *certs.Minter
	Pipeline *Pipeline
	// NewID returns a sortable unique ID for a flow (a ULID).
	NewID func(time.Time) string
	Log   logrus.FieldLogger

	// Resolve maps "host:port" to "ip:port" for every upstream connection,
	// intercepted or tunnelled (like curl --resolve).
	Resolve map[string]string
	// UpstreamRoots verifies upstream servers: the system roots plus any
	// configured upstream_ca. nil means the system roots.
	UpstreamRoots *x509.CertPool
	// UpstreamMark is set as SO_MARK on every upstream socket (0: none), so
	// that redirect rules can exclude aigress's own traffic.
	UpstreamMark int

	// MaxBodyBytes is the largest request body buffered for inspection
	// (default 8 MiB). Larger bodies stream through, marked too large.
	MaxBodyBytes int64

	HandshakeTimeout      time.Duration // client TLS handshake and request head (default 10s)
	IdleTimeout           time.Duration // no byte either way on a client connection (default 5m)
	DialTimeout           time.Duration // upstream TCP connect (default 10s)
	UpstreamHeaderTimeout time.Duration // upstream response headers (default 10m: models think)
	MaxHeaderBytes        int           // request head size (default 64 KiB)
	// UpstreamShards is the number of independent upstream connection
	// pools (default 4).
	UpstreamShards int
	// UpstreamHTTP1 keeps upstream connections on HTTP/1.1 even when the
	// server offers HTTP/2: more connections, less CPU per request.
	UpstreamHTTP1 bool
}

func (o *Options) defaults() {
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = l
	}
	if o.NewID == nil {
		var n atomic.Uint64
		o.NewID = func(t time.Time) string {
			return fmt.Sprintf("%013x%06x", t.UnixMilli(), n.Add(1))
		}
	}
	if o.Pipeline == nil {
		o.Pipeline = NewPipeline()
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 8 << 20
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.UpstreamHeaderTimeout <= 0 {
		o.UpstreamHeaderTimeout = 10 * time.Minute
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.UpstreamShards <= 0 {
		o.UpstreamShards = 4
	}
}

// Proxy is the intercepting proxy: an explicit listener (CONNECT and plain
// HTTP) built on goproxy, and optional transparent listeners that feed the
// same goproxy pipeline.
type Proxy struct {
	opts       Options
	gp         *goproxy.ProxyHttpServer
	transport  *http.Transport // the first shard; goproxy's default
	transports []*http.Transport
	shard      atomic.Uint64
	pipe       *Pipeline
	log        logrus.FieldLogger

	active   atomic.Int64 // flows in flight
	closing  atomic.Bool
	mu       sync.Mutex
	servers  []*http.Server
	lns      []net.Listener
	hijacked map[net.Conn]struct{}
}

type connState struct {
	host    string // CONNECT host without port
	port    int
	flow    *Flow // the connect-level flow (carries client, dest, connect request)
	connect *http.Request
}

// New builds a Proxy.
func New(opts Options) (*Proxy, error) {
	opts.defaults()
	if opts.Minter == nil {
		return nil, errors.New("mitm: a certificate minter is required")
	}
	p := &Proxy{opts: opts, pipe: opts.Pipeline, log: opts.Log, hijacked: map[net.Conn]struct{}{}}
	// Several transports, each with its own connection pool: an HTTP/2
	// upstream multiplexes every request to a host over one connection
	// per transport, and one connection's framing then limits throughput
	// on a busy proxy. Requests are spread over the shards.
	for range opts.UpstreamShards {
		p.transports = append(p.transports, p.newTransport())
	}
	p.transport = p.transports[0]
	gp := goproxy.NewProxyHttpServer()
	gp.Tr = p.transport
	gp.AllowHTTP2 = true
	gp.Verbose = false
	gp.Logger = goproxyLogger{opts.Log}
	gp.KeepAcceptEncoding = true // the client's choice reaches the upstream
	gp.NonproxyHandler = http.HandlerFunc(p.nonProxy)
	gp.OnRequest().HandleConnectFunc(p.handleConnect)
	gp.OnRequest().DoFunc(p.handleRequest)
	gp.OnResponse().DoFunc(p.handleResponse)
	p.gp = gp
	return p, nil
}

func (p *Proxy) newTransport() *http.Transport {
	t := &http.Transport{
		Proxy:                  nil, // never chain through the environment's proxy
		DialContext:            p.dialContext,
		TLSClientConfig:        &tls.Config{RootCAs: p.opts.UpstreamRoots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    p.opts.HandshakeTimeout,
		ResponseHeaderTimeout:  p.opts.UpstreamHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: int64(p.opts.MaxHeaderBytes) * 4,
	}
	if p.opts.UpstreamHTTP1 {
		t.ForceAttemptHTTP2 = false
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return t
}

// Transport is the upstream transport (verified TLS, resolve map, mark).
func (p *Proxy) Transport() *http.Transport { return p.transport }

// Active is the number of flows in flight.
func (p *Proxy) Active() int64 { return p.active.Load() }

type goproxyLogger struct{ l logrus.FieldLogger }

func (g goproxyLogger) Printf(format string, v ...any) {
	g.l.WithField("component", "goproxy").Debugf(strings.TrimSpace(format), v...)
}

func (p *Proxy) nonProxy(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	http.Error(w, "aigress is a proxy: set HTTPS_PROXY to this address", http.StatusBadRequest)
}

// Serve accepts explicit proxy connections on l until Shutdown.
func (p *Proxy) Serve(l net.Listener) error {
	srv := &http.Server{
		Handler:           p.gp,
		ReadHeaderTimeout: p.opts.HandshakeTimeout,
		IdleTimeout:       p.opts.IdleTimeout,
		MaxHeaderBytes:    p.opts.MaxHeaderBytes,
		ErrorLog:          nil,
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateHijacked {
				p.trackHijacked(c)
			}
		},
	}
	p.mu.Lock()
	if p.closing.Load() {
		p.mu.Unlock()
		return http.ErrServerClosed
	}
	p.servers = append(p.servers, srv)
	p.mu.Unlock()
	err := srv.Serve(&idleListener{Listener: l, idle: p.opts.IdleTimeout})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (p *Proxy) trackHijacked(c net.Conn) {
	p.mu.Lock()
	p.hijacked[c] = struct{}{}
	p.mu.Unlock()
	if ic, ok := c.(*idleConn); ok {
		ic.onClose = func() {
			p.mu.Lock()
			delete(p.hijacked, c)
			p.mu.Unlock()
		}
	}
}

// Shutdown stops accepting, lets in-flight flows finish until ctx ends, then
// closes what is left.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.closing.Store(true)
	p.mu.Lock()
	servers := append([]*http.Server(nil), p.servers...)
	lns := append([]net.Listener(nil), p.lns...)
	p.mu.Unlock()
	for _, l := range lns {
		_ = l.Close()
	}
	for _, s := range servers {
		// Closes listeners and idle connections; hijacked ones stay.
		_ = s.Shutdown(ctx)
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var err error
wait:
	for p.active.Load() > 0 {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("mitm: shutdown: %d flows still active: %w", p.active.Load(), ctx.Err())
			break wait
		case <-t.C:
		}
	}
	p.mu.Lock()
	conns := make([]net.Conn, 0, len(p.hijacked))
	for c := range p.hijacked {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	// Close outside the lock: a connection's close hook takes it.
	for _, c := range conns {
		_ = c.Close()
	}
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
	return err
}

func hostPort(hp string, defPort int) (string, int) {
	h, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return strings.ToLower(strings.Trim(hp, "[]")), defPort
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		port = defPort
	}
	return strings.ToLower(h), port
}

func remoteAddrPort(s string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (p *Proxy) newFlow(r *http.Request, kind string) *Flow {
	now := time.Now()
	f := &Flow{ID: p.opts.NewID(now), Start: now, Kind: kind, Mode: ModeExplicit}
	f.Client.Addr = remoteAddrPort(r.RemoteAddr)
	if ti, ok := r.Context().Value(transparentKey{}).(*transparentInfo); ok && ti != nil {
		f.Mode = ti.mode
		f.Dest.OrigAddr = ti.orig
		f.Dest.SNI = ti.sni
		f.Client.Process = ti.process
		if ti.client.IsValid() {
			f.Client.Addr = ti.client
		}
	}
	return f
}

func (p *Proxy) begin(*Flow) { p.active.Add(1) }

func (p *Proxy) finish(f *Flow) {
	f.done.Do(func() {
		if f.End.IsZero() {
			f.End = time.Now()
		}
		defer p.active.Add(-1)
		defer func() {
			if r := recover(); r != nil {
				p.log.WithFields(logrus.Fields{"event_id": f.ID, "panic": r}).Error("mitm: done stage panicked")
			}
		}()
		for _, s := range p.pipe.done {
			s.Done(f)
		}
	})
}

func (p *Proxy) handleConnect(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	r := ctx.Req
	f := p.newFlow(r, KindTunnel)
	f.Connect = r
	f.Dest.Host, f.Dest.Port = hostPort(host, 443)
	p.begin(f)
	v := p.safeConnect(f)
	switch v.Action {
	case Intercept:
		// The connect-level flow only carried the decision: each request
		// gets its own flow. It is not audited.
		f.done.Do(func() { p.active.Add(-1) })
		ctx.UserData = &connState{host: f.Dest.Host, port: f.Dest.Port, flow: f, connect: r}
		ctx.RoundTripper = goproxy.RoundTripperFunc(p.roundTrip)
		return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: p.tlsConfig}, host
	case Reject:
		f.Kind = KindConnectBlock
		if v.Response == nil {
			v.Response = textResponse(r, http.StatusForbidden, "blocked by aigress policy\n")
		}
		f.Status = v.Response.StatusCode
		ctx.Resp = v.Response
		if f.Mode != ModeExplicit {
			// A transparently redirected client speaks TLS: an HTTP
			// answer would be garbage to it. Close instead.
			ctx.Resp = nil
		}
		p.finish(f)
		return goproxy.RejectConnect, host
	default:
		return &goproxy.ConnectAction{Action: goproxy.ConnectHijack, Hijack: func(req *http.Request, client net.Conn, _ *goproxy.ProxyCtx) {
			p.tunnel(f, client, f.Mode == ModeExplicit)
		}}, host
	}
}

func (p *Proxy) safeConnect(f *Flow) (v ConnectVerdict) {
	defer func() {
		if r := recover(); r != nil {
			p.log.WithFields(logrus.Fields{"event_id": f.ID, "panic": r}).Error("mitm: connect stage panicked; tunnelling")
			v = ConnectVerdict{Action: Tunnel}
		}
	}()
	return p.pipe.runConnect(f)
}

func (p *Proxy) tlsConfig(host string, ctx *goproxy.ProxyCtx) (*tls.Config, error) {
	h, _ := hostPort(host, 443)
	return p.opts.Minter.TLSConfig(h, []string{"h2", "http/1.1"}), nil
}

func textResponse(r *http.Request, status int, body string) *http.Response {
	return NewResponse(r, status, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, []byte(body))
}

// errorResponse is the JSON 502/4xx body aigress itself answers with. It is
// shaped like an OpenAI error so SDKs show the message.
func errorResponse(r *http.Request, status int, code, msg, eventID string) *http.Response {
	body, _ := json.Marshal(map[string]any{
		"error": map[string]any{
			"message": msg + " (aigress event " + eventID + ")",
			"type":    "aigress_error",
			"code":    code,
		},
		"aigress_event_id": eventID,
	})
	resp := textResponse(r, status, string(body))
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Set("X-Aigress-Event-Id", eventID)
	return resp
}

// upstreamErrorCode names the cause of an upstream failure.
func upstreamErrorCode(err error) string {
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var netErr net.Error
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &invalid):
		return "upstream_bad_certificate"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "upstream_refused"
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "upstream_timeout"
	case strings.Contains(err.Error(), "no such host"):
		return "upstream_dns"
	}
	return "upstream_error"
}

func (p *Proxy) handleRequest(r *http.Request, ctx *goproxy.ProxyCtx) (req *http.Request, resp *http.Response) {
	cs, _ := ctx.UserData.(*connState)
	f := p.newFlow(r, KindIntercept)
	p.begin(f)
	ctx.UserData = f
	ctx.RoundTripper = goproxy.RoundTripperFunc(p.roundTrip)
	defer func() {
		if rec := recover(); rec != nil {
			p.log.WithFields(logrus.Fields{"event_id": f.ID, "panic": rec}).Error("mitm: request stage panicked")
			f.Err = fmt.Errorf("mitm: internal error: %v", rec)
			req, resp = r, p.shortCircuit(f, errorResponse(r, http.StatusInternalServerError, "aigress_internal", "aigress internal error", f.ID))
		}
	}()
	f.In = r
	if cs != nil {
		f.Connect = cs.connect
		f.Dest = cs.flow.Dest
		f.Client = cs.flow.Client
		f.Mode = cs.flow.Mode
		// A request whose Host is not the CONNECT host must not be sent
		// to another origin through this connection (RFC 9110 421).
		if h, _ := hostPort(r.Host, cs.port); r.Host != "" && h != cs.host {
			f.Err = fmt.Errorf("mitm: Host %q does not match CONNECT host %q", h, cs.host)
			return r, p.shortCircuit(f, errorResponse(r, http.StatusMisdirectedRequest, "misdirected_request",
				"request Host does not match the CONNECT host", f.ID))
		}
	} else {
		// Plain HTTP through the proxy: decide like a CONNECT.
		f.Connect = r
		def := 80
		if r.URL.Scheme == "https" {
			def = 443
		}
		f.Dest.Host, f.Dest.Port = hostPort(r.URL.Host, def)
		v := p.safeConnect(f)
		switch v.Action {
		case Reject:
			f.Kind = KindConnectBlock
			if v.Response == nil {
				v.Response = textResponse(r, http.StatusForbidden, "blocked by aigress policy\n")
			}
			return r, p.shortCircuit(f, v.Response)
		case Tunnel:
			f.Kind = KindTunnel
			f.Out = r
			return r, nil
		}
	}
	if err := p.readBody(f, r); err != nil {
		f.Err = err
		return r, p.shortCircuit(f, errorResponse(r, http.StatusBadRequest, "bad_request_body", "could not read the request body", f.ID))
	}
	p.pipe.runRequest(f)
	if f.ShortCircuit && f.Response != nil {
		return f.Out, p.shortCircuit(f, f.Response)
	}
	return f.Out, nil
}

// readBody buffers the request body up to the limit and builds f.Out.
func (p *Proxy) readBody(f *Flow, r *http.Request) error {
	out := r.Clone(r.Context())
	f.Out = out
	if r.Body == nil || r.Body == http.NoBody {
		out.Body = http.NoBody
		return nil
	}
	limit := p.opts.MaxBodyBytes
	if r.ContentLength > limit {
		// Too large to inspect: keep a prefix so that host, model and
		// account rules still apply (padding must not bypass them).
		f.BodyTooLarge = true
		f.ReqBytes = r.ContentLength
		prefix, err := io.ReadAll(io.LimitReader(r.Body, min(limit, maxBodyPrefix)))
		if err != nil {
			return fmt.Errorf("mitm: read request body: %w", err)
		}
		f.InBodyPrefix = prefix
		out.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(prefix), r.Body), r.Body}
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fmt.Errorf("mitm: read request body: %w", err)
	}
	if int64(len(buf)) > limit {
		f.BodyTooLarge = true
		f.InBodyPrefix = buf[:min(int64(len(buf)), maxBodyPrefix)]
		out.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		f.ReqBytes = -1
		return nil
	}
	f.InBody = buf
	f.ReqBytes = int64(len(buf))
	out.Body = io.NopCloser(bytes.NewReader(buf))
	out.ContentLength = int64(len(buf))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return nil
}

// maxBodyPrefix is what is kept of a body too large to inspect.
const maxBodyPrefix = 64 << 10

// shortCircuit answers resp without contacting the upstream; the body is
// hooked so that Done runs when it has been written.
func (p *Proxy) shortCircuit(f *Flow, resp *http.Response) *http.Response {
	f.ShortCircuit = true
	f.Response = resp
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	resp.Body = &flowBody{src: resp.Body, f: f, p: p}
	return resp
}

// roundTrip sends f.Out upstream. It never returns an error: failures
// become a JSON 502 naming the cause and the event ID.
func (p *Proxy) roundTrip(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Response, error) {
	f, _ := ctx.UserData.(*Flow)
	if f == nil {
		return p.transport.RoundTrip(req)
	}
	if f.Dest.OrigAddr.IsValid() {
		req = req.WithContext(context.WithValue(req.Context(), origDstKey{}, f.Dest.OrigAddr))
	}
	f.UpstreamStart = time.Now()
	tr := p.transports[p.shard.Add(1)%uint64(len(p.transports))]
	resp, err := tr.RoundTrip(req)
	f.UpstreamDone = time.Now()
	if err != nil {
		f.Err = err
		code := upstreamErrorCode(err)
		p.log.WithFields(logrus.Fields{"event_id": f.ID, "host": f.Dest.Host, "code": code}).Warnf("upstream failed: %v", err)
		resp = errorResponse(req, http.StatusBadGateway, code, "aigress could not reach "+f.Dest.Host+": "+code, f.ID)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// goproxy relays WebSockets through the body's io.ReadWriter: keep
		// it as is. The flow ends at the upgrade (handleResponse).
		return resp, nil
	}
	resp.Body = &flowBody{src: resp.Body, f: f, p: p}
	return resp, nil
}

func (p *Proxy) handleResponse(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
	f, _ := ctx.UserData.(*Flow)
	if f == nil || resp == nil {
		return resp
	}
	f.Response = resp
	f.Status = resp.StatusCode
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// WebSocket: goproxy relays the upgraded connection through the
		// body's io.ReadWriter. With WebSocket stages, a tap parses the
		// frames both ways and the flow ends when the relay closes;
		// otherwise it ends at the upgrade.
		if len(p.pipe.ws) > 0 && f.Kind == KindIntercept {
			if tap, ok := newWSTap(resp.Body, f, p); ok {
				resp.Body = tap
				return resp
			}
		}
		p.finish(f)
		return resp
	}
	if f.Kind == KindIntercept && !f.ShortCircuit {
		func() {
			defer func() {
				if rec := recover(); rec != nil {
					p.log.WithFields(logrus.Fields{"event_id": f.ID, "panic": rec}).Error("mitm: response stage panicked")
					f.filters = nil
				}
			}()
			p.pipe.runResponse(f)
		}()
	}
	if changesLength(f.filters) {
		// Filters change the body: its length is no longer known.
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
	// The body was wrapped by roundTrip or shortCircuit: leaving the same
	// body in place lets goproxy keep a known Content-Length instead of
	// re-chunking every response.
	if _, ok := resp.Body.(*flowBody); !ok && resp.Body != nil {
		resp.Body = &flowBody{src: resp.Body, f: f, p: p}
	}
	return resp
}

// changesLength reports whether any filter may change the body's bytes.
func changesLength(fs []StreamFilter) bool {
	for _, s := range fs {
		if o, ok := s.(interface{ PreservesBody() bool }); !ok || !o.PreservesBody() {
			return true
		}
	}
	return false
}

// flowBody streams the response body through the flow's filters, counts
// bytes and ends the flow at EOF or Close.
type flowBody struct {
	src     io.ReadCloser
	f       *Flow
	p       *Proxy
	pending []byte
	eof     bool
	ended   bool
	mode    int8 // 0 unknown, 1 observers only, 2 some filter changes bytes
}

func (b *flowBody) Read(out []byte) (int, error) {
	for {
		if len(b.pending) > 0 {
			n := copy(out, b.pending)
			b.pending = b.pending[n:]
			if b.f.FirstByte.IsZero() {
				b.f.FirstByte = time.Now()
			}
			b.f.RespBytes += int64(n)
			return n, nil
		}
		if b.eof {
			if !b.ended {
				b.ended = true
				b.pending = b.endFilters()
				continue
			}
			b.p.finish(b.f)
			return 0, io.EOF
		}
		n, err := b.src.Read(out)
		if n > 0 {
			chunk := out[:n]
			if len(b.f.filters) > 0 && b.observeOnly() {
				// Observers never change or keep the bytes: let them read
				// the chunk in place, no copy.
				_ = b.runFilters(chunk)
			} else if len(b.f.filters) > 0 {
				chunk = b.runFilters(append([]byte(nil), chunk...))
				b.pending = chunk
				if b.filtersFinished() {
					// A filter ended the body (an output block): stop
					// reading the upstream and cancel it.
					b.eof = true
					_ = b.src.Close()
					continue
				}
				if err != nil {
					b.eof = true
					if err != io.EOF {
						b.f.Err = err
					}
				}
				continue
			}
			if b.f.FirstByte.IsZero() {
				b.f.FirstByte = time.Now()
			}
			b.f.RespBytes += int64(n)
			if err != nil {
				b.eof = true
				if err != io.EOF {
					b.f.Err = err
				}
			}
			return n, nil
		}
		if err != nil {
			b.eof = true
			if err != io.EOF {
				b.f.Err = err
			}
		}
	}
}

func (b *flowBody) runFilters(p []byte) []byte {
	defer func() {
		if rec := recover(); rec != nil {
			b.p.log.WithFields(logrus.Fields{"event_id": b.f.ID, "panic": rec}).Error("mitm: stream filter panicked")
		}
	}()
	for _, s := range b.f.filters {
		p = s.Chunk(p)
	}
	return p
}

// observeOnly reports, once per body, whether every filter only observes.
func (b *flowBody) observeOnly() bool {
	if b.mode == 0 {
		b.mode = 1
		if changesLength(b.f.filters) {
			b.mode = 2
		}
	}
	return b.mode == 1
}

// filtersFinished reports whether a filter has ended the body.
func (b *flowBody) filtersFinished() bool {
	for _, s := range b.f.filters {
		if fin, ok := s.(interface{ Finished() bool }); ok && fin.Finished() {
			return true
		}
	}
	return false
}

func (b *flowBody) endFilters() []byte {
	var out []byte
	for i, s := range b.f.filters {
		tail := s.End()
		// Bytes released by filter i still pass through the filters after it.
		for _, later := range b.f.filters[i+1:] {
			tail = later.Chunk(tail)
		}
		out = append(out, tail...)
	}
	return out
}

// bodyless responses are closed without being read, and that is no error.
func bodyless(f *Flow) bool {
	if f.In != nil && f.In.Method == http.MethodHead {
		return true
	}
	return f.Status == http.StatusNoContent || f.Status == http.StatusNotModified || (f.Status >= 100 && f.Status < 200)
}

func (b *flowBody) Close() error {
	err := b.src.Close()
	if !b.eof && b.f.Err == nil && !bodyless(b.f) {
		b.f.Err = errors.New("mitm: client closed before the response ended")
	}
	b.p.finish(b.f)
	return err
}

// Dialing.

type origDstKey struct{}

func (p *Proxy) dialer() *net.Dialer {
	d := &net.Dialer{Timeout: p.opts.DialTimeout, KeepAlive: 30 * time.Second}
	if mark := p.opts.UpstreamMark; mark != 0 {
		d.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, mark)
			})
			if err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("mitm: set SO_MARK %d: %w", mark, serr)
			}
			return nil
		}
	}
	return d
}

// upstreamAddr applies the resolve map, then the original destination.
func (p *Proxy) upstreamAddr(addr string, orig netip.AddrPort) string {
	if r, ok := p.opts.Resolve[strings.ToLower(addr)]; ok {
		return r
	}
	if orig.IsValid() {
		return orig.String()
	}
	return addr
}

func (p *Proxy) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	orig, _ := ctx.Value(origDstKey{}).(netip.AddrPort)
	return p.dialer().DialContext(ctx, network, p.upstreamAddr(addr, orig))
}

// tunnel relays bytes between client and the destination, untouched.
// explicit is true when the client waits for a CONNECT answer.
func (p *Proxy) tunnel(f *Flow, client net.Conn, explicit bool) {
	defer p.finish(f)
	defer client.Close()
	addr := net.JoinHostPort(f.Dest.Host, strconv.Itoa(f.Dest.Port))
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.DialTimeout)
	up, err := p.dialer().DialContext(ctx, "tcp", p.upstreamAddr(addr, f.Dest.OrigAddr))
	cancel()
	if err != nil {
		f.Err = err
		if explicit {
			_, _ = io.WriteString(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\nX-Aigress-Event-Id: "+
				f.ID+"\r\nContent-Length: "+strconv.Itoa(len(upstreamErrorCode(err))+1)+"\r\n\r\n"+upstreamErrorCode(err)+"\n")
		}
		return
	}
	defer up.Close()
	if explicit {
		if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			f.Err = err
			return
		}
	}
	f.Status = http.StatusOK
	f.UpstreamStart = time.Now()
	cr := unwrapConn(client)
	cw := cr
	if pc, ok := cr.(*peekedConn); ok {
		// Read the peeked bytes first; write straight to the socket.
		cw = unwrapConn(pc.Conn)
	}
	relay(f, cr, cw, up)
}

// relay copies both ways. Between two *net.TCPConn io.Copy uses splice(2).
func relay(f *Flow, clientR io.Reader, clientW net.Conn, up net.Conn) {
	var wg sync.WaitGroup
	wg.Add(1)
	var sent int64
	go func() {
		defer wg.Done()
		sent, _ = io.Copy(up, clientR)
		closeWrite(up)
	}()
	recv, _ := io.Copy(clientW, up)
	closeWrite(clientW)
	wg.Wait()
	f.ReqBytes, f.RespBytes = sent, recv
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// idleListener wraps accepted connections with an activity-based idle
// timeout.
type idleListener struct {
	net.Listener
	idle time.Duration
}

func (l *idleListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newIdleConn(c, l.idle), nil
}

type idleConn struct {
	net.Conn
	idle    time.Duration
	last    atomic.Int64
	onClose func()
	once    sync.Once
}

func newIdleConn(c net.Conn, idle time.Duration) *idleConn {
	ic := &idleConn{Conn: c, idle: idle}
	ic.touch()
	return ic
}

func (c *idleConn) touch() {
	now := time.Now().UnixNano()
	// Re-arm at most every second: cheap on busy connections.
	if now-c.last.Load() > int64(time.Second) {
		c.last.Store(now)
		_ = c.Conn.SetReadDeadline(time.Unix(0, now).Add(c.idle))
	}
}

func (c *idleConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *idleConn) Write(b []byte) (int, error) {
	c.touch()
	return c.Conn.Write(b)
}

func (c *idleConn) SetReadDeadline(t time.Time) error {
	// net/http clears deadlines; keep ours armed.
	if t.IsZero() {
		c.last.Store(0)
		c.touch()
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *idleConn) SetDeadline(t time.Time) error {
	if t.IsZero() {
		c.last.Store(0)
		c.touch()
		return c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}

func (c *idleConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

func (c *idleConn) Unwrap() net.Conn { return c.Conn }

// unwrapConn returns the innermost connection with deadlines cleared, so
// that io.Copy between two *net.TCPConn can splice.
func unwrapConn(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			break
		}
		c = u.Unwrap()
	}
	_ = c.SetDeadline(time.Time{})
	return c
}
