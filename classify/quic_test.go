package classify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// rfcDCID is the client's Destination Connection ID in RFC 9001 A and
// RFC 9369 A.
var rfcDCID = quicHex("8394c8f03e515708")

func quicHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// readQUICHex reads a testdata hex file; lines starting with '#' are comments.
func readQUICHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && line[0] != '#' {
			sb.WriteString(line)
		}
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func TestQUICInitialKeys(t *testing.T) {
	// RFC 9001 A.1 and RFC 9369 A.1.
	tests := []struct {
		name                string
		version             uint32
		secret, key, iv, hp string
	}{
		{"ok/v1", QUICVersion1,
			"c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea",
			"1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"},
		{"ok/v2", QUICVersion2,
			"14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b",
			"8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret, err := quicClientSecret(tt.version, rfcDCID)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(secret); got != tt.secret {
				t.Fatalf("client secret %s, want %s", got, tt.secret)
			}
			key, iv, hp, err := quicKeyMaterial(tt.version, secret)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(key) != tt.key || hex.EncodeToString(iv) != tt.iv || hex.EncodeToString(hp) != tt.hp {
				t.Fatalf("key %x iv %x hp %x", key, iv, hp)
			}
		})
	}
}

func TestParseQUICInitialRFCVectors(t *testing.T) {
	wantFrame := readQUICHex(t, "quic_rfc9001_crypto_frame.hex")[4:] // strip 06 00 40f1
	tests := []struct {
		name    string
		file    string
		version uint32
	}{
		{"ok/rfc9001-v1", "quic_rfc9001_client_initial.hex", QUICVersion1},
		{"ok/rfc9369-v2", "quic_rfc9369_client_initial.hex", QUICVersion2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := readQUICHex(t, tt.file)
			orig := slices.Clone(pkt)
			ini, err := ParseQUICInitial(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pkt, orig) {
				t.Fatal("ParseQUICInitial modified its input")
			}
			if ini.Version != tt.version || !bytes.Equal(ini.DCID, rfcDCID) {
				t.Fatalf("version %#x dcid %x", ini.Version, ini.DCID)
			}
			if len(ini.Crypto) != 1 || ini.Crypto[0].Offset != 0 || !bytes.Equal(ini.Crypto[0].Data, wantFrame) {
				t.Fatalf("crypto frames %+v", ini.Crypto)
			}
			ch, ok, err := NewQUICAssembler(4).Add("192.0.2.1:4433", pkt)
			if err != nil || !ok {
				t.Fatalf("assembler: %v %v", ok, err)
			}
			if ch.ServerName != "example.com" || !slices.Equal(ch.ALPN, []string{"alpn"}) || !slices.Equal(ch.Versions, []uint16{0x0304}) {
				t.Fatalf("hello %+v", ch)
			}
			// Any flipped bit in the protected payload breaks the tag.
			bad := slices.Clone(pkt)
			bad[len(bad)-1] ^= 1
			if _, err := ParseQUICInitial(bad); err == nil || !strings.Contains(err.Error(), "decrypt") {
				t.Fatalf("tampered packet: %v", err)
			}
		})
	}
}

// ---- synthetic packets ------------------------------------------------

func appendQUICVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return binary.BigEndian.AppendUint16(b, uint16(v)|0x4000)
	case v < 1<<30:
		return binary.BigEndian.AppendUint32(b, uint32(v)|0x80000000)
	default:
		return binary.BigEndian.AppendUint64(b, v|0xc0<<56)
	}
}

func quicCryptoFrame(off uint64, data []byte) []byte {
	b := appendQUICVarint([]byte{0x06}, off)
	b = appendQUICVarint(b, uint64(len(data)))
	return append(b, data...)
}

type quicPktSpec struct {
	version  uint32
	typ      int // quicTypeInitial, ...
	dcid     []byte
	pn       uint64
	pnLen    int
	reserved byte // value of the two reserved bits
	payload  []byte
	keyDCID  []byte // keys from this DCID instead of dcid
}

