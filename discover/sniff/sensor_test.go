package sniff

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
)

const cISN, sISN = 1000, 5000

// tlsFlow is a TCP connection from c:cp to s:sp whose client sends
// payload split at the given offsets, in the given segment order.
func tlsFlow(c, s string, cp, sp uint16, payload []byte, cuts []int, order []int, mod func(*pk)) []pk {
	at := time.Duration(0)
	next := func() time.Duration { at += time.Millisecond; return at }
	ps := []pk{
		{src: c, dst: s, sp: cp, dp: sp, seq: cISN, flags: "S", at: next()},
		{src: s, dst: c, sp: sp, dp: cp, seq: sISN, ack: cISN + 1, flags: "SA", at: next()},
		{src: c, dst: s, sp: cp, dp: sp, seq: cISN + 1, ack: sISN + 1, flags: "A", at: next()},
	}
	bounds := append(append([]int{0}, cuts...), len(payload))
	var segs []pk
	for i := 0; i+1 < len(bounds); i++ {
		segs = append(segs, pk{src: c, dst: s, sp: cp, dp: sp, seq: cISN + 1 + uint32(bounds[i]), ack: sISN + 1, flags: "PA", payload: payload[bounds[i]:bounds[i+1]]})
	}
	if order == nil {
		for i := range segs {
			order = append(order, i)
		}
	}
	for _, i := range order {
		p := segs[i]
		p.at = next()
		ps = append(ps, p)
	}
	ps = append(ps, pk{src: s, dst: c, sp: sp, dp: cp, seq: sISN + 1, ack: cISN + 1 + uint32(len(payload)), flags: "PA", payload: make([]byte, 100), at: next()})
	if mod != nil {
		for i := range ps {
			mod(&ps[i])
		}
	}
	return ps
}

