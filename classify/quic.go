package classify

// QUIC design notes (for doc.go):
//
//   - Client Initial packets are encrypted with keys derived only from the
//     Destination Connection ID the client chose (RFC 9001 5.2), so an
//     on-path observer can read the ClientHello. We support QUIC v1
//     (0x00000001, RFC 9001 salt, "quic key/iv/hp" labels) and v2
//     (0x6b3343cf, RFC 9369 salt, "quicv2 key/iv/hp" labels and the rotated
//     long-header type bits, Initial = 0b01). Other versions (drafts,
//     version negotiation) are ErrNotQUICInitial.
//   - ParseQUICInitial decrypts every client Initial packet coalesced in one
//     UDP datagram that carries the first packet's DCID (RFC 9000 12.2 says
//     receivers should ignore others), skips 0-RTT/Handshake packets, and
//     returns the CRYPTO frames. It never modifies the datagram. Only the
//     first packet must decrypt; later coalesced packets that fail are
//     ignored, as a server would drop them. Only the frame types allowed in
//     Initial packets (PADDING, PING, ACK, CRYPTO, CONNECTION_CLOSE) are
//     accepted. Packet numbers are taken as sent (truncated): a client's
//     first Initial packets use small numbers, so no reconstruction is
//     needed for this purpose.
//   - ClientHellos larger than one packet are common now (post-quantum key
//     shares make Go's and Chrome's ClientHello > 1200 bytes), so
//     QUICAssembler reassembles CRYPTO data by offset across packets and
//     datagrams of one flow, keyed by the caller's flow string only
//     (typically client and server address). Within a flow, connections are
//     named by the client's original DCID. A client that receives the
//     server's first Initial before it has sent its whole ClientHello sends
//     the rest to the server's new connection ID, still protected with the
//     original DCID's keys (RFC 9001 5.2; about 7% of real quic-go
//     captures), so the flow caches the keys of connections in progress and
//     tries them for packets whose DCID names no known connection, before
//     deriving keys from the packet's own DCID (a new connection on the same
//     socket). Reported connections keep only version and original DCID;
//     their keys are re-derived if a late packet needs them. Memory is
//     bounded: maxFlows flows (least recently used evicted), 4 connections
//     per flow, 80 KiB of CRYPTO data and 256 pieces per connection, and
//     16 MiB in total (cached keys count 2 KiB each). A completed connection
//     keeps a tiny "done" marker so that retransmissions do not report the
//     same hello twice. Decryption runs outside the lock. QUICAssembler is
//     safe for concurrent use.

import (
	"bytes"
	"container/list"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// QUIC versions understood by ParseQUICInitial.
const (
	QUICVersion1 uint32 = 0x00000001
	QUICVersion2 uint32 = 0x6b3343cf
)

// ErrNotQUICInitial means the datagram does not start with a client Initial
// packet of a supported QUIC version.
var ErrNotQUICInitial = errors.New("classify: not a QUIC Initial packet")

// errQUICOpen means the packet protection did not verify with the keys
// tried: other keys (the original DCID's) may still open it.
var errQUICOpen = errors.New("decrypt Initial")

var (
	quicSaltV1 = []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
		0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	quicSaltV2 = []byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
		0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9}
)

// CryptoFrame is the content of one QUIC CRYPTO frame.
type CryptoFrame struct {
	Offset uint64
	Data   []byte
}

// QUICInitial is what the client Initial packets of one datagram carry.
type QUICInitial struct {
	Version uint32
	DCID    []byte
	Crypto  []CryptoFrame
}

func errQUIC(format string, args ...any) error {
	return fmt.Errorf("classify: quic: "+format, args...)
}

// quicKeys are the client Initial packet protection keys.
type quicKeys struct {
	aead cipher.AEAD
	hp   cipher.Block
	iv   []byte
}

func hkdfExpandLabel(secret []byte, label string, length int) ([]byte, error) {
	// HkdfLabel (RFC 8446 7.1) with an empty context.
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = append(info, byte(length>>8), byte(length), byte(len(full)))
	info = append(info, full...)
	info = append(info, 0)
	return hkdf.Expand(sha256.New, secret, string(info), length)
}