// seal builds a protected long-header packet (test-side inverse of
// ParseQUICInitial).
func sealQUIC(t testing.TB, s quicPktSpec) []byte {
	t.Helper()
	if s.version == 0 {
		s.version = QUICVersion1
	}
	if s.pnLen == 0 {
		s.pnLen = 2
	}
	if s.dcid == nil {
		s.dcid = rfcDCID
	}
	kd := s.keyDCID
	if kd == nil {
		kd = s.dcid
	}
	k, err := newQUICKeys(s.version, kd)
	if err != nil {
		t.Fatal(err)
	}
	payload := s.payload
	for s.pnLen+len(payload) < 4 {
		payload = append(payload, 0)
	}
	tb := byte(s.typ)
	if s.version == QUICVersion2 {
		tb = byte((s.typ + 1) & 3)
	}
	hdr := []byte{0xc0 | tb<<4 | s.reserved<<2 | byte(s.pnLen-1)}
	hdr = binary.BigEndian.AppendUint32(hdr, s.version)
	hdr = append(hdr, byte(len(s.dcid)))
	hdr = append(hdr, s.dcid...)
	hdr = append(hdr, 4, 0xaa, 0xbb, 0xcc, 0xdd) // SCID
	if s.typ == quicTypeInitial {
		hdr = append(hdr, 0) // empty token
	}
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(s.pnLen+len(payload)+16)|0x4000)
	pnOff := len(hdr)
	for i := s.pnLen - 1; i >= 0; i-- {
		hdr = append(hdr, byte(s.pn>>(8*i)))
	}
	var nonce [12]byte
	copy(nonce[:], k.iv)
	for i := 0; i < 8; i++ {
		nonce[11-i] ^= byte(s.pn >> (8 * i))
	}
	ct := k.aead.Seal(nil, nonce[:], payload, hdr)
	var mask [16]byte
	sample := ct[4-s.pnLen : 4-s.pnLen+16]
	k.hp.Encrypt(mask[:], sample)
	hdr[0] ^= mask[0] & 0x0f
	for i := 0; i < s.pnLen; i++ {
		hdr[pnOff+i] ^= mask[1+i]
	}
	return append(hdr, ct...)
}

// testHelloMsg is a ClientHello handshake message of about size bytes.
func testHelloMsg(sni string, size int) []byte {
	s := helloSpec{legacy: 0x0303, sni: sni, alpn: []string{"h3"}, versions: []uint16{0x0304}}
	if pad := size - len(s.msg()) - 4; pad > 0 {
		s.extra = [][]byte{tlsExt(0x0015, make([]byte, pad))} // padding extension
	}
	return s.msg()
}