func TestSensor(t *testing.T) {
	hello := clientHello(t, "api.openai.com", "h2", "http/1.1")
	helloA := clientHello(t, "api.anthropic.com")
	helloBank := clientHello(t, "bank.example")
	if len(hello) < 300 {
		t.Fatalf("client hello only %d bytes", len(hello))
	}
	third := len(hello) / 3
	httpReq := []byte("GET /v1/models HTTP/1.1\r\nUser-Agent: curl/8\r\nHOST: API.OpenAI.com:80\r\nAccept: */*\r\n\r\n")
	vlan := func(ids ...uint16) func(*pk) { return func(p *pk) { p.vlans = ids } }
	link := func(l layers.LinkType) func(*pk) { return func(p *pk) { p.link = l } }

	cases := []struct {
		name    string
		packets []pk
		want    []row
		check   func(t *testing.T, st Stats)
	}{
		{
			name:    "ok/ipv4-sni",
			packets: tlsFlow("10.0.0.2", "192.0.2.10", 40000, 443, hello, nil, nil, nil),
			want:    []row{{"10.0.0.2", "OpenAI API", SourceSNI, 1, 5}},
			check: func(t *testing.T, st Stats) {
				if st.SNIFound != 1 || st.Decoded != 5 || st.Malformed != 0 {
					t.Errorf("stats %+v", st)
				}
			},
		},
		{
			name:    "ok/ipv6-sni",
			packets: tlsFlow("2001:db8::2", "2001:db8::10", 40000, 443, helloA, nil, nil, nil),
			want:    []row{{"2001:db8::2", "Anthropic API", SourceSNI, 1, 5}},
			check: func(t *testing.T, st Stats) {
				if st.IPv6 != 5 {
					t.Errorf("ipv6 = %d", st.IPv6)
				}
			},
		},
		{
			name:    "ok/vlan",
			packets: tlsFlow("10.0.0.3", "192.0.2.10", 40001, 443, hello, nil, nil, vlan(42)),
			want:    []row{{"10.0.0.3", "OpenAI API", SourceSNI, 1, 5}},
			check: func(t *testing.T, st Stats) {
				if st.VLAN != 5 {
					t.Errorf("vlan = %d", st.VLAN)
				}
			},
		},
		{
			name:    "ok/qinq",
			packets: tlsFlow("10.0.0.3", "192.0.2.10", 40001, 443, hello, nil, nil, vlan(100, 42)),
			want:    []row{{"10.0.0.3", "OpenAI API", SourceSNI, 1, 5}},
		},
		{
			name:    "ok/linux-sll",
			packets: tlsFlow("10.0.0.4", "192.0.2.10", 40002, 443, hello, []int{third}, nil, link(layers.LinkTypeLinuxSLL)),
			want:    []row{{"10.0.0.4", "OpenAI API", SourceSNI, 1, 6}},
		},
		{
			name:    "ok/linux-sll2-ipv6",
			packets: tlsFlow("2001:db8::4", "2001:db8::10", 40002, 443, hello, nil, nil, link(linkTypeSLL2)),
			want:    []row{{"2001:db8::4", "OpenAI API", SourceSNI, 1, 5}},
		},
		{
			name:    "ok/raw-ip",
			packets: tlsFlow("10.0.0.5", "192.0.2.10", 40003, 443, hello, nil, nil, link(layers.LinkTypeRaw)),
			want:    []row{{"10.0.0.5", "OpenAI API", SourceSNI, 1, 5}},
		},
		{
			name:    "ok/bsd-null",
			packets: tlsFlow("10.0.0.5", "192.0.2.10", 40003, 443, hello, nil, nil, link(layers.LinkTypeNull)),
			want:    []row{{"10.0.0.5", "OpenAI API", SourceSNI, 1, 5}},
		},
		{
			name:    "ok/three-segments-out-of-order",
			packets: tlsFlow("10.0.0.6", "192.0.2.10", 40004, 443, hello, []int{third, 2 * third}, []int{2, 0, 1}, nil),
			want:    []row{{"10.0.0.6", "OpenAI API", SourceSNI, 1, 7}},
			check: func(t *testing.T, st Stats) {
				if st.OutOfOrder != 1 || st.SNIFound != 1 {
					t.Errorf("stats %+v", st)
				}
			},
		},
		{
			name:    "ok/three-segments-reversed",
			packets: tlsFlow("10.0.0.6", "192.0.2.10", 40004, 443, hello, []int{third, 2 * third}, []int{2, 1, 0}, nil),
			want:    []row{{"10.0.0.6", "OpenAI API", SourceSNI, 1, 7}},
		},
		{
			name: "ok/retransmissions",
			// segment 0, 0 again, 1, an overlapping resend of 0+1, 2
			packets: func() []pk {
				ps := tlsFlow("10.0.0.7", "192.0.2.10", 40005, 443, hello, []int{third, 2 * third}, []int{0, 0, 1, 2}, nil)
				return ps
			}(),
			want: []row{{"10.0.0.7", "OpenAI API", SourceSNI, 1, 8}},
			check: func(t *testing.T, st Stats) {
				if st.Retransmits != 1 {
					t.Errorf("retransmits = %d", st.Retransmits)
				}
			},
		},
		{
			name: "ok/no-syn-midstream",
			packets: func() []pk {
				return tlsFlow("10.0.0.8", "192.0.2.10", 40006, 443, hello, []int{third}, nil, nil)[3:]
			}(),
			want: []row{{"10.0.0.8", "OpenAI API", SourceSNI, 1, 3}},
		},
		{
			name:    "ok/not-ai",
			packets: tlsFlow("10.0.0.9", "192.0.2.20", 40007, 443, helloBank, nil, nil, nil),
			want:    nil,
			check: func(t *testing.T, st Stats) {
				if st.SNIFound != 1 {
					t.Errorf("sni = %d", st.SNIFound)
				}
			},
		},
		{
			name:    "ok/http-host",
			packets: tlsFlow("10.0.0.10", "192.0.2.10", 40008, 80, httpReq, []int{30}, nil, nil),
			want:    []row{{"10.0.0.10", "OpenAI API", SourceHTTPHost, 1, 6}},
		},
		{
			name: "ok/dns-answer-then-flow-without-sni",
			packets: append([]pk{
				{src: "10.0.0.11", dst: "10.0.0.53", udp: true, sp: 33333, dp: 53, payload: dnsMsg(t, "api.anthropic.com")},
				{src: "10.0.0.53", dst: "10.0.0.11", udp: true, sp: 53, dp: 33333, payload: dnsMsg(t, "api.anthropic.com", "198.51.100.7")},
			}, tlsFlow("10.0.0.11", "198.51.100.7", 40009, 443, []byte{0x17, 3, 3, 0, 1, 0}, nil, nil, nil)...),
			// the lookup (2 packets) and the connection it led to (5 packets)
			// are separate rows: a lookup is not a connection.
			want: []row{{"10.0.0.11", "Anthropic API", SourceDNS, 1, 5}, {"10.0.0.11", "Anthropic API", SourceDNSQuery, 0, 2}},
			check: func(t *testing.T, st Stats) {
				if st.DNSAnswers != 1 || st.DNSQueries != 1 || st.DNSAttributed != 1 {
					t.Errorf("stats %+v", st)
				}
			},
		},
		{
			name: "ok/dns-flow-without-payload",
			packets: append([]pk{
				{src: "10.0.0.53", dst: "10.0.0.12", udp: true, sp: 53, dp: 33334, payload: dnsMsg(t, "bank.example", "198.51.100.8")},
				{src: "10.0.0.53", dst: "10.0.0.12", udp: true, sp: 53, dp: 33335, payload: dnsMsg(t, "api.openai.com", "198.51.100.9")},
			}, tlsFlow("10.0.0.12", "198.51.100.9", 40010, 443, nil, nil, nil, nil)[:3]...),
			want: []row{{"10.0.0.12", "OpenAI API", SourceDNS, 1, 3}, {"10.0.0.12", "OpenAI API", SourceDNSQuery, 0, 1}},
		},
		{
			name: "ok/truncated-and-garbage",
			packets: append(tlsFlow("10.0.0.13", "192.0.2.10", 40011, 443, hello, nil, nil, nil),
				pk{src: "10.0.0.13", dst: "192.0.2.10", sp: 40099, dp: 443, flags: "S", capLen: 20},
				pk{src: "10.0.0.13", dst: "192.0.2.10", sp: 40098, dp: 443, flags: "PA", payload: hello, capLen: 80},
			),
			want: []row{{"10.0.0.13", "OpenAI API", SourceSNI, 1, 5}},
			check: func(t *testing.T, st Stats) {
				if st.Truncated != 2 || st.Packets != 7 {
					t.Errorf("stats %+v", st)
				}
			},
		},
		{
			name: "ok/two-flows-two-clients",
			packets: append(tlsFlow("10.0.0.14", "192.0.2.10", 40012, 443, hello, nil, nil, nil),
				append(tlsFlow("10.0.0.14", "192.0.2.10", 40013, 443, hello, nil, nil, nil),
					tlsFlow("10.0.0.15", "192.0.2.11", 40012, 443, helloA, nil, nil, nil)...)...),
			want: []row{
				{"10.0.0.14", "OpenAI API", SourceSNI, 2, 10},
				{"10.0.0.15", "Anthropic API", SourceSNI, 1, 5},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c collector
			s := newTestSensor(&c, nil)
			for _, p := range tc.packets {
				data, ci, lt := frame(t, p)
				s.HandlePacket(data, ci, lt)
			}
			s.Flush()
			if got := rows(c.events); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("rows\n got %+v\nwant %+v", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, s.Stats())
			}
		})
	}
}

