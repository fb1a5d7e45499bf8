package classify

// ClientHello design notes (for doc.go):
//
//   - ParseClientHello takes the bytes seen so far from the start of a TCP
//     connection and is meant to be called again with more bytes until it
//     stops returning ErrNeedMore. It never consumes or retains the input,
//     so the transparent listener can peek and then replay the same bytes
//     to the tunnel or the TLS server.
//   - The first byte decides quickly: anything other than a TLS handshake
//     record (0x16) with a 3.x record version is ErrNotTLS, so a caller can
//     fall back to plain HTTP after one byte (or three).
//   - A ClientHello may span several TLS records (and so several TCP
//     segments). When it fits in the first record it is parsed in place
//     without copying; otherwise the fragments are joined.
//   - Bounds: a handshake message larger than 64 KiB and a record larger
//     than 2^14 bytes (RFC 8446 5.1 plaintext limit) are errors, so a
//     caller never needs to buffer more than ~70 KiB to get an answer.
//   - Strictness: structure errors (bad lengths, trailing bytes, duplicate
//     server_name / ALPN / supported_versions extensions) are errors rather
//     than best-effort guesses, because a lenient parser that disagrees with
//     the real server about the SNI is an interception bypass. A missing SNI
//     is not an error (ServerName "").
//   - HasECH reports an encrypted_client_hello extension (0xfe0d). Clients
//     send a GREASE ECH extension too, so HasECH alone does not mean the
//     real server name is hidden; when ECH is real, ServerName is the
//     outer (public) name.
//   - QUIC reuses the same message parser (parseClientHelloMsg) on the
//     reassembled CRYPTO stream, which carries handshake messages without
//     TLS records.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ClientHello holds what aigress needs from a TLS ClientHello.
type ClientHello struct {
	ServerName    string   // SNI host name, "" when absent
	ALPN          []string // application protocols in client order
	Versions      []uint16 // supported_versions, nil when absent
	LegacyVersion uint16   // legacy_version field (0x0303 for TLS 1.2/1.3)
	HasECH        bool     // encrypted_client_hello extension present
}

var (
	// ErrNeedMore means the input ends before the ClientHello does; call
	// again with more bytes.
	ErrNeedMore = errors.New("classify: need more data")
	// ErrNotTLS means the stream does not start with a TLS handshake
	// record.
	ErrNotTLS = errors.New("classify: not a TLS handshake")
)

const (
	recordTypeHandshake   = 0x16
	handshakeClientHello  = 1
	maxHandshakeMsg       = 64 << 10
	maxTLSRecordPlaintext = 1 << 14

	extServerName       = 0
	extALPN             = 16
	extSupportedVersion = 43
	extECH              = 0xfe0d
)

func errHello(format string, args ...any) error {
	return fmt.Errorf("classify: tls client hello: "+format, args...)
}