func TestParseQUICInitialCases(t *testing.T) {
	hello := testHelloMsg("api.openai.com", 300)
	p1 := sealQUIC(t, quicPktSpec{payload: quicCryptoFrame(0, hello[:100])})
	p2 := sealQUIC(t, quicPktSpec{pn: 1, payload: append(append([]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00}, quicCryptoFrame(100, hello[100:])...), 0, 0, 0)})
	otherDCID := sealQUIC(t, quicPktSpec{pn: 1, dcid: quicHex("0102030405060708"), payload: quicCryptoFrame(100, hello[100:])})
	zeroRTT := sealQUIC(t, quicPktSpec{typ: quicType0RTT, pn: 0, payload: []byte{0x01, 0, 0, 0}})
	handshake := sealQUIC(t, quicPktSpec{typ: quicTypeHandshake, pn: 0, payload: []byte{0x01, 0, 0, 0}})
	v2 := sealQUIC(t, quicPktSpec{version: QUICVersion2, pnLen: 4, pn: 0x01020304, payload: quicCryptoFrame(0, hello)})
	cat := func(b ...[]byte) []byte { return bytes.Join(b, nil) }

	type frame struct {
		off uint64
		n   int
	}
	tests := []struct {
		name    string
		dg      []byte
		version uint32
		frames  []frame
		err     error
		errText string
	}{
		{name: "ok/single", dg: p1, version: QUICVersion1, frames: []frame{{0, 100}}},
		{name: "ok/coalesced-initials", dg: cat(p1, p2), version: QUICVersion1, frames: []frame{{0, 100}, {100, len(hello) - 100}}},
		{name: "ok/coalesced-0rtt-skipped", dg: cat(p1, zeroRTT, p2), version: QUICVersion1, frames: []frame{{0, 100}, {100, len(hello) - 100}}},
		{name: "ok/trailing-zero-padding", dg: cat(p1, make([]byte, 50)), version: QUICVersion1, frames: []frame{{0, 100}}},
		{name: "ok/other-dcid-ignored", dg: cat(p1, otherDCID), version: QUICVersion1, frames: []frame{{0, 100}}},
		{name: "ok/v2-4-byte-pn", dg: v2, version: QUICVersion2, frames: []frame{{0, len(hello)}}},
		{name: "ok/bad-second-packet-ignored", dg: cat(p1, func() []byte { b := slices.Clone(p2); b[len(b)-1] ^= 1; return b }()), version: QUICVersion1, frames: []frame{{0, 100}}},
		{name: "fail/empty", dg: nil, err: ErrNotQUICInitial},
		{name: "fail/short-header", dg: append([]byte{0x40}, p1[1:]...), err: ErrNotQUICInitial},
		{name: "fail/version-negotiation", dg: append([]byte{0xc0, 0, 0, 0, 0}, p1[5:]...), err: ErrNotQUICInitial},
		{name: "fail/draft-29", dg: append([]byte{0xc0, 0xff, 0, 0, 0x1d}, p1[5:]...), err: ErrNotQUICInitial},
		{name: "fail/handshake-first", dg: handshake, err: ErrNotQUICInitial},
		{name: "fail/wrong-keys", dg: sealQUIC(t, quicPktSpec{keyDCID: quicHex("0000000000000000"), payload: quicCryptoFrame(0, hello)}), errText: "decrypt"},
		{name: "fail/stream-frame", dg: sealQUIC(t, quicPktSpec{payload: []byte{0x08, 0x00, 0x01, 0x02}}), errText: "not allowed"},
		{name: "fail/reserved-bits", dg: sealQUIC(t, quicPktSpec{reserved: 1, payload: quicCryptoFrame(0, hello)}), errText: "reserved"},
		{name: "fail/crypto-overflow", dg: sealQUIC(t, quicPktSpec{payload: []byte{0x06, 0x00, 0x44, 0x00, 0x01}}), errText: "bad CRYPTO"},
		{name: "fail/truncated", dg: p1[:len(p1)-1], errText: "exceeds datagram"},
		{name: "fail/long-dcid", dg: append([]byte{0xc0, 0, 0, 0, 1, 21}, make([]byte, 40)...), errText: "connection ID"},
		{name: "fail/empty-dcid", dg: sealQUIC(t, quicPktSpec{dcid: []byte{}, keyDCID: []byte{}, payload: quicCryptoFrame(0, hello)}), errText: "empty destination"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ini, err := ParseQUICInitial(tt.dg)
			switch {
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) || !strings.HasPrefix(err.Error(), "classify: ") {
					t.Fatalf("err %v, want %q", err, tt.errText)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if ini.Version != tt.version || len(ini.Crypto) != len(tt.frames) {
				t.Fatalf("version %#x, %d frames, want %d", ini.Version, len(ini.Crypto), len(tt.frames))
			}
			for i, f := range tt.frames {
				c := ini.Crypto[i]
				if c.Offset != f.off || len(c.Data) != f.n || !bytes.Equal(c.Data, hello[f.off:f.off+uint64(f.n)]) {
					t.Fatalf("frame %d: off %d len %d", i, c.Offset, len(c.Data))
				}
			}
		})
	}
}

