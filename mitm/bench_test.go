package mitm

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"

	"github.com/aigress/aigress/classify"
)

const bulkSize = 64 << 20 // bytes per benchmark op

// startBulk serves a trivial protocol: skip helloLen bytes, then for each
// byte received send bulkSize bytes.
func startBulk(b *testing.B, helloLen int) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	buf := make([]byte, 256<<10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := io.ReadFull(c, make([]byte, helloLen)); err != nil {
					return
				}
				one := make([]byte, 1)
				for {
					if _, err := io.ReadFull(c, one); err != nil {
						return
					}
					for left := bulkSize; left > 0; {
						n := min(left, len(buf))
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
						left -= n
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// pull asks for one bulk transfer and reads it.
func pull(b *testing.B, c net.Conn, buf []byte) {
	if _, err := c.Write([]byte{1}); err != nil {
		b.Fatal(err)
	}
	for left := bulkSize; left > 0; {
		n, err := c.Read(buf[:min(left, len(buf))])
		if err != nil {
			b.Fatal(err)
		}
		left -= n
	}
}

func runBulk(b *testing.B, c net.Conn) {
	buf := make([]byte, 256<<10)
	pull(b, c, buf) // warm up
	b.SetBytes(bulkSize)
	b.ResetTimer()
	for b.Loop() {
		pull(b, c, buf)
	}
}

// captureHello returns the first TLS record of a real Go ClientHello.
func captureHello(b testing.TB, serverName string) []byte {
	b.Helper()
	a, c := net.Pipe()
	defer c.Close()
	go func() {
		_ = tls.Client(a, &tls.Config{ServerName: serverName, InsecureSkipVerify: true}).Handshake()
		a.Close()
	}()
	rec := make([]byte, 5)
	if _, err := io.ReadFull(c, rec); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, int(rec[3])<<8|int(rec[4]))
	if _, err := io.ReadFull(c, body); err != nil {
		b.Fatal(err)
	}
	a.Close()
	return append(rec, body...)
}

func benchProxy(b *testing.B, resolve map[string]string, stages ...any) *Proxy {
	e := newEnv(b)
	p, err := New(Options{Minter: e.minter, Pipeline: NewPipeline(stages...), Resolve: resolve})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Shutdown(b.Context()) })
	return p
}

func tunnelAll(*Flow) ConnectVerdict { return ConnectVerdict{Action: Tunnel} }

// BenchmarkTunnelBulk: download throughput through a CONNECT tunnel versus
// a direct connection (target: tunnel ≥ 90 % of direct).
func BenchmarkTunnelBulk(b *testing.B) {
	up := startBulk(b, 0)
	b.Run("direct", func(b *testing.B) {
		c, err := net.Dial("tcp", up)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		runBulk(b, c)
	})
	b.Run("tunnel", func(b *testing.B) {
		p := benchProxy(b, map[string]string{"bulk.test:443": up}, connectStage{tunnelAll})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = p.Serve(l) }()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "CONNECT bulk.test:443 HTTP/1.1\r\nHost: bulk.test:443\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 || br.Buffered() != 0 {
			b.Fatalf("CONNECT: %v %v", resp, err)
		}
		runBulk(b, c)
	})
}

// BenchmarkTransparentPassthroughBulk: a TLS client without SNI passed
// through ServeTransparent (original destination injected) versus direct.
func BenchmarkTransparentPassthroughBulk(b *testing.B) {
	hello := captureHello(b, "")
	up := startBulk(b, len(hello))
	b.Run("direct", func(b *testing.B) {
		c, err := net.Dial("tcp", up)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write(hello)
		runBulk(b, c)
	})
	b.Run("transparent", func(b *testing.B) {
		p := benchProxy(b, nil, connectStage{tunnelAll})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		orig := netip.MustParseAddrPort(up)
		go func() {
			_ = p.ServeTransparent(l, TransparentOptions{OrigDst: func(net.Conn) (netip.AddrPort, *Process, bool) {
				return orig, nil, true
			}})
		}()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write(hello)
		runBulk(b, c)
	})
}

// BenchmarkSNIPeek: the per-connection cost of the transparent decision:
// peek and parse the ClientHello, build the flow, run the Connect stage
// (which rejects, so nothing is dialled) and close.
func BenchmarkSNIPeek(b *testing.B) {
	hello := captureHello(b, aiHost)
	reject := connectStage{func(*Flow) ConnectVerdict { return ConnectVerdict{Action: Reject} }}
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(hello)))
		for b.Loop() {
			h, err := classify.ParseClientHello(hello)
			if err != nil || h.ServerName != aiHost {
				b.Fatal(h, err)
			}
		}
	})
	b.Run("pipe", func(b *testing.B) {
		p := benchProxy(b, nil, reject)
		opts := TransparentOptions{PeekTimeout: p.opts.HandshakeTimeout, PeekMax: 16 << 10,
			OrigDst: func(net.Conn) (netip.AddrPort, *Process, bool) { return netip.AddrPort{}, nil, false }}
		for b.Loop() {
			cl, sv := net.Pipe()
			go p.handleTransparent(sv, opts, nil)
			if _, err := cl.Write(hello); err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, cl) // closed after the decision
			cl.Close()
		}
	})
	b.Run("tcp", func(b *testing.B) {
		p := benchProxy(b, nil, reject)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = p.ServeTransparent(l, TransparentOptions{}) }()
		for b.Loop() {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write(hello); err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	})
}