func TestSensorEventFields(t *testing.T) {
	var c collector
	s := newTestSensor(&c, nil)
	hello := clientHello(t, "api.openai.com")
	var ipBytes int64
	for _, p := range tlsFlow("10.0.0.2", "192.0.2.10", 40000, 443, hello, nil, nil, nil) {
		data, ci, lt := frame(t, p)
		ipBytes += int64(40 + len(p.payload))
		s.HandlePacket(data, ci, lt)
	}
	s.Flush()
	if len(c.events) != 1 {
		t.Fatalf("events = %d", len(c.events))
	}
	e := c.events[0]
	if e.Kind != "sensor" || e.ID == "" || e.Provider != "openai" || e.Category != "api" {
		t.Errorf("event %+v", e)
	}
	if e.Dest.Host != "api.openai.com" || e.Dest.SNI != "api.openai.com" || e.Dest.IP != "192.0.2.10" || e.Dest.Port != 443 {
		t.Errorf("dest %+v", e.Dest)
	}
	si := e.Sensor
	if si.Bytes != ipBytes || si.Packets != 5 || !si.FirstSeen.Equal(t0.Add(time.Millisecond)) || !si.LastSeen.Equal(t0.Add(5*time.Millisecond)) {
		t.Errorf("sensor %+v (want bytes %d)", si, ipBytes)
	}
	if !e.Time.Equal(si.FirstSeen) {
		t.Errorf("time %v", e.Time)
	}
	// Flush twice emits nothing new.
	s.Flush()
	if len(c.events) != 1 {
		t.Errorf("second flush emitted %d", len(c.events)-1)
	}
}