func TestQUICAssembler(t *testing.T) {
	hello := testHelloMsg("claude.ai", 3000)
	chunk := func(off, end int, pn uint64) []byte {
		return sealQUIC(t, quicPktSpec{pn: pn, payload: quicCryptoFrame(uint64(off), hello[off:end])})
	}
	a1, a2, a3 := chunk(0, 1100, 0), chunk(1100, 2200, 1), chunk(2200, len(hello), 2)

	tests := []struct {
		name    string
		dgs     [][]byte
		done    int // index of the datagram that completes, -1 never
		errAt   int // index of the datagram that errors, -1 never
		errText string
	}{
		{name: "ok/in-order", dgs: [][]byte{a1, a2, a3}, done: 2, errAt: -1},
		{name: "ok/reverse", dgs: [][]byte{a3, a2, a1}, done: 2, errAt: -1},
		{name: "ok/retransmit-and-overlap", dgs: [][]byte{a1, a1, chunk(500, 2200, 3), a3}, done: 3, errAt: -1},
		{name: "ok/coalesced", dgs: [][]byte{append(slices.Clone(a1), a2...), a3}, done: 1, errAt: -1},
		{name: "ok/reported-once", dgs: [][]byte{a1, a2, a3, a3, a1}, done: 2, errAt: -1},
		{name: "fail/gap", dgs: [][]byte{a1, a3}, done: -1, errAt: -1},
		{name: "fail/not-client-hello", dgs: [][]byte{sealQUIC(t, quicPktSpec{payload: quicCryptoFrame(0, []byte{2, 0, 0, 4, 3, 3, 0, 0})})}, done: -1, errAt: 0, errText: "want ClientHello"},
		{name: "fail/too-large-hello", dgs: [][]byte{sealQUIC(t, quicPktSpec{payload: quicCryptoFrame(0, []byte{1, 2, 0, 0})})}, done: -1, errAt: 0, errText: "exceeds 64 KiB"},
		{name: "fail/garbage-hello", dgs: [][]byte{sealQUIC(t, quicPktSpec{payload: quicCryptoFrame(0, []byte{1, 0, 0, 2, 3, 3})})}, done: -1, errAt: 0, errText: "tls client hello"},
		{name: "fail/not-quic", dgs: [][]byte{[]byte("hello")}, done: -1, errAt: 0, errText: "not a QUIC Initial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewQUICAssembler(8)
			for i, dg := range tt.dgs {
				ch, ok, err := a.Add("10.0.0.1:5555", dg)
				if i == tt.errAt {
					if err == nil || !strings.Contains(err.Error(), tt.errText) {
						t.Fatalf("datagram %d: err %v, want %q", i, err, tt.errText)
					}
					continue
				}
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if ok != (i == tt.done) {
					t.Fatalf("datagram %d: ok=%v", i, ok)
				}
				if ok && (ch.ServerName != "claude.ai" || !slices.Equal(ch.ALPN, []string{"h3"})) {
					t.Fatalf("hello %+v", ch)
				}
			}
		})
	}
}

func TestQUICAssemblerBounds(t *testing.T) {
	hello := testHelloMsg("grok.com", 3000)
	first := sealQUIC(t, quicPktSpec{payload: quicCryptoFrame(0, hello[:1000])})
	a := NewQUICAssembler(3)
	for i := range 10 {
		if _, ok, err := a.Add(string(rune('a'+i)), first); ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if a.Len() != 3 {
		t.Fatalf("Len %d, want 3", a.Len())
	}
	// Per-flow byte cap: many distinct out-of-order pieces never completing.
	b := NewQUICAssembler(3)
	var err error
	piece := make([]byte, 1000)
	for i := 0; i < 200 && err == nil; i++ {
		_, _, err = b.Add("x", sealQUIC(t, quicPktSpec{pn: uint64(i), payload: quicCryptoFrame(uint64(10+i*1000), piece)}))
	}
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("per-flow cap not enforced: %v", err)
	}
	if b.total != 0 {
		t.Fatalf("total %d after finishing flow", b.total)
	}
}

