package sniff

import (
	"net/netip"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/sirupsen/logrus"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/classify"
)

// Defaults for the bounds in Options.
const (
	DefaultMaxFlows         = 1 << 16  // flows tracked at once (LRU)
	DefaultMaxStreamBytes   = 16 << 10 // client bytes buffered per flow until the name is known
	DefaultMaxBufferedBytes = 32 << 20 // all flows' reassembly buffers together
	DefaultMaxNames         = 1 << 16  // IP -> name entries learnt from DNS answers (LRU)
	DefaultMaxAggregates    = 1 << 16  // (client, service, source) rows between two flushes
	DefaultLiveFlush        = time.Minute

	maxOutOfOrder = 16 // out-of-order segments held per flow
	maxQUICDgrams = 12 // client datagrams offered to the QUIC assembler per flow
	maxHTTPHeader = 8 << 10
	// linkTypeSLL2 is LINKTYPE_LINUX_SLL2 (276) as gopacket v1.1.19 sees it:
	// its LinkType is a uint8, so pcapgo truncates 276 to 20 (no other
	// link type uses 20).
	linkTypeSLL2    = layers.LinkType(276 & 0xff)
	linkTypeRawAlt  = layers.LinkType(12) // DLT_RAW on some BSDs
	linkTypeRawAlt2 = layers.LinkType(14)
)

// Sources of a sensor attribution (audit.SensorInfo.Source).
const (
	SourceSNI      = "sni"
	SourceQUIC     = "quic"
	SourceHTTPHost = "http_host"
	SourceDNS      = "dns"       // a connection named by an earlier DNS answer
	SourceDNSQuery = "dns_query" // a lookup of an AI name (not a connection)
)

// QUICAssembler is what the sensor needs from classify's QUIC Initial
// assembler: it is fed client datagrams per flow and reports the
// ClientHello once the CRYPTO frames hold all of it.
type QUICAssembler interface {
	Add(flow string, datagram []byte) (classify.ClientHello, bool, error)
}

var _ QUICAssembler = (*classify.QUICAssembler)(nil)

// Options configures a Sensor. Lookup and Emit are required; zero bounds
// take the defaults above.
type Options struct {
	// Lookup maps a host name (lower case, no port, no trailing dot) to an
	// AI service: classify.DefaultCatalog().Lookup in production.
	Lookup func(host string) (classify.Service, bool)
	// Emit receives one sensor event per (client IP, service, source) on
	// Flush. It is called from the goroutine that calls Flush (or Live).
	Emit func(*audit.Event)
	// NewID returns a sortable event ID for a time (audit.NewID).
	NewID func(time.Time) string

	MaxFlows         int
	MaxStreamBytes   int
	MaxBufferedBytes int
	MaxNames         int
	MaxAggregates    int

	// ParseClientHello and QUIC default to classify.ParseClientHello and
	// classify.NewQUICAssembler(MaxFlows); tests may replace them.
	ParseClientHello func([]byte) (classify.ClientHello, error)
	QUIC             QUICAssembler

	// LiveFlush is how often Live emits the rows gathered so far.
	LiveFlush time.Duration

	Log logrus.FieldLogger
}

