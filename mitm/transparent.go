package mitm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/aigress/aigress/classify"
)

// Transparent modes: how the original destination is found.
const (
	TransparentRedirect = "redirect" // iptables/nftables REDIRECT: SO_ORIGINAL_DST
	TransparentTProxy   = "tproxy"   // TPROXY: the accepted socket's local address
)

// TransparentOptions configure ServeTransparent.
type TransparentOptions struct {
	// Kind is TransparentRedirect (default) or TransparentTProxy.
	Kind string
	// OrigDst, when set, replaces the kernel lookup (eBPF mode): it returns
	// the original destination and the process behind the connection.
	OrigDst func(c net.Conn) (netip.AddrPort, *Process, bool)
	// PeekTimeout bounds the wait for the ClientHello (default 10s).
	PeekTimeout time.Duration
	// PeekMax bounds the bytes held while peeking (default 16 KiB).
	PeekMax int
}

type transparentInfo struct {
	mode    string
	orig    netip.AddrPort
	sni     string
	client  netip.AddrPort
	process *Process
}

type transparentKey struct{}

// ListenTransparent listens on addr for redirected connections. With
// tproxy, the socket gets IP_TRANSPARENT so that it can accept connections
// for any destination (needs CAP_NET_ADMIN).
func ListenTransparent(addr string, tproxy bool) (net.Listener, error) {
	lc := net.ListenConfig{}
	if tproxy {
		lc.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
				if serr == nil && network == "tcp6" {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
				}
			})
			if err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("mitm: set IP_TRANSPARENT (needs CAP_NET_ADMIN): %w", serr)
			}
			return nil
		}
	}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mitm: transparent listen %s: %w", addr, err)
	}
	return l, nil
}

// ServeTransparent accepts redirected connections on l. TLS connections
// are peeked for their SNI without consuming it: AI hosts go through the
// same goproxy pipeline and stages as explicit mode, others are spliced to
// the original destination untouched. Plain HTTP is served by the same
// pipeline too.
func (p *Proxy) ServeTransparent(l net.Listener, opts TransparentOptions) error {
	if opts.Kind == "" {
		opts.Kind = TransparentRedirect
	}
	if opts.PeekTimeout <= 0 {
		opts.PeekTimeout = p.opts.HandshakeTimeout
	}
	if opts.PeekMax <= 0 {
		opts.PeekMax = 16 << 10
	}
	p.mu.Lock()
	if p.closing.Load() {
		p.mu.Unlock()
		return nil
	}
	p.lns = append(p.lns, l)
	p.mu.Unlock()
	httpSrv := &http.Server{
		Handler:           http.HandlerFunc(p.serveTransparentHTTP),
		ReadHeaderTimeout: p.opts.HandshakeTimeout,
		IdleTimeout:       p.opts.IdleTimeout,
		MaxHeaderBytes:    p.opts.MaxHeaderBytes,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			// Plain HTTP connections arrive wrapped in an idleConn.
			if ic, ok := c.(*idleConn); ok {
				c = ic.Conn
			}
			if pc, ok := c.(*peekedConn); ok {
				return context.WithValue(ctx, transparentKey{}, pc.info)
			}
			return ctx
		},
	}
	p.mu.Lock()
	p.servers = append(p.servers, httpSrv)
	p.mu.Unlock()
	var tempDelay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if p.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				time.Sleep(tempDelay)
				continue
			}
			return fmt.Errorf("mitm: transparent accept: %w", err)
		}
		tempDelay = 0
		go p.handleTransparent(c, opts, httpSrv)
	}
}