func TestQUICAssemblerConcurrent(t *testing.T) {
	hello := testHelloMsg("api.mistral.ai", 2000)
	d1 := sealQUIC(t, quicPktSpec{payload: quicCryptoFrame(0, hello[:1000])})
	d2 := sealQUIC(t, quicPktSpec{pn: 1, payload: quicCryptoFrame(1000, hello[1000:])})
	a := NewQUICAssembler(64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for g := range 8 {
		wg.Go(func() {
			flow := string(rune('A' + g))
			for _, d := range [][]byte{d1, d2} {
				if _, ok, err := a.Add(flow, d); err != nil {
					t.Error(err)
				} else if ok {
					mu.Lock()
					got++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if got != 8 {
		t.Fatalf("%d hellos, want 8", got)
	}
}

// TestQUICAssemblerQuicGo captures the first datagrams of a real quic-go
// client (never answered; only a loopback UDP socket) and assembles its
// ClientHello.
func TestQUICAssemblerQuicGo(t *testing.T) {
	tests := []struct {
		name    string
		version quic.Version
		want    uint32
	}{
		{"ok/v1", quic.Version1, QUICVersion1},
		{"ok/v2", quic.Version2, QUICVersion2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dialDone := make(chan struct{})
			go func() {
				defer close(dialDone)
				conn, err := quic.DialAddr(ctx, pc.LocalAddr().String(),
					&tls.Config{ServerName: "api.openai.com", NextProtos: []string{"h3"}},
					&quic.Config{Versions: []quic.Version{tt.version}})
				if err == nil {
					_ = conn.CloseWithError(0, "")
				}
			}()
			defer func() { cancel(); <-dialDone }()

			a := NewQUICAssembler(16)
			buf := make([]byte, 2048)
			datagrams, frames := 0, 0
			_ = pc.SetReadDeadline(time.Now().Add(8 * time.Second))
			for {
				n, addr, err := pc.ReadFrom(buf)
				if err != nil {
					t.Fatalf("after %d datagrams: %v", datagrams, err)
				}
				datagrams++
				ini, err := ParseQUICInitial(buf[:n])
				if err != nil {
					t.Fatalf("datagram %d: %v", datagrams, err)
				}
				if ini.Version != tt.want {
					t.Fatalf("version %#x", ini.Version)
				}
				frames += len(ini.Crypto)
				ch, ok, err := a.Add(addr.String(), buf[:n])
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					continue
				}
				if ch.ServerName != "api.openai.com" || !slices.Equal(ch.ALPN, []string{"h3"}) || !slices.Contains(ch.Versions, 0x0304) {
					t.Fatalf("hello %+v", ch)
				}
				// Go's default post-quantum key share makes the hello
				// larger than one Initial packet.
				if datagrams < 2 || frames < 2 {
					t.Fatalf("hello fit in %d datagrams / %d CRYPTO frames; want a multi-packet hello", datagrams, frames)
				}
				t.Logf("ClientHello from %d datagrams, %d CRYPTO frames", datagrams, frames)
				return
			}
		})
	}
}

// TestQUICAssemblerDCIDSwitch covers clients that address later Initial
// packets to the server's connection ID while still protecting them with
// the keys of their original DCID (RFC 9001 5.2).
func TestQUICAssemblerDCIDSwitch(t *testing.T) {
	hello := testHelloMsg("claude.ai", 3000)
	odcidA, scidA := rfcDCID, quicHex("5300112233445566")
	odcidB, scidB := quicHex("0a0b0c0d0e0f1011"), quicHex("77665544")
	// pkt seals hello[off:end] into an Initial addressed to dcid under the
	// keys of keyDCID.
	pkt := func(version uint32, dcid, keyDCID []byte, pn uint64, off, end int) []byte {
		return sealQUIC(t, quicPktSpec{version: version, dcid: dcid, keyDCID: keyDCID, pn: pn,
			payload: quicCryptoFrame(uint64(off), hello[off:end])})
	}
	a1 := pkt(QUICVersion1, odcidA, nil, 0, 0, 1100)
	a2 := pkt(QUICVersion1, scidA, odcidA, 1, 1100, 2200) // switched DCID, original keys
	a3 := pkt(QUICVersion1, scidA, odcidA, 2, 2200, len(hello))
	b1 := pkt(QUICVersion1, odcidB, nil, 0, 0, 1100)
	b2 := pkt(QUICVersion1, scidB, odcidB, 1, 1100, 2200)
	b3 := pkt(QUICVersion1, scidB, odcidB, 2, 2200, len(hello))
	v1 := pkt(QUICVersion2, odcidA, nil, 0, 0, 1100)
	v2 := pkt(QUICVersion2, scidA, odcidA, 1, 1100, len(hello))
	cat := func(b ...[]byte) []byte { return bytes.Join(b, nil) }

	const flow = "10.0.0.1:5555>192.0.2.1:443"
	type step struct {
		flow string // "" = flow
		dg   []byte
	}
	tests := []struct {
		name    string
		steps   []step
		done    []int // indexes of the datagrams that complete a hello
		errAt   int   // index of the datagram that errors, -1 never
		errText string
	}{
		{name: "ok/switch-after-first", steps: []step{{"", a1}, {"", a2}, {"", a3}}, done: []int{2}, errAt: -1},
		{name: "ok/switched-out-of-order", steps: []step{{"", a1}, {"", a3}, {"", a2}}, done: []int{2}, errAt: -1},
		{name: "ok/switched-coalesced", steps: []step{{"", a1}, {"", cat(a2, a3)}}, done: []int{1}, errAt: -1},
		{name: "ok/v2", steps: []step{{"", v1}, {"", v2}}, done: []int{1}, errAt: -1},
		{name: "ok/late-retransmits-after-done", steps: []step{{"", a1}, {"", a2}, {"", a3}, {"", a3}, {"", a2}, {"", a1}}, done: []int{2}, errAt: -1},
		{name: "ok/two-connections-one-flow", steps: []step{{"", a1}, {"", a2}, {"", a3}, {"", b1}, {"", b2}, {"", b3}}, done: []int{2, 5}, errAt: -1},
		{name: "ok/interleaved-connections", steps: []step{{"", a1}, {"", b1}, {"", b2}, {"", a2}, {"", a3}, {"", b3}}, done: []int{4, 5}, errAt: -1},
		// After a Retry the client derives new keys from the new DCID and
		// sends its hello again from offset 0: a new connection.
		{name: "ok/retry-new-keys", steps: []step{{"", a1}, {"", pkt(QUICVersion1, scidA, nil, 0, 0, len(hello))}}, done: []int{1}, errAt: -1},
		{name: "fail/switched-before-original", steps: []step{{"", a2}, {"", a1}, {"", a3}}, done: nil, errAt: 0, errText: "decrypt"},
		{name: "fail/other-flow", steps: []step{{"", a1}, {"other", a2}, {"", a3}}, done: nil, errAt: 1, errText: "decrypt"},
		{name: "fail/wrong-keys", steps: []step{{"", a1}, {"", pkt(QUICVersion1, scidA, odcidB, 1, 1100, 2200)}}, done: nil, errAt: 1, errText: "decrypt"},
		{name: "fail/version-mismatch", steps: []step{{"", a1}, {"", v2}}, done: nil, errAt: 1, errText: "decrypt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewQUICAssembler(8)
			for i, st := range tt.steps {
				fl := flow
				if st.flow != "" {
					fl = st.flow
				}
				ch, ok, err := a.Add(fl, st.dg)
				if i == tt.errAt {
					if err == nil || !strings.Contains(err.Error(), tt.errText) {
						t.Fatalf("datagram %d: err %v, want %q", i, err, tt.errText)
					}
					continue
				}
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if ok != slices.Contains(tt.done, i) {
					t.Fatalf("datagram %d: ok=%v", i, ok)
				}
				if ok && ch.ServerName != "claude.ai" {
					t.Fatalf("hello %+v", ch)
				}
			}
			if a.total != 0 && len(tt.done) == 2 {
				t.Fatalf("total %d after both hellos", a.total)
			}
		})
	}
}

func TestQUICAssemblerConnsPerFlow(t *testing.T) {
	hello := testHelloMsg("gemini.google.com", 2000)
	a := NewQUICAssembler(4)
	odcid := func(i int) []byte { return []byte{0xd0, byte(i), 1, 2, 3, 4, 5, 6} }
	for i := range quicMaxConns + 1 {
		if _, ok, err := a.Add("f", sealQUIC(t, quicPktSpec{dcid: odcid(i), payload: quicCryptoFrame(0, hello[:1000])})); ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if want := (quicMaxConns)*(1000+quicKeysCost) + 0; a.total != want {
		t.Fatalf("total %d, want %d", a.total, want)
	}
	rest := func(i int) []byte {
		return sealQUIC(t, quicPktSpec{dcid: quicHex("99999999"), keyDCID: odcid(i), pn: 1, payload: quicCryptoFrame(1000, hello[1000:])})
	}
	// The oldest connection was dropped: its keys are forgotten.
	if _, _, err := a.Add("f", rest(0)); err == nil || !strings.Contains(err.Error(), "decrypt") {
		t.Fatalf("dropped connection: %v", err)
	}
	for i := 1; i <= quicMaxConns; i++ {
		if ch, ok, err := a.Add("f", rest(i)); !ok || err != nil || ch.ServerName != "gemini.google.com" {
			t.Fatalf("connection %d: %v %v", i, ok, err)
		}
	}
	if a.total != 0 || a.Len() != 1 {
		t.Fatalf("total %d len %d", a.total, a.Len())
	}
}

// recordingConn is a client socket that records every datagram it puts on
// the wire, and can drop chosen ones (as the network would).
type recordingConn struct {
	net.PacketConn // not *net.UDPConn: quic-go would write with WriteMsgUDP
	udp            *net.UDPConn
	mu             sync.Mutex
	sent           [][]byte
	n              int
	drop           func(n int) bool // n counts WriteTo calls since reset, from 0
}

func (c *recordingConn) reset(drop func(int) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent, c.n, c.drop = nil, 0, drop
}

func (c *recordingConn) datagrams() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sent)
}

func (c *recordingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	n := c.n
	c.n++
	if c.drop != nil && c.drop(n) {
		c.mu.Unlock()
		return len(b), nil
	}
	c.sent = append(c.sent, slices.Clone(b))
	c.mu.Unlock()
	return c.PacketConn.WriteTo(b, addr)
}

func (c *recordingConn) SetReadBuffer(n int) error  { return c.udp.SetReadBuffer(n) }
func (c *recordingConn) SetWriteBuffer(n int) error { return c.udp.SetWriteBuffer(n) }

// testQUICServerTLS is a self-signed certificate for name and a client
// configuration that trusts it.
func testQUICServerTLS(t *testing.T, name string) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{"h3"}}
	client = &tls.Config{ServerName: name, RootCAs: pool, NextProtos: []string{"h3"}}
	return server, client
}