// quicClientSecret returns the client Initial secret for dcid.
func quicClientSecret(version uint32, dcid []byte) ([]byte, error) {
	salt := quicSaltV1
	if version == QUICVersion2 {
		salt = quicSaltV2
	}
	initial, err := hkdf.Extract(sha256.New, dcid, salt)
	if err != nil {
		return nil, err
	}
	return hkdfExpandLabel(initial, "client in", 32)
}

// quicKeyMaterial returns key, iv and hp key for a client Initial secret.
func quicKeyMaterial(version uint32, secret []byte) (key, iv, hp []byte, err error) {
	prefix := "quic "
	if version == QUICVersion2 {
		prefix = "quicv2 "
	}
	if key, err = hkdfExpandLabel(secret, prefix+"key", 16); err != nil {
		return
	}
	if iv, err = hkdfExpandLabel(secret, prefix+"iv", 12); err != nil {
		return
	}
	hp, err = hkdfExpandLabel(secret, prefix+"hp", 16)
	return
}

func newQUICKeys(version uint32, dcid []byte) (*quicKeys, error) {
	secret, err := quicClientSecret(version, dcid)
	if err != nil {
		return nil, errQUIC("derive secret: %w", err)
	}
	key, iv, hpKey, err := quicKeyMaterial(version, secret)
	if err != nil {
		return nil, errQUIC("derive keys: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errQUIC("cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, errQUIC("gcm: %w", err)
	}
	hp, err := aes.NewCipher(hpKey)
	if err != nil {
		return nil, errQUIC("hp cipher: %w", err)
	}
	return &quicKeys{aead: aead, hp: hp, iv: iv}, nil
}

// quicVarint decodes an RFC 9000 variable-length integer.
func quicVarint(b []byte) (uint64, int, bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	n := 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0, false
	}
	v := uint64(b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v, n, true
}

// long header packet types, normalised to the v1 numbering.
const (
	quicTypeInitial = iota
	quicType0RTT
	quicTypeHandshake
	quicTypeRetry
)

func quicPacketType(version uint32, first byte) int {
	t := int(first>>4) & 3
	if version == QUICVersion2 {
		// v2: Initial 0b01, 0-RTT 0b10, Handshake 0b11, Retry 0b00.
		return (t + 3) & 3
	}
	return t
}

// longHeader is the parsed, still protected, long header of one packet.
type longHeader struct {
	version  uint32
	typ      int
	dcid     []byte
	pnOffset int // offset of the packet number within the packet
	end      int // end of this packet within the input
}

func parseLongHeader(b []byte) (longHeader, error) {
	var h longHeader
	if len(b) < 7 || b[0]&0x80 == 0 {
		return h, ErrNotQUICInitial
	}
	h.version = binary.BigEndian.Uint32(b[1:5])
	if h.version != QUICVersion1 && h.version != QUICVersion2 {
		return h, fmt.Errorf("%w: version %#08x", ErrNotQUICInitial, h.version)
	}
	h.typ = quicPacketType(h.version, b[0])
	p := 5
	dl := int(b[p])
	p++
	if dl > 20 || len(b) < p+dl+1 {
		return h, errQUIC("bad destination connection ID")
	}
	h.dcid = b[p : p+dl : p+dl]
	p += dl
	sl := int(b[p])
	p++
	if sl > 20 || len(b) < p+sl {
		return h, errQUIC("bad source connection ID")
	}
	p += sl
	switch h.typ {
	case quicTypeRetry:
		h.end = len(b) // Retry has no length: it takes the rest
		return h, nil
	case quicTypeInitial:
		tl, n, ok := quicVarint(b[p:])
		if !ok || uint64(len(b)-p-n) < tl {
			return h, errQUIC("bad token")
		}
		p += n + int(tl)
	}
	length, n, ok := quicVarint(b[p:])
	if !ok {
		return h, errQUIC("truncated length")
	}
	p += n
	if uint64(len(b)-p) < length {
		return h, errQUIC("packet length %d exceeds datagram", length)
	}
	h.pnOffset = p
	h.end = p + int(length)
	return h, nil
}

// openInitial removes header and packet protection from one Initial packet
// (pkt[:h.end]) and returns the plaintext payload.
func openInitial(k *quicKeys, pkt []byte, h longHeader) ([]byte, error) {
	if h.end-h.pnOffset < 4+16 {
		return nil, errQUIC("packet too short for header protection sample")
	}
	var mask [16]byte
	k.hp.Encrypt(mask[:], pkt[h.pnOffset+4:h.pnOffset+4+16])
	first := pkt[0] ^ (mask[0] & 0x0f)
	pnLen := int(first&3) + 1
	hdrLen := h.pnOffset + pnLen
	hdr := make([]byte, hdrLen, hdrLen+h.end-hdrLen)
	copy(hdr, pkt[:hdrLen])
	hdr[0] = first
	var pn uint64
	for i := 0; i < pnLen; i++ {
		hdr[h.pnOffset+i] ^= mask[1+i]
		pn = pn<<8 | uint64(hdr[h.pnOffset+i])
	}
	var nonce [12]byte
	copy(nonce[:], k.iv)
	for i := 0; i < 8; i++ {
		nonce[11-i] ^= byte(pn >> (8 * i))
	}
	ct := pkt[hdrLen:h.end]
	if len(ct) < k.aead.Overhead() {
		return nil, errQUIC("packet too short")
	}
	// Decrypt into the spare capacity after hdr, one allocation per packet.
	pt, err := k.aead.Open(hdr[hdrLen:hdrLen], nonce[:], ct, hdr)
	if err != nil {
		return nil, fmt.Errorf("classify: quic: %w: %v", errQUICOpen, err)
	}
	if first&0x0c != 0 {
		return nil, errQUIC("reserved header bits set")
	}
	return pt, nil
}

// parseInitialFrames appends the CRYPTO frames of a decrypted Initial
// payload to out.
func parseInitialFrames(p []byte, out []CryptoFrame) ([]CryptoFrame, error) {
	if len(p) == 0 {
		return out, errQUIC("empty payload")
	}
	skipVarints := func(n int) bool {
		for ; n > 0; n-- {
			_, l, ok := quicVarint(p)
			if !ok {
				return false
			}
			p = p[l:]
		}
		return true
	}
	for len(p) > 0 {
		ft, n, ok := quicVarint(p)
		if !ok {
			return out, errQUIC("truncated frame type")
		}
		p = p[n:]
		switch ft {
		case 0x00, 0x01: // PADDING, PING
		case 0x02, 0x03: // ACK, ACK_ECN
			if !skipVarints(2) { // largest acknowledged, delay
				return out, errQUIC("truncated ACK")
			}
			count, l, ok := quicVarint(p)
			if !ok || count > uint64(len(p)) {
				return out, errQUIC("bad ACK range count")
			}
			p = p[l:]
			k := 1 + 2*int(count)
			if ft == 0x03 {
				k += 3
			}
			if !skipVarints(k) {
				return out, errQUIC("truncated ACK")
			}
		case 0x06: // CRYPTO
			off, l1, ok1 := quicVarint(p)
			if !ok1 {
				return out, errQUIC("truncated CRYPTO")
			}
			p = p[l1:]
			ln, l2, ok2 := quicVarint(p)
			if !ok2 || ln > uint64(len(p)-l2) || off > 1<<62-1-ln {
				return out, errQUIC("bad CRYPTO frame")
			}
			p = p[l2:]
			out = append(out, CryptoFrame{Offset: off, Data: p[:ln:ln]})
			p = p[ln:]
		case 0x1c: // CONNECTION_CLOSE (transport)
			if !skipVarints(2) {
				return out, errQUIC("truncated CONNECTION_CLOSE")
			}
			rl, l, ok := quicVarint(p)
			if !ok || rl > uint64(len(p)-l) {
				return out, errQUIC("bad CONNECTION_CLOSE")
			}
			p = p[l+int(rl):]
		default:
			return out, errQUIC("frame type %#x not allowed in Initial", ft)
		}
	}
	return out, nil
}

// initialHeader parses the first long header of a datagram and checks that
// it is a client Initial packet with a destination connection ID.
func initialHeader(datagram []byte) (longHeader, error) {
	h, err := parseLongHeader(datagram)
	if err != nil {
		return h, err
	}
	if h.typ != quicTypeInitial {
		return h, fmt.Errorf("%w: long header type %d", ErrNotQUICInitial, h.typ)
	}
	if len(h.dcid) == 0 {
		return h, errQUIC("empty destination connection ID")
	}
	return h, nil
}

// readInitial decrypts the Initial packet described by h and the Initial
// packets coalesced after it (same version and DCID) with k and returns
// their CRYPTO frames. An error wrapping errQUICOpen means k does not open
// the first packet.
func readInitial(k *quicKeys, datagram []byte, h longHeader) ([]CryptoFrame, error) {
	pt, err := openInitial(k, datagram, h)
	if err != nil {
		return nil, err
	}
	frames, err := parseInitialFrames(pt, nil)
	if err != nil {
		return nil, err
	}
	// Coalesced packets.
	for rest := datagram[h.end:]; len(rest) > 0 && rest[0]&0x80 != 0; {
		nh, err := parseLongHeader(rest)
		if err != nil || nh.version != h.version || !bytes.Equal(nh.dcid, h.dcid) {
			break
		}
		if nh.typ == quicTypeInitial {
			if pt, err := openInitial(k, rest, nh); err == nil {
				if more, err := parseInitialFrames(pt, frames); err == nil {
					frames = more
				}
			}
		}
		rest = rest[nh.end:]
	}
	return frames, nil
}

// ParseQUICInitial decrypts the client Initial packet(s) at the start of a
// UDP datagram and returns their CRYPTO frames. The datagram is not
// modified; the returned frames do not alias it. Keys are derived from the
// datagram's own DCID: packets a client sends after switching to the
// server's connection ID need QUICAssembler, which remembers the original
// DCID's keys.
func ParseQUICInitial(datagram []byte) (QUICInitial, error) {
	h, err := initialHeader(datagram)
	if err != nil {
		return QUICInitial{}, err
	}
	k, err := newQUICKeys(h.version, h.dcid)
	if err != nil {
		return QUICInitial{}, err
	}
	frames, err := readInitial(k, datagram, h)
	if err != nil {
		return QUICInitial{}, err
	}
	return QUICInitial{Version: h.version, DCID: append([]byte(nil), h.dcid...), Crypto: frames}, nil
}

// Bounds of the QUIC assembler.
const (
	quicMaxFlowBytes   = 80 << 10
	quicMaxFlowPieces  = 256
	quicMaxTotalBytes  = 16 << 20
	quicDefaultMaxFlow = 4096
	// quicMaxConns is how many connections (original DCIDs) one flow
	// remembers; a client may open several from one socket.
	quicMaxConns = 4
	// quicKeysCost is what the cached keys of a connection in progress
	// count against quicMaxTotalBytes (measured: about 2 KiB retained).
	quicKeysCost = 2 << 10
)

// QUICAssembler rebuilds ClientHellos that span several QUIC Initial
// packets or datagrams.
type QUICAssembler struct {
	mu       sync.Mutex
	maxFlows int
	total    int
	flows    map[string]*list.Element
	lru      *list.List // front = most recently used; values are *quicFlow
}

// quicFlow is the state of one caller flow: the connections seen on it.
type quicFlow struct {
	key   string
	conns []*quicConn // oldest first, at most quicMaxConns
}

// quicConn is one QUIC connection of a flow, named by the client's
// original DCID, whose keys protect all its Initial packets (RFC 9001 5.2)
// even after the client switched to the server's connection ID.
type quicConn struct {
	version uint32
	odcid   string
	keys    *quicKeys // nil once done: re-derived from odcid if needed
	done    bool
	bytes   int
	pieces  []CryptoFrame // sorted by Offset
}

// quicCand is a connection's identity and keys, copied out of the lock.
type quicCand struct {
	version uint32
	odcid   string
	keys    *quicKeys
}

// NewQUICAssembler returns an assembler that tracks at most maxFlows flows
// at a time (4096 when maxFlows <= 0), evicting the least recently used.
func NewQUICAssembler(maxFlows int) *QUICAssembler {
	if maxFlows <= 0 {
		maxFlows = quicDefaultMaxFlow
	}
	return &QUICAssembler{maxFlows: maxFlows, flows: make(map[string]*list.Element), lru: list.New()}
}

// Add feeds one UDP datagram sent by the client on flow (for example
// "client addr>server addr"; it need not include the DCID). It returns the
// ClientHello and true once the CRYPTO stream of that flow's connection
// holds a complete ClientHello, and (zero, false, nil) while more is needed
// or after it was already reported. A connection is named by its original
// DCID: later Initial packets the client addresses to the server's
// connection ID are opened with the original DCID's keys remembered for the
// flow. Datagrams that are not client Initial packets return an error and
// leave the state unchanged.
func (a *QUICAssembler) Add(flow string, datagram []byte) (ClientHello, bool, error) {
	h, err := initialHeader(datagram)
	if err != nil {
		return ClientHello{}, false, err
	}
	a.mu.Lock()
	cands := a.candidates(flow)
	a.mu.Unlock()
	// Decrypt outside the lock; keys are immutable once derived.
	frames, odcid, keys, err := openWithCandidates(datagram, h, cands)
	if err != nil {
		return ClientHello{}, false, err
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.get(flow)
	c := a.conn(f, h.version, odcid, keys)
	if c.done {
		return ClientHello{}, false, nil
	}
	for _, fr := range frames {
		if len(fr.Data) == 0 {
			continue
		}
		if c.bytes+len(fr.Data) > quicMaxFlowBytes || len(c.pieces) >= quicMaxFlowPieces {
			a.finish(c)
			return ClientHello{}, false, errQUIC("flow exceeds %d bytes or %d CRYPTO pieces", quicMaxFlowBytes, quicMaxFlowPieces)
		}
		i := sort.Search(len(c.pieces), func(i int) bool { return c.pieces[i].Offset > fr.Offset })
		c.pieces = append(c.pieces, CryptoFrame{})
		copy(c.pieces[i+1:], c.pieces[i:])
		c.pieces[i] = fr
		c.bytes += len(fr.Data)
		a.total += len(fr.Data)
	}
	a.evict()
	if c.done { // evicted itself to stay within the total budget
		return ClientHello{}, false, nil
	}
	msg, err := c.message()
	if err != nil {
		a.finish(c)
		return ClientHello{}, false, err
	}
	if msg == nil {
		return ClientHello{}, false, nil
	}
	a.finish(c)
	ch, err := parseClientHelloMsg(msg)
	if err != nil {
		return ClientHello{}, false, err
	}
	return ch, true, nil
}

// candidates returns the connections of flow, newest first, without
// creating the flow. Caller holds a.mu.
func (a *QUICAssembler) candidates(flow string) []quicCand {
	e, ok := a.flows[flow]
	if !ok {
		return nil
	}
	f := e.Value.(*quicFlow)
	out := make([]quicCand, 0, len(f.conns))
	for i := len(f.conns) - 1; i >= 0; i-- {
		c := f.conns[i]
		out = append(out, quicCand{version: c.version, odcid: c.odcid, keys: c.keys})
	}
	return out
}

// openWithCandidates decrypts the datagram's client Initial packets and
// returns their CRYPTO frames, the original DCID of their connection and
// its keys. It tries, in order: the connection whose original DCID is the
// packet's DCID; the cached keys of the flow's connections in progress
// (the client switched to the server's connection ID); keys derived from
// the packet's own DCID (a new connection); keys re-derived for the flow's
// finished connections (a late packet of a reported hello).
func openWithCandidates(dg []byte, h longHeader, cands []quicCand) ([]CryptoFrame, string, *quicKeys, error) {
	dcid := string(h.dcid)
	try := func(c quicCand) ([]CryptoFrame, *quicKeys, error) {
		k := c.keys
		if k == nil {
			var err error
			if k, err = newQUICKeys(c.version, []byte(c.odcid)); err != nil {
				return nil, nil, err
			}
		}
		frames, err := readInitial(k, dg, h)
		return frames, k, err
	}
	for _, c := range cands {
		if c.version == h.version && c.odcid == dcid {
			frames, k, err := try(c)
			return frames, dcid, k, err
		}
	}
	for _, c := range cands {
		if c.version != h.version || c.keys == nil {
			continue
		}
		frames, k, err := try(c)
		if err == nil || !errors.Is(err, errQUICOpen) {
			return frames, c.odcid, k, err
		}
	}
	frames, k, ownErr := try(quicCand{version: h.version, odcid: dcid})
	if ownErr == nil || !errors.Is(ownErr, errQUICOpen) {
		return frames, dcid, k, ownErr
	}
	for _, c := range cands {
		if c.version != h.version || c.keys != nil {
			continue
		}
		frames, k, err := try(c)
		if err == nil || !errors.Is(err, errQUICOpen) {
			return frames, c.odcid, k, err
		}
	}
	return nil, "", nil, ownErr
}

// get returns the flow for key, creating it and marking it most recently
// used. Caller holds a.mu.
func (a *QUICAssembler) get(key string) *quicFlow {
	if e, ok := a.flows[key]; ok {
		a.lru.MoveToFront(e)
		return e.Value.(*quicFlow)
	}
	f := &quicFlow{key: key}
	a.flows[key] = a.lru.PushFront(f)
	for a.lru.Len() > a.maxFlows {
		a.remove(a.lru.Back())
	}
	return f
}

// conn returns the connection of f with the original DCID odcid, creating
// it (with keys, dropping the oldest beyond quicMaxConns) when missing.
// Caller holds a.mu.
func (a *QUICAssembler) conn(f *quicFlow, version uint32, odcid string, keys *quicKeys) *quicConn {
	for _, c := range f.conns {
		if c.version == version && c.odcid == odcid {
			return c
		}
	}
	if len(f.conns) >= quicMaxConns {
		a.finish(f.conns[0])
		f.conns = append(f.conns[:0], f.conns[1:]...)
	}
	c := &quicConn{version: version, odcid: odcid, keys: keys}
	a.total += quicKeysCost
	f.conns = append(f.conns, c)
	return c
}

func (a *QUICAssembler) remove(e *list.Element) {
	f := e.Value.(*quicFlow)
	for _, c := range f.conns {
		a.finish(c)
	}
	f.conns = nil
	a.lru.Remove(e)
	delete(a.flows, f.key)
}

// finish drops a connection's data and keys and keeps a done marker.
func (a *QUICAssembler) finish(c *quicConn) {
	if c.done {
		return
	}
	a.total -= c.bytes + quicKeysCost
	c.bytes, c.pieces, c.keys, c.done = 0, nil, nil, true
}

// evict removes least recently used flows while over the total budget.
func (a *QUICAssembler) evict() {
	for a.total > quicMaxTotalBytes && a.lru.Len() > 0 {
		a.remove(a.lru.Back())
	}
}

// Len returns the number of flows tracked (including done markers).
func (a *QUICAssembler) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lru.Len()
}

// contiguous returns how many bytes from offset 0 are covered.
func (f *quicConn) contiguous() uint64 {
	var end uint64
	for _, p := range f.pieces {
		if p.Offset > end {
			break
		}
		if e := p.Offset + uint64(len(p.Data)); e > end {
			end = e
		}
	}
	return end
}

// fill copies stream bytes [0, len(dst)) from the pieces; the range must be
// covered.
func (f *quicConn) fill(dst []byte) {
	n := uint64(len(dst))
	for _, p := range f.pieces {
		if p.Offset >= n {
			break
		}
		copy(dst[p.Offset:], p.Data)
	}
}

// message returns the complete ClientHello handshake message, nil if more
// data is needed, or an error if the stream cannot hold a ClientHello.
func (f *quicConn) message() ([]byte, error) {
	c := f.contiguous()
	if c < 4 {
		return nil, nil
	}
	var hdr [4]byte
	f.fill(hdr[:])
	if hdr[0] != handshakeClientHello {
		return nil, errQUIC("CRYPTO stream starts with handshake type %d, want ClientHello", hdr[0])
	}
	n := uint64(hdr[1])<<16 | uint64(hdr[2])<<8 | uint64(hdr[3])
	if n > maxHandshakeMsg {
		return nil, errQUIC("ClientHello of %d bytes exceeds 64 KiB", n)
	}
	if c < 4+n {
		return nil, nil
	}
	msg := make([]byte, 4+n)
	f.fill(msg)
	return msg, nil
}