func TestSensorFlowEviction(t *testing.T) {
	var c collector
	s := newTestSensor(&c, func(o *Options) { o.MaxFlows = 4 })
	hello := clientHello(t, "api.openai.com")
	for i := 0; i < 10; i++ {
		for _, p := range tlsFlow("10.0.0.2", "192.0.2.10", uint16(41000+i), 443, hello, nil, nil, nil) {
			data, ci, lt := frame(t, p)
			s.HandlePacket(data, ci, lt)
		}
	}
	st := s.Stats()
	if st.FlowsEvicted != 6 || st.FlowsTracked != 4 || st.FlowsTotal != 10 {
		t.Errorf("stats %+v", st)
	}
	s.Flush()
	if got, want := rows(c.events), []row{{"10.0.0.2", "OpenAI API", SourceSNI, 10, 50}}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows %+v, want %+v", got, want)
	}
}

func TestSensorStreamCap(t *testing.T) {
	var c collector
	s := newTestSensor(&c, func(o *Options) { o.MaxStreamBytes = 256 })
	hello := clientHello(t, "api.openai.com")
	for _, p := range tlsFlow("10.0.0.2", "192.0.2.10", 40000, 443, hello, []int{200, 400}, nil, nil) {
		data, ci, lt := frame(t, p)
		s.HandlePacket(data, ci, lt)
	}
	s.Flush()
	if st := s.Stats(); st.InspectAbandoned != 1 || len(c.events) != 0 || s.buffered != 0 {
		t.Errorf("stats %+v events %d buffered %d", st, len(c.events), s.buffered)
	}
}

func TestParseHTTPHost(t *testing.T) {
	cases := []struct {
		name, in, host string
		res            int
	}{
		{"ok/simple", "GET / HTTP/1.1\r\nHost: api.openai.com\r\n\r\n", "api.openai.com", httpFound},
		{"ok/port", "POST /v1 HTTP/1.1\r\nhost:api.openai.com:8080\r\n\r\n", "api.openai.com", httpFound},
		{"ok/ipv6", "GET / HTTP/1.0\nHost: [::1]:80\n\n", "::1", httpFound},
		{"ok/need-more-line", "GET / HT", "", httpNeedMore},
		{"ok/need-more-header", "GET / HTTP/1.1\r\nAccept: x\r\nHo", "", httpNeedMore},
		{"fail/no-host", "GET / HTTP/1.1\r\nAccept: x\r\n\r\n", "", httpNone},
		{"fail/h2-preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "", httpNone},
		{"fail/not-method", "get / HTTP/1.1\r\n", "", httpNone},
		{"fail/long-token", "ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n", "", httpNone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, r := parseHTTPHost([]byte(tc.in))
			if h != tc.host || r != tc.res {
				t.Errorf("got %q %d, want %q %d", h, r, tc.host, tc.res)
			}
		})
	}
}