// ParseClientHello parses the TLS ClientHello at the start of stream, the
// bytes received so far on a TCP connection. It returns ErrNeedMore while
// the message is incomplete and ErrNotTLS when the stream is not TLS.
func ParseClientHello(stream []byte) (ClientHello, error) {
	if len(stream) == 0 {
		return ClientHello{}, ErrNeedMore
	}
	if stream[0] != recordTypeHandshake {
		return ClientHello{}, ErrNotTLS
	}
	if len(stream) >= 2 && stream[1] != 3 {
		return ClientHello{}, ErrNotTLS
	}
	if len(stream) < 5 {
		return ClientHello{}, ErrNeedMore
	}
	// Fast path: the whole message is in the first record.
	recLen := int(binary.BigEndian.Uint16(stream[3:5]))
	if recLen > maxTLSRecordPlaintext {
		return ClientHello{}, errHello("record of %d bytes exceeds 2^14", recLen)
	}
	if recLen == 0 {
		return ClientHello{}, errHello("empty handshake record")
	}
	if len(stream) >= 5+4 && 5+recLen <= len(stream) {
		frag := stream[5 : 5+recLen]
		if len(frag) >= 4 {
			if frag[0] != handshakeClientHello {
				return ClientHello{}, errHello("first handshake message has type %d, want ClientHello", frag[0])
			}
			msgLen := int(frag[1])<<16 | int(frag[2])<<8 | int(frag[3])
			if msgLen > maxHandshakeMsg {
				return ClientHello{}, errHello("message of %d bytes exceeds 64 KiB", msgLen)
			}
			if 4+msgLen <= len(frag) {
				return parseClientHelloMsg(frag[:4+msgLen])
			}
		}
	}
	// Slow path: join handshake fragments from consecutive records.
	var msg []byte
	need := -1 // total message length incl. 4-byte header, once known
	rest := stream
	for {
		if need >= 0 && len(msg) >= need {
			return parseClientHelloMsg(msg[:need])
		}
		if len(rest) < 5 {
			return ClientHello{}, ErrNeedMore
		}
		if rest[0] != recordTypeHandshake {
			return ClientHello{}, errHello("record of type %d inside the ClientHello", rest[0])
		}
		if rest[1] != 3 {
			return ClientHello{}, errHello("bad record version %#04x", binary.BigEndian.Uint16(rest[1:3]))
		}
		n := int(binary.BigEndian.Uint16(rest[3:5]))
		if n > maxTLSRecordPlaintext {
			return ClientHello{}, errHello("record of %d bytes exceeds 2^14", n)
		}
		if n == 0 {
			return ClientHello{}, errHello("empty handshake record")
		}
		if len(rest) < 5+n {
			// Report the header problems as early as we can.
			if need < 0 && len(msg)+len(rest)-5 >= 4 {
				var hdr [4]byte
				k := copy(hdr[:], msg)
				copy(hdr[k:], rest[5:])
				if err := checkHelloHeader(hdr[:]); err != nil {
					return ClientHello{}, err
				}
			}
			return ClientHello{}, ErrNeedMore
		}
		msg = append(msg, rest[5:5+n]...)
		rest = rest[5+n:]
		if need < 0 && len(msg) >= 4 {
			if err := checkHelloHeader(msg); err != nil {
				return ClientHello{}, err
			}
			need = 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if cap(msg) < need {
				m := make([]byte, len(msg), need)
				copy(m, msg)
				msg = m
			}
		}
	}
}

func checkHelloHeader(h []byte) error {
	if h[0] != handshakeClientHello {
		return errHello("first handshake message has type %d, want ClientHello", h[0])
	}
	if n := int(h[1])<<16 | int(h[2])<<8 | int(h[3]); n > maxHandshakeMsg {
		return errHello("message of %d bytes exceeds 64 KiB", n)
	}
	return nil
}

// helloReader is a tiny bounds-checked big-endian reader.
type helloReader struct {
	b  []byte
	ok bool
}