func (p *Proxy) handleTransparent(c net.Conn, opts TransparentOptions, httpSrv *http.Server) {
	info := &transparentInfo{mode: ModeTransparent, client: remoteAddrPort(c.RemoteAddr().String())}
	log := p.log.WithField("client", c.RemoteAddr().String())
	switch {
	case opts.OrigDst != nil:
		orig, proc, ok := opts.OrigDst(c)
		if ok {
			info.mode = ModeEBPF
			info.orig = orig
			info.process = proc
		}
	case opts.Kind == TransparentTProxy:
		info.orig = remoteAddrPort(c.LocalAddr().String())
	default:
		orig, err := OriginalDst(c)
		if err != nil {
			log.WithError(err).Debug("transparent: no original destination")
		} else {
			info.orig = orig
		}
	}
	// A connection that was not redirected (DNS steering, or a client
	// dialling the listener itself) has the listener as its "original"
	// destination: dialling it would loop, so it is dialled by name.
	if local := remoteAddrPort(c.LocalAddr().String()); info.orig == local && opts.Kind != TransparentTProxy {
		info.orig = netip.AddrPort{}
	}

	_ = c.SetReadDeadline(time.Now().Add(opts.PeekTimeout))
	br := bufio.NewReaderSize(c, opts.PeekMax)
	first, err := br.Peek(1)
	if err != nil {
		_ = c.Close()
		return
	}
	pc := &peekedConn{Conn: c, r: br, info: info}
	if first[0] != 0x16 {
		// Not TLS: plain HTTP (port 80) goes through the HTTP pipeline.
		_ = c.SetReadDeadline(time.Time{})
		_ = httpSrv.Serve(&oneConnListener{c: newIdleConn(pc, p.opts.IdleTimeout)})
		return
	}
	var hello classify.ClientHello
	for {
		data, _ := br.Peek(br.Buffered())
		hello, err = classify.ParseClientHello(data)
		if !errors.Is(err, classify.ErrNeedMore) {
			break
		}
		if br.Buffered() >= opts.PeekMax {
			err = fmt.Errorf("mitm: ClientHello larger than %d bytes", opts.PeekMax)
			break
		}
		if _, perr := br.Peek(br.Buffered() + 1); perr != nil {
			err = perr
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	if err == nil {
		info.sni = hello.ServerName
	}
	port := 443
	if info.orig.IsValid() {
		port = int(info.orig.Port())
	}
	if info.sni == "" {
		// No SNI: nothing to decide on. Pass through to the original
		// destination, untouched.
		if !info.orig.IsValid() {
			log.Debug("transparent: no SNI and no original destination; closing")
			_ = c.Close()
			return
		}
		f := p.newFlowTransparent(info, KindTunnel)
		f.Dest.Host = info.orig.Addr().String()
		f.Dest.Port = port
		p.begin(f)
		p.tunnel(f, pc, false)
		return
	}
	hostport := net.JoinHostPort(info.sni, strconv.Itoa(port))
	req := &http.Request{
		Method:     http.MethodConnect,
		URL:        &url.URL{Host: hostport},
		Host:       hostport,
		RemoteAddr: c.RemoteAddr().String(),
		Header:     http.Header{},
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
	req = req.WithContext(context.WithValue(context.Background(), transparentKey{}, info))
	ic := newIdleConn(&swallowConn{Conn: pc}, p.opts.IdleTimeout)
	p.trackHijacked(ic)
	p.gp.ServeHTTP(&hijackWriter{conn: ic}, req)
}

func (p *Proxy) newFlowTransparent(info *transparentInfo, kind string) *Flow {
	now := time.Now()
	f := &Flow{ID: p.opts.NewID(now), Start: now, Kind: kind, Mode: info.mode}
	f.Client.Addr = info.client
	f.Client.Process = info.process
	f.Dest.OrigAddr = info.orig
	f.Dest.SNI = info.sni
	return f
}

func (p *Proxy) serveTransparentHTTP(w http.ResponseWriter, r *http.Request) {
	// Turn an origin-form request into a proxy request for goproxy.
	if !r.URL.IsAbs() {
		r.URL.Scheme = "http"
		r.URL.Host = r.Host
	}
	if r.URL.Host == "" {
		http.Error(w, "aigress: request without Host", http.StatusBadRequest)
		return
	}
	p.gp.ServeHTTP(w, r)
}

// peekedConn replays the bytes peeked for the ClientHello.
type peekedConn struct {
	net.Conn
	r    *bufio.Reader
	info *transparentInfo
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// Unwrap is deliberately absent: buffered bytes must be read first. Once
// the buffer is drained the tunnel reads the TCP connection directly.
func (c *peekedConn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if k := c.r.Buffered(); k > 0 {
		b, _ := c.r.Peek(k)
		m, err := w.Write(b)
		n += int64(m)
		_, _ = c.r.Discard(m)
		if err != nil {
			return n, err
		}
	}
	m, err := io.Copy(w, unwrapConn(c.Conn))
	return n + m, err
}

// swallowConn drops goproxy's "HTTP/1.x 200" answer to the synthesized
// CONNECT: a transparently redirected client never sent a CONNECT.
type swallowConn struct {
	net.Conn
	once sync.Once
}

func (c *swallowConn) Write(b []byte) (int, error) {
	swallowed := false
	c.once.Do(func() {
		if len(b) >= 7 && string(b[:7]) == "HTTP/1." {
			swallowed = true
		}
	})
	if swallowed {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *swallowConn) Unwrap() net.Conn { return c.Conn }

type hijackWriter struct {
	conn net.Conn
	h    http.Header
}

func (w *hijackWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *hijackWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *hijackWriter) WriteHeader(int)             {}
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	// The peeked bytes are replayed by the connection itself: hand goproxy
	// an empty reader, or it would replay them a second time.
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

type oneConnListener struct {
	c    net.Conn
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c == nil {
		return nil, io.EOF
	}
	return c, nil
}
func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }

// OriginalDst returns the pre-NAT destination of a REDIRECTed TCP
// connection (SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for IPv6).
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	for {
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			break
		}
		c = u.Unwrap()
	}
	if pc, ok := c.(*peekedConn); ok {
		c = pc.Conn
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("mitm: original destination: %T is not a TCP connection", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	local := remoteAddrPort(c.LocalAddr().String())
	var ap netip.AddrPort
	var serr error
	err = raw.Control(func(fd uintptr) {
		if local.Addr().Is4() {
			var sa unix.RawSockaddrInet4
			l := uint32(unsafe.Sizeof(sa))
			_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IP, unix.SO_ORIGINAL_DST,
				uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&l)), 0)
			if e != 0 {
				serr = e
				return
			}
			port := uint16(sa.Port>>8) | uint16(sa.Port<<8)
			ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
			return
		}
		var sa unix.RawSockaddrInet6
		l := uint32(unsafe.Sizeof(sa))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IPV6, ip6tSoOriginalDst,
			uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			serr = e
			return
		}
		port := uint16(sa.Port>>8) | uint16(sa.Port<<8)
		ap = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	if serr != nil {
		return netip.AddrPort{}, fmt.Errorf("mitm: SO_ORIGINAL_DST: %w", serr)
	}
	return ap, nil
}

var _ http.Hijacker = (*hijackWriter)(nil)

// ip6tSoOriginalDst is IP6T_SO_ORIGINAL_DST from linux/netfilter_ipv6/ip6_tables.h.
const ip6tSoOriginalDst = 80