// TestQUICAssemblerQuicGoHandshakes runs real quic-go handshakes on
// loopback, records what the client puts on the wire and checks that the
// assembler recovers every SNI, including when the client sends the end of
// its ClientHello to the server's connection ID. Losing the client's
// second datagram forces that: the server acknowledges the first with its
// own SCID, and the client retransmits the rest addressed to it.
func TestQUICAssemblerQuicGoHandshakes(t *testing.T) {
	const sni = "api.anthropic.com"
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	srvTLS, cliTLS := testQUICServerTLS(t, sni)
	ln, err := quic.ListenAddr("127.0.0.1:0", srvTLS, &quic.Config{Versions: []quic.Version{quic.Version1, quic.Version2}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			go func() { <-conn.Context().Done() }()
		}
	}()
	t.Cleanup(func() { cancel(); _ = ln.Close(); <-accepted })

	tests := []struct {
		name       string
		shared     bool // one client socket (one flow) for every handshake
		handshakes int
	}{
		{"ok/shared-socket", true, 30},
		{"ok/socket-per-dial", false, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newTransport := func() (*quic.Transport, *recordingConn) {
				udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					t.Fatal(err)
				}
				rc := &recordingConn{PacketConn: udp, udp: udp}
				tr := &quic.Transport{Conn: rc}
				t.Cleanup(func() { _ = tr.Close(); _ = udp.Close() })
				return tr, rc
			}
			var tr *quic.Transport
			var rc *recordingConn
			if tt.shared {
				tr, rc = newTransport()
			}
			a := NewQUICAssembler(64)
			switched := 0
			var dropped atomic.Int32
			for i := range tt.handshakes {
				if !tt.shared {
					tr, rc = newTransport()
				}
				forced := i%2 == 1
				rc.reset(func(n int) bool {
					if forced && n == 1 {
						dropped.Add(1)
						return true
					}
					return false
				})
				version := quic.Version1
				if i%4 >= 2 {
					version = quic.Version2
				}
				hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
				conn, err := tr.Dial(hctx, ln.Addr(), cliTLS.Clone(), &quic.Config{Versions: []quic.Version{version}})
				hcancel()
				if err != nil {
					t.Fatalf("handshake %d: %v", i, err)
				}
				_ = conn.CloseWithError(0, "")
				<-conn.Context().Done()

				flow := rc.LocalAddr().String() + ">" + ln.Addr().String()
				var firstDCID []byte
				found := 0
				for j, dg := range rc.datagrams() {
					h, herr := parseLongHeader(dg)
					// The first Initial names the connection; a late
					// Handshake packet of the previous one may precede it.
					if herr == nil && h.typ == quicTypeInitial && firstDCID == nil {
						firstDCID = slices.Clone(h.dcid)
					}
					// Handshake, 1-RTT and closing packets are not Initials:
					// their errors are expected.
					ch, ok, _ := a.Add(flow, dg)
					if !ok {
						continue
					}
					found++
					if ch.ServerName != sni {
						t.Fatalf("handshake %d: hello %+v", i, ch)
					}
					if !bytes.Equal(h.dcid, firstDCID) {
						// Completed by a packet for the server's connection
						// ID, which its own DCID's keys do not open.
						switched++
						if _, err := ParseQUICInitial(dg); err == nil {
							t.Fatalf("handshake %d datagram %d: switched DCID %x opened with its own keys", i, j, h.dcid)
						}
					}
				}
				if found != 1 {
					t.Fatalf("handshake %d (forced switch %v, %d datagrams): %d hellos, want 1", i, forced, len(rc.datagrams()), found)
				}
			}
			t.Logf("%d handshakes, %d completed by a packet sent to the server's connection ID, %d datagrams dropped",
				tt.handshakes, switched, dropped.Load())
			if switched == 0 {
				t.Fatal("no handshake reproduced the DCID switch")
			}
		})
	}
}