func (r *helloReader) u8() int {
	if len(r.b) < 1 {
		r.ok = false
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return int(v)
}

func (r *helloReader) u16() int {
	if len(r.b) < 2 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return int(v)
}

func (r *helloReader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.ok = false
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// parseClientHelloMsg parses one complete handshake message (4-byte header
// included) that must be a ClientHello. On error the ClientHello is zero.
func parseClientHelloMsg(msg []byte) (ClientHello, error) {
	ch, err := parseClientHelloBody(msg)
	if err != nil {
		return ClientHello{}, err
	}
	return ch, nil
}

func parseClientHelloBody(msg []byte) (ClientHello, error) {
	var ch ClientHello
	if len(msg) < 4 {
		return ch, errHello("truncated handshake header")
	}
	if err := checkHelloHeader(msg); err != nil {
		return ch, err
	}
	body := msg[4:]
	if n := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]); n != len(body) {
		return ch, errHello("message length %d, have %d bytes", n, len(body))
	}
	r := helloReader{b: body, ok: true}
	ch.LegacyVersion = uint16(r.u16())
	r.bytes(32) // random
	sid := r.u8()
	if sid > 32 {
		return ch, errHello("session id of %d bytes", sid)
	}
	r.bytes(sid)
	cs := r.u16()
	if cs == 0 || cs%2 != 0 {
		return ch, errHello("bad cipher suites length %d", cs)
	}
	r.bytes(cs)
	cm := r.u8()
	if cm == 0 {
		return ch, errHello("no compression methods")
	}
	r.bytes(cm)
	if !r.ok {
		return ch, errHello("truncated")
	}
	if len(r.b) == 0 {
		return ch, nil // no extensions (SSL 3 / early TLS 1.0 style)
	}
	extLen := r.u16()
	exts := r.bytes(extLen)
	if !r.ok || len(r.b) != 0 {
		return ch, errHello("bad extensions length")
	}
	var seenSNI, seenALPN, seenVers, seenECH bool
	er := helloReader{b: exts, ok: true}
	for len(er.b) > 0 {
		typ := er.u16()
		data := er.bytes(er.u16())
		if !er.ok {
			return ch, errHello("truncated extension")
		}
		switch typ {
		case extServerName:
			if seenSNI {
				return ch, errHello("duplicate server_name")
			}
			seenSNI = true
			name, err := parseSNI(data)
			if err != nil {
				return ch, err
			}
			ch.ServerName = name
		case extALPN:
			if seenALPN {
				return ch, errHello("duplicate ALPN")
			}
			seenALPN = true
			alpn, err := parseALPN(data)
			if err != nil {
				return ch, err
			}
			ch.ALPN = alpn
		case extSupportedVersion:
			if seenVers {
				return ch, errHello("duplicate supported_versions")
			}
			seenVers = true
			vr := helloReader{b: data, ok: true}
			list := vr.bytes(vr.u8())
			if !vr.ok || len(vr.b) != 0 || len(list) == 0 || len(list)%2 != 0 {
				return ch, errHello("bad supported_versions")
			}
			ch.Versions = make([]uint16, len(list)/2)
			for i := range ch.Versions {
				ch.Versions[i] = binary.BigEndian.Uint16(list[2*i:])
			}
		case extECH:
			if seenECH {
				return ch, errHello("duplicate encrypted_client_hello")
			}
			seenECH = true
			ch.HasECH = true
		}
	}
	return ch, nil
}

func parseSNI(data []byte) (string, error) {
	r := helloReader{b: data, ok: true}
	list := r.bytes(r.u16())
	if !r.ok || len(r.b) != 0 || len(list) == 0 {
		return "", errHello("bad server_name extension")
	}
	lr := helloReader{b: list, ok: true}
	name := ""
	for len(lr.b) > 0 {
		typ := lr.u8()
		v := lr.bytes(lr.u16())
		if !lr.ok {
			return "", errHello("bad server_name list")
		}
		if typ != 0 { // only host_name (0) is defined
			continue
		}
		if name != "" {
			return "", errHello("more than one host_name")
		}
		if len(v) == 0 || len(v) > 255 {
			return "", errHello("host_name of %d bytes", len(v))
		}
		for _, c := range v {
			if c <= ' ' || c >= 0x7f {
				return "", errHello("host_name with byte %#02x", c)
			}
		}
		name = string(v)
	}
	return name, nil
}

func parseALPN(data []byte) ([]string, error) {
	r := helloReader{b: data, ok: true}
	list := r.bytes(r.u16())
	if !r.ok || len(r.b) != 0 || len(list) == 0 {
		return nil, errHello("bad ALPN extension")
	}
	lr := helloReader{b: list, ok: true}
	var out []string
	for len(lr.b) > 0 {
		p := lr.bytes(lr.u8())
		if !lr.ok || len(p) == 0 {
			return nil, errHello("bad ALPN protocol name")
		}
		out = append(out, string(p))
	}
	return out, nil
}
