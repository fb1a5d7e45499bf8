package sniff

import (
	"errors"
	"net/netip"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/aigress/aigress/classify"
)

const (
	protoTCP = 6
	protoUDP = 17
)

// flowKey is a canonical 5-tuple: (a, ap) sorts before (b, bp), so both
// directions of a flow share the key. It is comparable and allocation-free.
type flowKey struct {
	a, b   netip.Addr
	ap, bp uint16
	proto  uint8
}

func makeKey(src, dst netip.Addr, sp, dp uint16, proto uint8) (k flowKey, srcIsA bool) {
	c := src.Compare(dst)
	if c < 0 || (c == 0 && sp <= dp) {
		return flowKey{a: src, b: dst, ap: sp, bp: dp, proto: proto}, true
	}
	return flowKey{a: dst, b: src, ap: dp, bp: sp, proto: proto}, false
}

const (
	stInspecting uint8 = iota // the name is not known yet
	stDone                    // named (agg may still be nil: not an AI service) or given up
)

type flow struct {
	key         flowKey
	clientIsA   bool
	state       uint8
	closed      bool // FIN or RST seen
	quicDgrams  uint8
	first, last time.Time
	bytes       int64
	packets     int64
	agg         *aggregate
	gen         uint32
	st          *stream // client -> server bytes while inspecting (TCP)
	quicKey     string
}

func (f *flow) client() (netip.Addr, uint16) {
	if f.clientIsA {
		return f.key.a, f.key.ap
	}
	return f.key.b, f.key.bp
}

func (f *flow) server() (netip.Addr, uint16) {
	if f.clientIsA {
		return f.key.b, f.key.bp
	}
	return f.key.a, f.key.ap
}

// lookupFlow returns the flow for a packet, creating it (and evicting the
// least recently used one when the table is full).
func (s *Sensor) lookupFlow(src, dst netip.Addr, sp, dp uint16, proto uint8, clientIsSrc func() bool) (*flow, bool) {
	k, srcIsA := makeKey(src, dst, sp, dp, proto)
	if f, ok := s.flows.Get(k); ok {
		return f, srcIsA == f.clientIsA
	}
	cs := clientIsSrc()
	f := &flow{key: k, clientIsA: cs == srcIsA}
	s.flows.Add(k, f)
	s.stats.FlowsTotal++
	return f, cs
}

// guessClientIsSrc decides the client of a flow whose first packet is not
// a SYN: the side talking to a well-known service port, else the side with
// the higher (ephemeral) port.
func guessClientIsSrc(sp, dp uint16) bool {
	switch {
	case isServicePort(dp) && !isServicePort(sp):
		return true
	case isServicePort(sp) && !isServicePort(dp):
		return false
	}
	return sp >= dp
}

func isServicePort(p uint16) bool {
	switch p {
	case 443, 80, 53, 8080, 8443:
		return true
	}
	return p < 1024
}

func (s *Sensor) account(f *flow, ipBytes int, ts time.Time) {
	if f.packets == 0 || ts.Before(f.first) {
		f.first = ts
	}
	if ts.After(f.last) {
		f.last = ts
	}
	f.packets++
	f.bytes += int64(ipBytes)
	if a := f.agg; a != nil {
		if f.gen != s.gen {
			// The rows were flushed since: the flow counts again in
			// the new period.
			a = s.reattach(f)
			if a == nil {
				return
			}
		}
		a.packets++
		a.bytes += int64(ipBytes)
		a.see(ts)
	}
}

func (s *Sensor) handleTCP(src, dst netip.Addr, ipBytes int, ts time.Time) {
	t := &s.tcp
	sp, dp := uint16(t.SrcPort), uint16(t.DstPort)
	syn := t.SYN && !t.ACK
	f, fromClient := s.lookupFlow(src, dst, sp, dp, protoTCP, func() bool {
		switch {
		case syn:
			return true
		case t.SYN && t.ACK:
			return false
		}
		return guessClientIsSrc(sp, dp)
	})
	if syn && f.closed && f.packets > 0 {
		// The 5-tuple is reused by a new connection.
		k := f.key
		s.removing = true
		s.flows.Remove(k)
		s.removing = false
		s.finish(f)
		f, fromClient = s.lookupFlow(src, dst, sp, dp, protoTCP, func() bool { return true })
	}
	s.account(f, ipBytes, ts)
	if t.FIN || t.RST {
		f.closed = true
	}
	if f.state != stInspecting || !fromClient {
		return
	}
	if syn {
		st := s.streamOf(f)
		st.next = t.Seq + 1
		st.anchored = true
		return
	}
	if len(t.Payload) > 0 {
		s.tcpData(f, t.Seq, t.Payload)
	}
}