// ---- fuzzing and benchmarks -------------------------------------------

func FuzzParseQUICInitial(f *testing.F) {
	f.Add(readQUICHex(f, "quic_rfc9001_client_initial.hex"))
	f.Add(readQUICHex(f, "quic_rfc9369_client_initial.hex"))
	hello := testHelloMsg("api.openai.com", 200)
	f.Add(sealQUIC(f, quicPktSpec{payload: quicCryptoFrame(0, hello)}))
	f.Add(sealQUIC(f, quicPktSpec{version: QUICVersion2, payload: append([]byte{0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x1c, 0, 0, 0}, quicCryptoFrame(0, hello)...)}))
	f.Add([]byte{0xc0, 0, 0, 0, 1, 8})
	f.Fuzz(func(t *testing.T, dg []byte) {
		orig := slices.Clone(dg)
		ini, err := ParseQUICInitial(dg)
		if !bytes.Equal(orig, dg) {
			t.Fatal("input modified")
		}
		if err == nil && len(ini.DCID) == 0 {
			t.Fatal("no DCID")
		}
	})
}

// quicAccounted recomputes what a.total should be.
func quicAccounted(a *QUICAssembler) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for e := a.lru.Front(); e != nil; e = e.Next() {
		for _, c := range e.Value.(*quicFlow).conns {
			if !c.done {
				n += c.bytes + quicKeysCost
			}
		}
	}
	return n
}