// Stats counts what the sensor saw. Counters only grow, except
// FlowsTracked which is the current size of the flow table.
type Stats struct {
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`     // on the wire (original lengths)
	Decoded   uint64 `json:"decoded"`   // packets that reached TCP or UDP
	Truncated uint64 `json:"truncated"` // packets cut by the snap length or short headers, files cut short
	Malformed uint64 `json:"malformed"` // packets a layer refused to decode
	NonIP     uint64 `json:"non_ip"`    // ARP, LLDP, unknown link types, ...
	Other     uint64 `json:"other"`     // IP but not TCP/UDP (ICMP, fragments, IPv6 extension chains)
	VLAN      uint64 `json:"vlan"`      // packets with at least one 802.1Q/802.1ad tag
	IPv6      uint64 `json:"ipv6"`

	FlowsTracked uint64 `json:"flows_tracked"`
	FlowsTotal   uint64 `json:"flows_total"`
	FlowsEvicted uint64 `json:"flows_evicted"`

	SNIFound      uint64 `json:"sni_found"`
	QUICFound     uint64 `json:"quic_found"`
	HTTPHosts     uint64 `json:"http_hosts"`
	DNSAnswers    uint64 `json:"dns_answers"`
	DNSQueries    uint64 `json:"dns_queries"`
	DNSAttributed uint64 `json:"dns_attributed"` // flows named through the IP -> name map

	Retransmits      uint64 `json:"retransmits"`
	OutOfOrder       uint64 `json:"out_of_order"`
	SegmentsDropped  uint64 `json:"segments_dropped"`  // out-of-order segments beyond the per-flow bounds
	InspectAbandoned uint64 `json:"inspect_abandoned"` // flows whose hello outgrew MaxStreamBytes or the global budget
	AggregatesFull   uint64 `json:"aggregates_full"`   // attributions lost because MaxAggregates was reached

	Events uint64 `json:"events"`

	FirstPacket time.Time `json:"first_packet"`
	LastPacket  time.Time `json:"last_packet"`
}

// Sensor turns packets into sensor events. It is not safe for concurrent
// use: one goroutine feeds packets, reads Stats and calls Flush.
type Sensor struct {
	opts  Options
	log   logrus.FieldLogger
	parse func([]byte) (classify.ClientHello, error)
	quic  QUICAssembler

	// decoding layers, shared by the per-link-type parsers
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	sll     layers.LinuxSLL
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	udp     layers.UDP
	dns     layers.DNS
	pEth    *gopacket.DecodingLayerParser
	pSLL    *gopacket.DecodingLayerParser
	pIP4    *gopacket.DecodingLayerParser
	pIP6    *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType

	flows    *simplelru.LRU[flowKey, *flow]
	names    *simplelru.LRU[netip.Addr, string]
	aggs     map[aggKey]*aggregate
	gen      uint32
	buffered int
	removing bool

	stats Stats
}

// New returns a sensor. Options.Lookup and Options.Emit must be set.
func New(opts Options) *Sensor {
	if opts.MaxFlows <= 0 {
		opts.MaxFlows = DefaultMaxFlows
	}
	if opts.MaxStreamBytes <= 0 {
		opts.MaxStreamBytes = DefaultMaxStreamBytes
	}
	if opts.MaxBufferedBytes <= 0 {
		opts.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if opts.MaxNames <= 0 {
		opts.MaxNames = DefaultMaxNames
	}
	if opts.MaxAggregates <= 0 {
		opts.MaxAggregates = DefaultMaxAggregates
	}
	if opts.LiveFlush <= 0 {
		opts.LiveFlush = DefaultLiveFlush
	}
	if opts.NewID == nil {
		opts.NewID = audit.NewID
	}
	if opts.Lookup == nil {
		opts.Lookup = func(string) (classify.Service, bool) { return classify.Service{}, false }
	}
	if opts.Emit == nil {
		opts.Emit = func(*audit.Event) {}
	}
	s := &Sensor{opts: opts, log: opts.Log, parse: opts.ParseClientHello, quic: opts.QUIC}
	if s.log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		s.log = l
	}
	if s.parse == nil {
		s.parse = classify.ParseClientHello
	}
	if s.quic == nil {
		s.quic = classify.NewQUICAssembler(opts.MaxFlows)
	}
	dl := []gopacket.DecodingLayer{&s.eth, &s.dot1q, &s.sll, &s.ip4, &s.ip6, &s.tcp, &s.udp}
	mk := func(first gopacket.LayerType) *gopacket.DecodingLayerParser {
		p := gopacket.NewDecodingLayerParser(first, dl...)
		p.IgnoreUnsupported = true
		return p
	}
	s.pEth = mk(layers.LayerTypeEthernet)
	s.pSLL = mk(layers.LayerTypeLinuxSLL)
	s.pIP4 = mk(layers.LayerTypeIPv4)
	s.pIP6 = mk(layers.LayerTypeIPv6)
	s.decoded = make([]gopacket.LayerType, 0, 8)
	s.flows, _ = simplelru.NewLRU[flowKey, *flow](opts.MaxFlows, s.onEvict)
	s.names, _ = simplelru.NewLRU[netip.Addr, string](opts.MaxNames, nil)
	s.aggs = make(map[aggKey]*aggregate)
	return s
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Stats returns the counters so far.
func (s *Sensor) Stats() Stats {
	st := s.stats
	st.FlowsTracked = uint64(s.flows.Len())
	return st
}

// HandlePacket decodes one captured frame of the given link type. It never
// fails: what it cannot decode is counted. data is not retained.
func (s *Sensor) HandlePacket(data []byte, ci gopacket.CaptureInfo, linkType layers.LinkType) {
	defer func() {
		if r := recover(); r != nil {
			s.stats.Malformed++
		}
	}()
	s.stats.Packets++
	wire := ci.Length
	if wire < len(data) {
		wire = len(data)
	}
	s.stats.Bytes += uint64(wire)
	ts := ci.Timestamp
	if s.stats.FirstPacket.IsZero() || ts.Before(s.stats.FirstPacket) {
		s.stats.FirstPacket = ts
	}
	if ts.After(s.stats.LastPacket) {
		s.stats.LastPacket = ts
	}
	truncated := ci.Length > 0 && ci.CaptureLength > 0 && ci.CaptureLength < ci.Length
	if len(ci.AncillaryData) > 0 {
		// pcapgo's live handle reports a VLAN tag stripped by the kernel.
		if _, ok := ci.AncillaryData[0].(int); ok {
			s.stats.VLAN++
		}
	}

	var p *gopacket.DecodingLayerParser
	switch linkType {
	case layers.LinkTypeEthernet:
		p = s.pEth
	case layers.LinkTypeLinuxSLL:
		p = s.pSLL
	case linkTypeSLL2:
		// 20-byte header, protocol type first; then the network layer.
		if len(data) < 20 {
			s.stats.Truncated++
			return
		}
		proto := uint16(data[0])<<8 | uint16(data[1])
		data = data[20:]
		switch proto {
		case 0x0800:
			p = s.pIP4
		case 0x86dd:
			p = s.pIP6
		default:
			s.stats.NonIP++
			return
		}
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, linkTypeRawAlt, linkTypeRawAlt2:
		p = s.byVersion(data)
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		if len(data) < 4 {
			s.stats.Truncated++
			return
		}
		data = data[4:]
		p = s.byVersion(data)
	default:
		s.stats.NonIP++
		return
	}
	if p == nil {
		if len(data) == 0 {
			s.stats.Truncated++
		} else {
			s.stats.NonIP++
		}
		return
	}

	s.decoded = s.decoded[:0]
	err := p.DecodeLayers(data, &s.decoded)
	if p.Truncated {
		truncated = true
	}
	var hasIP4, hasIP6, hasTCP, hasUDP, vlan bool
	for _, t := range s.decoded {
		switch t {
		case layers.LayerTypeIPv4:
			hasIP4 = true
		case layers.LayerTypeIPv6:
			hasIP6 = true
		case layers.LayerTypeTCP:
			hasTCP = true
		case layers.LayerTypeUDP:
			hasUDP = true
		case layers.LayerTypeDot1Q:
			vlan = true
		}
	}
	if vlan {
		s.stats.VLAN++
	}
	if hasIP6 {
		s.stats.IPv6++
	}
	if truncated {
		s.stats.Truncated++
	}
	if err != nil {
		if !truncated {
			s.stats.Malformed++
		}
		return
	}
	var src, dst netip.Addr
	var ipBytes int
	switch {
	case hasIP4:
		src, _ = netip.AddrFromSlice(s.ip4.SrcIP)
		dst, _ = netip.AddrFromSlice(s.ip4.DstIP)
		ipBytes = int(s.ip4.Length)
	case hasIP6:
		src, _ = netip.AddrFromSlice(s.ip6.SrcIP)
		dst, _ = netip.AddrFromSlice(s.ip6.DstIP)
		ipBytes = int(s.ip6.Length) + 40
	default:
		s.stats.NonIP++
		return
	}
	src, dst = src.Unmap(), dst.Unmap()
	switch {
	case hasTCP:
		s.stats.Decoded++
		s.handleTCP(src, dst, ipBytes, ts)
	case hasUDP:
		s.stats.Decoded++
		s.handleUDP(src, dst, ipBytes, ts)
	default:
		s.stats.Other++
	}
}

func (s *Sensor) byVersion(data []byte) *gopacket.DecodingLayerParser {
	if len(data) == 0 {
		return nil
	}
	switch data[0] >> 4 {
	case 4:
		return s.pIP4
	case 6:
		return s.pIP6
	}
	return nil
}

// normHost lower-cases a host name and strips a trailing dot.
func normHost(h string) string {
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