func (s *Sensor) handleUDP(src, dst netip.Addr, ipBytes int, ts time.Time) {
	u := &s.udp
	sp, dp := uint16(u.SrcPort), uint16(u.DstPort)
	f, fromClient := s.lookupFlow(src, dst, sp, dp, protoUDP, func() bool {
		switch {
		case dp == 53 || dp == 443:
			return true
		case sp == 53 || sp == 443:
			return false
		}
		return guessClientIsSrc(sp, dp)
	})
	s.account(f, ipBytes, ts)
	_, serverPort := f.server()
	switch {
	case serverPort == 53:
		// Answers feed the IP -> name map whatever the flow's state.
		s.handleDNS(f, fromClient, u.Payload)
	case f.state != stInspecting:
	case serverPort == 443:
		if fromClient {
			s.handleQUIC(f, u.Payload)
		}
	default:
		s.giveUp(f)
	}
}

func (s *Sensor) handleQUIC(f *flow, payload []byte) {
	if len(payload) == 0 {
		return
	}
	if f.quicKey == "" {
		c, cp := f.client()
		sv, sp := f.server()
		f.quicKey = netip.AddrPortFrom(c, cp).String() + ">" + netip.AddrPortFrom(sv, sp).String()
	}
	f.quicDgrams++
	// The assembler may keep the datagram: hand it a copy, the capture
	// buffer is reused for the next packet.
	hello, ok, err := s.quic.Add(f.quicKey, append([]byte(nil), payload...))
	switch {
	case err != nil && f.quicDgrams == 1:
		// The first client datagram of a QUIC connection is an Initial.
		s.giveUp(f)
	case ok:
		s.stats.QUICFound++
		s.named(f, hello.ServerName, SourceQUIC)
	case f.quicDgrams >= maxQUICDgrams:
		s.giveUp(f) // later datagrams (Handshake, 1-RTT) are not Initials

	}
}