// FuzzQUICAssembler fuzzes reassembly: the input describes CRYPTO frames
// (flow byte, 2-byte offset, 1-byte length, data) that are sealed into
// valid Initial packets, because random bytes would never pass the AEAD.
// Flow byte bits: 0-1 the flow, 4 addressed to the server's connection ID
// (still under the original DCID's keys), 5 a second connection.
func FuzzQUICAssembler(f *testing.F) {
	enc := func(flow byte, off int, data []byte) []byte {
		return append([]byte{flow, byte(off >> 8), byte(off), byte(len(data))}, data...)
	}
	hello := testHelloMsg("x.ai", 400)
	var seed, switched []byte
	for off := 0; off < len(hello); off += 200 {
		seed = append(seed, enc(0, off, hello[off:min(off+200, len(hello))])...)
		fl := byte(0)
		if off > 0 {
			fl = 0x10
		}
		switched = append(switched, enc(fl, off, hello[off:min(off+200, len(hello))])...)
	}
	f.Add(seed)
	f.Add(switched)
	f.Add(enc(1, 0, []byte{1, 0, 0, 10, 3, 3}))
	f.Add(enc(2, 65000, []byte{1, 2, 3}))
	odcids := [][]byte{rfcDCID, quicHex("0a0b0c0d0e0f1011")}
	scid := quicHex("53001122")
	f.Fuzz(func(t *testing.T, in []byte) {
		a := NewQUICAssembler(2)
		for pn := uint64(0); len(in) >= 4 && pn < 64; pn++ {
			flow, off, n := in[0], int(in[1])<<8|int(in[2]), int(in[3])
			in = in[4:]
			n = min(n, len(in))
			s := quicPktSpec{pn: pn, dcid: odcids[flow>>5&1], payload: quicCryptoFrame(uint64(off), in[:n])}
			if flow&0x10 != 0 {
				s.keyDCID, s.dcid = s.dcid, scid
			}
			dg := sealQUIC(t, s)
			in = in[n:]
			_, _, _ = a.Add(string(rune('a'+flow%4)), dg)
		}
		if a.Len() > 2 || a.total < 0 || a.total > quicMaxTotalBytes || a.total != quicAccounted(a) {
			t.Fatalf("bounds: len %d total %d accounted %d", a.Len(), a.total, quicAccounted(a))
		}
		_, _, _ = a.Add("raw", in)
	})
}

func BenchmarkParseQUICInitial(b *testing.B) {
	pkt := readQUICHex(b, "quic_rfc9001_client_initial.hex")
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, err := ParseQUICInitial(pkt); err != nil {
			b.Fatal(err)
		}
	}
}
