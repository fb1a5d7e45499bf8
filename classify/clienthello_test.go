package classify

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// captureClientHello returns the first flight (the ClientHello records) a
// crypto/tls client writes for cfg, without any network.
func captureClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	cli, srv := net.Pipe()
	defer srv.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := tls.Client(cli, cfg)
		_ = c.Handshake() // fails once srv closes
		cli.Close()
	}()
	_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		n, err := srv.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if _, perr := ParseClientHello(buf); !errors.Is(perr, ErrNeedMore) || err != nil {
			break
		}
	}
	srv.Close()
	<-done
	return buf
}

// helloSpec builds ClientHello handshake messages by hand.
type helloSpec struct {
	legacy   uint16
	sni      string
	alpn     []string
	versions []uint16
	ech      bool
	extra    [][]byte // raw extensions appended (type+len+data)
	noExts   bool
}

func tlsExt(typ uint16, data []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

func sniExt(name string) []byte {
	entry := append([]byte{0}, binary.BigEndian.AppendUint16(nil, uint16(len(name)))...)
	entry = append(entry, name...)
	return tlsExt(extServerName, append(binary.BigEndian.AppendUint16(nil, uint16(len(entry))), entry...))
}

func alpnExt(protos []string) []byte {
	var list []byte
	for _, p := range protos {
		list = append(list, byte(len(p)))
		list = append(list, p...)
	}
	return tlsExt(extALPN, append(binary.BigEndian.AppendUint16(nil, uint16(len(list))), list...))
}

func (s helloSpec) msg() []byte {
	body := binary.BigEndian.AppendUint16(nil, s.legacy)
	body = append(body, make([]byte, 32)...)          // random
	body = append(body, 0)                            // session id
	body = append(body, 0, 4, 0x13, 0x01, 0x13, 0x02) // cipher suites
	body = append(body, 1, 0)                         // compression: null
	if !s.noExts {
		var exts []byte
		if s.sni != "" {
			exts = append(exts, sniExt(s.sni)...)
		}
		if s.alpn != nil {
			exts = append(exts, alpnExt(s.alpn)...)
		}
		if s.versions != nil {
			v := []byte{byte(2 * len(s.versions))}
			for _, x := range s.versions {
				v = binary.BigEndian.AppendUint16(v, x)
			}
			exts = append(exts, tlsExt(extSupportedVersion, v)...)
		}
		if s.ech {
			exts = append(exts, tlsExt(extECH, []byte{0, 1, 2})...)
		}
		for _, e := range s.extra {
			exts = append(exts, e...)
		}
		body = binary.BigEndian.AppendUint16(body, uint16(len(exts)))
		body = append(body, exts...)
	}
	return append([]byte{handshakeClientHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

// records frames a handshake message into TLS records of at most size bytes.
func tlsRecords(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

func TestParseClientHelloRealClient(t *testing.T) {
	tests := []struct {
		name string
		cfg  *tls.Config
		want ClientHello
	}{
		{"ok/h2-tls13", &tls.Config{ServerName: "api.openai.com", NextProtos: []string{"h2", "http/1.1"}},
			ClientHello{ServerName: "api.openai.com", ALPN: []string{"h2", "http/1.1"}, LegacyVersion: 0x0303}},
		{"ok/no-alpn", &tls.Config{ServerName: "claude.ai"},
			ClientHello{ServerName: "claude.ai", LegacyVersion: 0x0303}},
		{"ok/ip-no-sni", &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true},
			ClientHello{ServerName: "", LegacyVersion: 0x0303}},
		{"ok/tls12-only", &tls.Config{ServerName: "chatgpt.com", MaxVersion: tls.VersionTLS12},
			ClientHello{ServerName: "chatgpt.com", LegacyVersion: 0x0303}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := captureClientHello(t, tt.cfg)
			got, err := ParseClientHello(stream)
			if err != nil {
				t.Fatal(err)
			}
			if got.ServerName != tt.want.ServerName || !slices.Equal(got.ALPN, tt.want.ALPN) || got.LegacyVersion != tt.want.LegacyVersion {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if tt.cfg.MaxVersion == 0 && !slices.Contains(got.Versions, tls.VersionTLS13) {
				t.Fatalf("versions %x lack TLS 1.3", got.Versions)
			}
			// Every strict prefix needs more data.
			for i := 0; i < len(stream); i++ {
				if _, err := ParseClientHello(stream[:i]); !errors.Is(err, ErrNeedMore) {
					t.Fatalf("prefix %d/%d: err %v, want ErrNeedMore", i, len(stream), err)
				}
			}
		})
	}
}

func TestParseClientHelloFragmented(t *testing.T) {
	stream := captureClientHello(t, &tls.Config{ServerName: "gemini.google.com", NextProtos: []string{"h2"}})
	msg := stream[5:]
	for _, size := range []int{1, 3, 4, 5, 100, 512} {
		fr := tlsRecords(msg, size)
		for cut := 0; cut < len(fr); cut += max(1, len(fr)/97) {
			if _, err := ParseClientHello(fr[:cut]); !errors.Is(err, ErrNeedMore) {
				t.Fatalf("size %d cut %d: %v", size, cut, err)
			}
		}
		// Trailing bytes (the next flight, or early data) are ignored.
		got, err := ParseClientHello(append(fr, 0x17, 3, 3, 0, 1, 0))
		if err != nil || got.ServerName != "gemini.google.com" || !slices.Equal(got.ALPN, []string{"h2"}) {
			t.Fatalf("size %d: %+v %v", size, got, err)
		}
	}
}

func TestParseClientHelloCases(t *testing.T) {
	base := helloSpec{legacy: 0x0303, sni: "api.anthropic.com", alpn: []string{"h2"}, versions: []uint16{0x0304, 0x0303}}
	with := func(f func(*helloSpec)) []byte { s := base; f(&s); return tlsRecords(s.msg(), 1<<14) }
	big := make([]byte, 20000)
	bigExt := tlsExt(0xffa0, big)

	tests := []struct {
		name    string
		stream  []byte
		want    ClientHello
		wantErr error  // sentinel, or nil
		errText string // substring, for other errors
	}{
		{name: "ok/full", stream: with(func(*helloSpec) {}),
			want: ClientHello{ServerName: "api.anthropic.com", ALPN: []string{"h2"}, Versions: []uint16{0x0304, 0x0303}, LegacyVersion: 0x0303}},
		{name: "ok/ech", stream: with(func(s *helloSpec) { s.ech = true }),
			want: ClientHello{ServerName: "api.anthropic.com", ALPN: []string{"h2"}, Versions: []uint16{0x0304, 0x0303}, LegacyVersion: 0x0303, HasECH: true}},
		{name: "ok/no-sni", stream: with(func(s *helloSpec) { s.sni = "" }),
			want: ClientHello{ALPN: []string{"h2"}, Versions: []uint16{0x0304, 0x0303}, LegacyVersion: 0x0303}},
		{name: "ok/no-extensions", stream: with(func(s *helloSpec) { s.noExts = true }),
			want: ClientHello{LegacyVersion: 0x0303}},
		{name: "ok/big-extension-spans-records", stream: with(func(s *helloSpec) { s.extra = [][]byte{bigExt} }),
			want: ClientHello{ServerName: "api.anthropic.com", ALPN: []string{"h2"}, Versions: []uint16{0x0304, 0x0303}, LegacyVersion: 0x0303}},
		{name: "ok/unknown-name-type-skipped", stream: with(func(s *helloSpec) {
			s.sni = ""
			s.extra = [][]byte{tlsExt(extServerName, []byte{0, 4, 7, 0, 1, 'x'})}
		}), want: ClientHello{ALPN: []string{"h2"}, Versions: []uint16{0x0304, 0x0303}, LegacyVersion: 0x0303}},
		{name: "fail/empty", stream: nil, wantErr: ErrNeedMore},
		{name: "fail/http", stream: []byte("GET / HTTP/1.1\r\n"), wantErr: ErrNotTLS},
		{name: "fail/sslv2", stream: []byte{0x80, 0x2e, 0x01, 0x00, 0x02}, wantErr: ErrNotTLS},
		{name: "fail/bad-record-version", stream: []byte{0x16, 0x47, 0x45}, wantErr: ErrNotTLS},
		{name: "fail/header-only", stream: []byte{0x16, 3, 1}, wantErr: ErrNeedMore},
		{name: "fail/huge-record", stream: []byte{0x16, 3, 1, 0x48, 0x01}, errText: "exceeds 2^14"},
		{name: "fail/empty-record", stream: []byte{0x16, 3, 1, 0, 0}, errText: "empty handshake record"},
		{name: "fail/server-hello", stream: []byte{0x16, 3, 3, 0, 4, 2, 0, 0, 0}, errText: "want ClientHello"},
		{name: "fail/too-big-message", stream: []byte{0x16, 3, 1, 0, 4, 1, 0x01, 0x00, 0x01}, errText: "exceeds 64 KiB"},
		{name: "fail/too-big-message-partial", stream: []byte{0x16, 3, 1, 0, 10, 1, 0x01, 0x00, 0x01}, errText: "exceeds 64 KiB"},
		{name: "fail/alert-inside", stream: append(tlsRecords(base.msg(), 10)[:15], 0x15, 3, 3, 0, 2, 2, 40), errText: "record of type 21"},
		{name: "fail/duplicate-sni", stream: with(func(s *helloSpec) { s.extra = [][]byte{sniExt("evil.example")} }), errText: "duplicate server_name"},
		{name: "fail/duplicate-alpn", stream: with(func(s *helloSpec) { s.extra = [][]byte{alpnExt([]string{"x"})} }), errText: "duplicate ALPN"},
		{name: "fail/sni-with-nul", stream: with(func(s *helloSpec) { s.sni = "api.openai.com\x00.evil" }), errText: "host_name with byte"},
		{name: "fail/empty-alpn-name", stream: with(func(s *helloSpec) { s.alpn = []string{""} }), errText: "ALPN"},
		{name: "fail/truncated-extension", stream: with(func(s *helloSpec) { s.extra = [][]byte{{0, 5, 0, 9, 1}} }), errText: "truncated extension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClientHello(tt.stream)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) || !strings.HasPrefix(err.Error(), "classify: ") {
					t.Fatalf("err %v, want %q", err, tt.errText)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if got.ServerName != tt.want.ServerName || !slices.Equal(got.ALPN, tt.want.ALPN) ||
					!slices.Equal(got.Versions, tt.want.Versions) || got.LegacyVersion != tt.want.LegacyVersion || got.HasECH != tt.want.HasECH {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

func FuzzParseClientHello(f *testing.F) {
	f.Add(captureClientHello(f, &tls.Config{ServerName: "api.openai.com", NextProtos: []string{"h2"}}))
	s := helloSpec{legacy: 0x0303, sni: "claude.ai", alpn: []string{"h2", "http/1.1"}, versions: []uint16{0x0304}, ech: true}
	f.Add(tlsRecords(s.msg(), 1<<14))
	f.Add(tlsRecords(s.msg(), 7))
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := ParseClientHello(b)
		if err != nil && ch.ServerName != "" {
			t.Fatal("server name with error")
		}
		if err == nil && len(ch.ServerName) > 255 {
			t.Fatal("server name too long")
		}
	})
}

func BenchmarkParseClientHello(b *testing.B) {
	stream := captureClientHello(b, &tls.Config{ServerName: "api.openai.com", NextProtos: []string{"h2", "http/1.1"}})
	b.Run("one-record", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(stream)))
		for b.Loop() {
			if _, err := ParseClientHello(stream); err != nil {
				b.Fatal(err)
			}
		}
	})
	split := tlsRecords(stream[5:], 256)
	b.Run("split-256", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(split)))
		for b.Loop() {
			if _, err := ParseClientHello(split); err != nil {
				b.Fatal(err)
			}
		}
	})
}