func (s *Sensor) handleDNS(f *flow, fromClient bool, payload []byte) {
	d := &s.dns
	if err := d.DecodeFromBytes(payload, gopacket.NilDecodeFeedback); err != nil {
		s.stats.Malformed++
		if f.state == stInspecting {
			s.giveUp(f)
		}
		return
	}
	if len(d.Questions) == 0 {
		return
	}
	if !d.QR {
		if !fromClient {
			return
		}
		s.stats.DNSQueries++
		if f.state == stInspecting {
			s.named(f, string(d.Questions[0].Name), SourceDNSQuery)
		}
		return
	}
	var qname string
	for i := range d.Answers {
		a := &d.Answers[i]
		if a.Class != layers.DNSClassIN || (a.Type != layers.DNSTypeA && a.Type != layers.DNSTypeAAAA) {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		if qname == "" {
			qname = normHost(string(d.Questions[0].Name))
		}
		s.stats.DNSAnswers++
		// The latest answer wins: an address handed out for a
		// non-AI name is no longer attributed to an AI one.
		s.names.Add(ip.Unmap(), qname)
	}
	if f.state == stInspecting && d.ResponseCode == layers.DNSResponseCodeNoErr {
		// The query was not captured (one direction only): the
		// answer names the lookup.
		s.named(f, string(d.Questions[0].Name), SourceDNSQuery)
	}
}

// named attributes a flow to the service behind host (if any) and ends
// its inspection.
func (s *Sensor) named(f *flow, host, source string) {
	s.endInspect(f)
	host = normHost(host)
	if host == "" {
		return
	}
	svc, ok := s.opts.Lookup(host)
	if !ok {
		return
	}
	sni := ""
	if source == SourceSNI || source == SourceQUIC {
		sni = host
	}
	s.attach(f, svc, host, sni, source)
}

// giveUp ends inspection without a name: the destination IP may still be
// known from a DNS answer.
func (s *Sensor) giveUp(f *flow) {
	s.endInspect(f)
	s.attributeByDNS(f)
}

func (s *Sensor) attributeByDNS(f *flow) {
	if f.agg != nil {
		return
	}
	sv, sp := f.server()
	if sp == 53 {
		return
	}
	name, ok := s.names.Get(sv)
	if !ok {
		return
	}
	svc, ok := s.opts.Lookup(name)
	if !ok {
		return
	}
	s.stats.DNSAttributed++
	s.attach(f, svc, name, "", SourceDNS)
}

func (s *Sensor) endInspect(f *flow) {
	f.state = stDone
	if f.st != nil {
		s.buffered -= f.st.size()
		f.st = nil
	}
}

// finish is called once a flow leaves the table (eviction, reuse of its
// 5-tuple, Flush): a flow never named gets its last chance by DNS.
func (s *Sensor) finish(f *flow) {
	if f.state == stInspecting {
		s.giveUp(f)
	}
}

func (s *Sensor) onEvict(_ flowKey, f *flow) {
	if !s.removing {
		s.stats.FlowsEvicted++
	}
	s.finish(f)
}

// tcpData feeds client -> server bytes at sequence number seq.
func (s *Sensor) tcpData(f *flow, seq uint32, p []byte) {
	st := s.streamOf(f)
	if !st.anchored {
		// No SYN seen: the first data segment starts the stream.
		st.next = seq
		st.anchored = true
	}
	rel := int32(seq - st.next)
	if rel > 0 {
		s.stats.OutOfOrder++
		s.holdSegment(f, st, seq, p)
		return
	}
	skip := int(-rel)
	if skip >= len(p) {
		s.stats.Retransmits++
		return
	}
	p = p[skip:]
	if len(st.buf) == 0 && len(st.ooo) == 0 {
		// Fast path: the whole hello in the first segment, no copy.
		if s.inspect(f, p) {
			return
		}
	}
	if !s.appendStream(f, st, p) {
		return
	}
	s.drain(f, st)
	if f.state == stInspecting {
		s.inspect(f, st.buf)
	}
}

// inspect looks at the client's first bytes. It returns true when the
// flow's inspection ended (named or given up).
func (s *Sensor) inspect(f *flow, b []byte) bool {
	if len(b) == 0 {
		return false
	}
	switch c := b[0]; {
	case c == 0x16: // TLS handshake record
		hello, err := s.parse(b)
		switch {
		case err == nil:
			if hello.ServerName == "" {
				s.giveUp(f)
				return true
			}
			s.stats.SNIFound++
			s.named(f, hello.ServerName, SourceSNI)
			return true
		case errors.Is(err, classify.ErrNeedMore):
			if len(b) >= s.opts.MaxStreamBytes {
				s.stats.InspectAbandoned++
				s.giveUp(f)
				return true
			}
			return false
		default:
			s.giveUp(f)
			return true
		}
	case c >= 'A' && c <= 'Z':
		host, res := parseHTTPHost(b)
		switch res {
		case httpFound:
			s.stats.HTTPHosts++
			s.named(f, host, SourceHTTPHost)
			return true
		case httpNeedMore:
			if len(b) >= s.opts.MaxStreamBytes || len(b) >= maxHTTPHeader {
				s.stats.InspectAbandoned++
				s.giveUp(f)
				return true
			}
			return false
		default:
			s.giveUp(f)
			return true
		}
	default:
		s.giveUp(f)
		return true
	}
}

func (s *Sensor) streamOf(f *flow) *stream {
	if f.st == nil {
		f.st = &stream{}
	}
	return f.st
}

// appendStream adds in-order bytes, within the per-flow and global caps.
func (s *Sensor) appendStream(f *flow, st *stream, p []byte) bool {
	if room := s.opts.MaxStreamBytes - len(st.buf); len(p) > room {
		p = p[:room]
	}
	if len(p) == 0 || s.buffered+len(p) > s.opts.MaxBufferedBytes {
		s.stats.InspectAbandoned++
		s.giveUp(f)
		return false
	}
	before := cap(st.buf)
	st.buf = append(st.buf, p...)
	s.buffered += cap(st.buf) - before
	st.next += uint32(len(p))
	return true
}

func (s *Sensor) holdSegment(f *flow, st *stream, seq uint32, p []byte) {
	if int(int32(seq-st.next)) >= s.opts.MaxStreamBytes || len(st.ooo) >= maxOutOfOrder ||
		st.oooBytes+len(p) > s.opts.MaxStreamBytes || s.buffered+len(p) > s.opts.MaxBufferedBytes {
		s.stats.SegmentsDropped++
		return
	}
	for _, g := range st.ooo {
		if g.seq == seq && len(g.data) >= len(p) {
			s.stats.Retransmits++
			return
		}
	}
	st.ooo = append(st.ooo, segment{seq: seq, data: append([]byte(nil), p...)})
	st.oooBytes += len(p)
	s.buffered += len(p)
}

// drain moves held segments that became in-order into buf.
func (s *Sensor) drain(f *flow, st *stream) {
	for progress := true; progress && len(st.ooo) > 0 && f.state == stInspecting; {
		progress = false
		for i := 0; i < len(st.ooo); i++ {
			g := st.ooo[i]
			rel := int32(g.seq - st.next)
			if rel > 0 {
				continue
			}
			st.ooo = append(st.ooo[:i], st.ooo[i+1:]...)
			st.oooBytes -= len(g.data)
			s.buffered -= len(g.data)
			i--
			progress = true
			if skip := int(-rel); skip < len(g.data) {
				if !s.appendStream(f, st, g.data[skip:]) {
					return
				}
			}
		}
	}
}

// stream is the start of a flow's client -> server byte stream, kept only
// until the name is known. A small in-order buffer: the handful of
// segments of a ClientHello do not need a general reassembler.
type stream struct {
	next     uint32
	anchored bool
	buf      []byte
	ooo      []segment
	oooBytes int
}

type segment struct {
	seq  uint32
	data []byte
}

func (st *stream) size() int { return cap(st.buf) + st.oooBytes }

// aggKey is one output row.
type aggKey struct {
	client netip.Addr
	svc    classify.Service
	source string
}

type aggregate struct {
	key         aggKey
	host, sni   string
	destIP      netip.Addr
	destPort    uint16
	first, last time.Time
	flows       int64
	bytes       int64
	packets     int64
}

func (a *aggregate) see(ts time.Time) {
	if a.first.IsZero() || ts.Before(a.first) {
		a.first = ts
	}
	if ts.After(a.last) {
		a.last = ts
	}
}

func (s *Sensor) aggFor(k aggKey) *aggregate {
	if a, ok := s.aggs[k]; ok {
		return a
	}
	if len(s.aggs) >= s.opts.MaxAggregates {
		s.stats.AggregatesFull++
		return nil
	}
	a := &aggregate{key: k}
	s.aggs[k] = a
	return a
}

// attach binds a flow to its row and credits what the flow carried so far.
func (s *Sensor) attach(f *flow, svc classify.Service, host, sni, source string) {
	c, _ := f.client()
	a := s.aggFor(aggKey{client: c, svc: svc, source: source})
	if a == nil {
		return
	}
	if a.host == "" {
		a.host, a.sni = host, sni
		a.destIP, a.destPort = f.server()
	}
	f.agg, f.gen = a, s.gen
	a.flows++
	a.bytes += f.bytes
	a.packets += f.packets
	a.see(f.first)
	a.see(f.last)
}

func (s *Sensor) reattach(f *flow) *aggregate {
	old := f.agg
	a := s.aggFor(old.key)
	if a == nil {
		f.agg = nil
		return nil
	}
	if a.host == "" {
		a.host, a.sni, a.destIP, a.destPort = old.host, old.sni, old.destIP, old.destPort
	}
	a.flows++
	f.agg, f.gen = a, s.gen
	return a
}
