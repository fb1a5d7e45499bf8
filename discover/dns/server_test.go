package dns

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/sirupsen/logrus"

	"github.com/aigress/aigress/audit"
)

// fakeUpstream is a miekg server on 127.0.0.1:0 (UDP and TCP) with a fixed
// zone, counting the queries it gets.
type fakeUpstream struct {
	addr    string
	queries atomic.Int64
	mu      sync.Mutex
	perName map[string]int
}

var echBlob = []byte{0x00, 0x08, 0xfe, 0x0d, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04}

func mustRR(t testing.TB, s string) mdns.RR {
	t.Helper()
	rr, err := mdns.NewRR(s)
	if err != nil {
		t.Fatalf("rr %q: %v", s, err)
	}
	return rr
}

func (f *fakeUpstream) serve(t testing.TB) mdns.HandlerFunc {
	zone := map[string][]mdns.RR{}
	add := func(s string) {
		rr := mustRR(t, s)
		k := mdns.CanonicalName(rr.Header().Name) + "/" + mdns.TypeToString[rr.Header().Rrtype]
		zone[k] = append(zone[k], rr)
	}
	for _, n := range []string{"ai.example.", "steer.example.", "blocked.example."} {
		add(n + " 300 IN A 192.0.2.10")
		add(n + " 300 IN AAAA 2001:db8::10")
		https := &mdns.HTTPS{SVCB: mdns.SVCB{
			Hdr:      mdns.RR_Header{Name: n, Rrtype: mdns.TypeHTTPS, Class: mdns.ClassINET, Ttl: 300},
			Priority: 1, Target: ".",
			Value: []mdns.SVCBKeyValue{
				&mdns.SVCBAlpn{Alpn: []string{"h2"}},
				&mdns.SVCBIPv4Hint{Hint: []net.IP{net.ParseIP("192.0.2.10").To4()}},
				&mdns.SVCBECHConfig{ECH: echBlob},
			},
		}}
		zone[n+"/HTTPS"] = append(zone[n+"/HTTPS"], https)
	}
	add("plain.example. 60 IN A 192.0.2.20")
	for i := 1; i <= 60; i++ {
		add("big.example. 120 IN A 198.51.100." + strconv.Itoa(i))
	}
	soa := mustRR(t, "example. 3600 IN SOA ns.example. host.example. 1 7200 900 1209600 60")
	return func(w mdns.ResponseWriter, r *mdns.Msg) {
		f.queries.Add(1)
		q := r.Question[0]
		f.mu.Lock()
		f.perName[mdns.CanonicalName(q.Name)]++
		f.mu.Unlock()
		m := new(mdns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		rrs, ok := zone[mdns.CanonicalName(q.Name)+"/"+mdns.TypeToString[q.Qtype]]
		switch {
		case ok:
			m.Answer = rrs
		case mdns.CanonicalName(q.Name) == "nx.example.":
			m.Rcode = mdns.RcodeNameError
			m.Ns = []mdns.RR{soa}
		default:
			m.Ns = []mdns.RR{soa}
		}
		size := mdns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			m.SetEdns0(o.UDPSize(), o.Do())
			size = int(o.UDPSize())
		}
		if _, tcp := w.RemoteAddr().(*net.TCPAddr); !tcp {
			m.Truncate(size)
		}
		_ = w.WriteMsg(m)
	}
}

func startUpstream(t testing.TB) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{perName: map[string]int{}}
	pc, ln, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := f.serve(t)
	var wg sync.WaitGroup
	wg.Add(2)
	u := &mdns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: wg.Done}
	s := &mdns.Server{Listener: ln, Handler: h, NotifyStartedFunc: wg.Done}
	go func() { _ = u.ActivateAndServe() }()
	go func() { _ = s.ActivateAndServe() }()
	wg.Wait()
	t.Cleanup(func() { _ = u.Shutdown(); _ = s.Shutdown() })
	f.addr = pc.LocalAddr().String()
	return f
}

func (f *fakeUpstream) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.perName[name]
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type events struct {
	mu sync.Mutex
	ev []*audit.Event
}

func (e *events) emit(ev *audit.Event) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }
func (e *events) all() []*audit.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*audit.Event(nil), e.ev...)
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func testLookup(name string) (string, string, bool) {
	switch name {
	case "ai.example", "steer.example", "blocked.example":
		return "svc-" + name[:2], "prov", true
	}
	return "", "", false
}

func testPolicy(name, _ string, _ netip.Addr) Action {
	switch name {
	case "steer.example":
		return ActionSteer
	case "blocked.example":
		return ActionRefuse
	}
	return ActionForward
}

type rig struct {
	srv   *Server
	addr  string
	up    *fakeUpstream
	clock *fakeClock
	ev    *events
}

func newRig(t testing.TB, mod func(*Config)) *rig {
	t.Helper()
	up := startUpstream(t)
	r := &rig{up: up, clock: &fakeClock{t: t0}, ev: &events{}}
	cfg := Config{
		Listen:    "127.0.0.1:0",
		Upstreams: []string{up.addr},
		Timeout:   500 * time.Millisecond,
		Lookup:    testLookup,
		Policy:    testPolicy,
		SteerV4:   netip.MustParseAddr("10.9.9.9"),
		SteerV6:   netip.MustParseAddr("fd00::9"),
		StripECH:  true,
		Emit:      r.ev.emit,
		NewID:     func(time.Time) string { return "ID1" },
		Clock:     r.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	srv, err := NewServer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		sctx, c2 := context.WithTimeout(context.Background(), 3*time.Second)
		defer c2()
		_ = srv.Shutdown(sctx)
	})
	r.srv = srv
	r.addr = srv.Addr().String()
	return r
}

func (r *rig) query(t testing.TB, network, name string, qtype uint16, edns bool) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	c := &mdns.Client{Net: network, Timeout: 3 * time.Second}
	resp, _, err := c.Exchange(m, r.addr)
	if err != nil && !(resp != nil && resp.Truncated) {
		t.Fatalf("query %s %s over %s: %v", name, mdns.TypeToString[qtype], network, err)
	}
	return resp
}

func TestResolver(t *testing.T) {
	r := newRig(t, nil)
	cases := []struct {
		name    string
		qname   string
		qtype   uint16
		network string
		rcode   int
		answers []string
	}{
		{"ok/forward-A", "plain.example.", mdns.TypeA, "udp", mdns.RcodeSuccess, []string{"192.0.2.20"}},
		{"ok/forward-AI-A", "ai.example.", mdns.TypeA, "udp", mdns.RcodeSuccess, []string{"192.0.2.10"}},
		{"ok/forward-AI-AAAA-tcp", "ai.example.", mdns.TypeAAAA, "tcp", mdns.RcodeSuccess, []string{"2001:db8::10"}},
		{"ok/mixed-case", "PlAiN.ExAmPlE.", mdns.TypeA, "udp", mdns.RcodeSuccess, []string{"192.0.2.20"}},
		{"ok/nxdomain", "nx.example.", mdns.TypeA, "udp", mdns.RcodeNameError, nil},
		{"ok/nodata", "plain.example.", mdns.TypeTXT, "udp", mdns.RcodeSuccess, nil},
		{"ok/steer-A", "steer.example.", mdns.TypeA, "udp", mdns.RcodeSuccess, []string{"10.9.9.9"}},
		{"ok/steer-AAAA", "steer.example.", mdns.TypeAAAA, "tcp", mdns.RcodeSuccess, []string{"fd00::9"}},
		{"ok/refuse-nxdomain", "blocked.example.", mdns.TypeA, "udp", mdns.RcodeNameError, nil},
		{"ok/canary", "use-application-dns.net.", mdns.TypeA, "udp", mdns.RcodeNameError, nil},
		{"ok/canary-upper", "USE-application-dns.NET.", mdns.TypeAAAA, "tcp", mdns.RcodeNameError, nil},
		{"fail/axfr-refused", "ai.example.", mdns.TypeAXFR, "tcp", mdns.RcodeRefused, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := r.query(t, tc.network, tc.qname, tc.qtype, true)
			if resp.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tc.rcode])
			}
			if got := answerStrings(resp.Answer); !reflect.DeepEqual(got, tc.answers) {
				t.Fatalf("answers %q, want %q", got, tc.answers)
			}
			if resp.Question[0].Name != tc.qname {
				t.Fatalf("question %q, want the client's spelling %q", resp.Question[0].Name, tc.qname)
			}
		})
	}
	if n := r.up.count("steer.example."); n != 0 {
		t.Errorf("steered A/AAAA went upstream %d times", n)
	}
	if n := r.up.count("blocked.example."); n != 0 {
		t.Errorf("refused name went upstream %d times", n)
	}
	if n := r.up.count("use-application-dns.net."); n != 0 {
		t.Errorf("canary went upstream %d times", n)
	}
}

func TestCacheAndTTL(t *testing.T) {
	r := newRig(t, nil)
	first := r.query(t, "udp", "plain.example.", mdns.TypeA, true)
	if got := first.Answer[0].Header().Ttl; got != 60 {
		t.Fatalf("first TTL %d, want 60", got)
	}
	r.clock.Add(25 * time.Second)
	second := r.query(t, "udp", "PLAIN.example.", mdns.TypeA, true)
	if n := r.up.count("plain.example."); n != 1 {
		t.Fatalf("upstream saw %d queries, want 1 (second from cache)", n)
	}
	if got := second.Answer[0].Header().Ttl; got != 35 {
		t.Fatalf("cached TTL %d, want 35", got)
	}
	// The DO bit is part of the key.
	m := new(mdns.Msg)
	m.SetQuestion("plain.example.", mdns.TypeA)
	m.SetEdns0(1232, true)
	if _, _, err := (&mdns.Client{Timeout: 3 * time.Second}).Exchange(m, r.addr); err != nil {
		t.Fatal(err)
	}
	if n := r.up.count("plain.example."); n != 2 {
		t.Fatalf("upstream saw %d queries, want 2 (DO bit keys apart)", n)
	}
	// Expiry.
	r.clock.Add(36 * time.Second)
	third := r.query(t, "udp", "plain.example.", mdns.TypeA, true)
	if n := r.up.count("plain.example."); n != 3 {
		t.Fatalf("upstream saw %d queries, want 3 after expiry", n)
	}
	if got := third.Answer[0].Header().Ttl; got != 60 {
		t.Fatalf("refreshed TTL %d, want 60", got)
	}
	// Negative caching per SOA minimum (60 s).
	r.query(t, "udp", "nx.example.", mdns.TypeA, true)
	r.clock.Add(59 * time.Second)
	r.query(t, "udp", "nx.example.", mdns.TypeA, true)
	if n := r.up.count("nx.example."); n != 1 {
		t.Fatalf("negative answer not cached: %d upstream queries", n)
	}
	r.clock.Add(2 * time.Second)
	r.query(t, "udp", "nx.example.", mdns.TypeA, true)
	if n := r.up.count("nx.example."); n != 2 {
		t.Fatalf("negative answer cached past SOA minimum: %d upstream queries", n)
	}
	st := r.srv.Stats()
	if st.CacheHits != 2 || st.CacheMisses != 5 {
		t.Fatalf("stats hits=%d misses=%d, want 2/5", st.CacheHits, st.CacheMisses)
	}
}

func TestCacheTTLCap(t *testing.T) {
	cases := []struct {
		name string
		msg  string
		want time.Duration
		ok   bool
	}{
		{"ok/min-of-rrs", "a. 300 IN A 192.0.2.1|a. 30 IN A 192.0.2.2", 30 * time.Second, true},
		{"ok/capped", "a. 999999 IN A 192.0.2.1", time.Hour, true},
		{"ok/negative-soa-min", "-a. 600 IN SOA ns. h. 1 2 3 4 120", 120 * time.Second, true},
		{"ok/negative-soa-ttl", "-a. 20 IN SOA ns. h. 1 2 3 4 120", 20 * time.Second, true},
		{"ok/negative-capped", "-a. 9999 IN SOA ns. h. 1 2 3 4 9999", 5 * time.Minute, true},
		{"fail/negative-no-soa", "", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := new(mdns.Msg)
			if tc.msg != "" {
				for _, s := range splitBar(tc.msg) {
					if s[0] == '-' {
						m.Ns = append(m.Ns, mustRR(t, s[1:]))
					} else {
						m.Answer = append(m.Answer, mustRR(t, s))
					}
				}
			}
			got, ok := cacheTTL(m, time.Hour, 5*time.Minute)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("got %v %v, want %v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func splitBar(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '|' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// deadUDP returns a loopback UDP address nothing listens on.
func deadUDP(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := pc.LocalAddr().String()
	pc.Close()
	return a
}

// silentUDP returns a loopback UDP address that never answers.
func silentUDP(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

func TestFallback(t *testing.T) {
	cases := []struct {
		name  string
		first func(*testing.T) string
	}{
		{"ok/closed-port", deadUDP},
		{"ok/timeout", silentUDP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			first := tc.first(t)
			r := newRig(t, func(c *Config) {
				c.Timeout = 300 * time.Millisecond
				c.Upstreams = []string{first, c.Upstreams[0]}
			})
			resp := r.query(t, "udp", "plain.example.", mdns.TypeA, true)
			if got := answerStrings(resp.Answer); !reflect.DeepEqual(got, []string{"192.0.2.20"}) {
				t.Fatalf("answers %q", got)
			}
			st := r.srv.Stats()
			if st.UpstreamErrors != 1 || st.Upstream != 2 {
				t.Fatalf("upstream tries %d errors %d, want 2/1", st.Upstream, st.UpstreamErrors)
			}
		})
	}
	t.Run("fail/all-dead", func(t *testing.T) {
		r := newRig(t, func(c *Config) {
			c.Timeout = 300 * time.Millisecond
			c.Upstreams = []string{deadUDP(t)}
		})
		resp := r.query(t, "udp", "plain.example.", mdns.TypeA, true)
		if resp.Rcode != mdns.RcodeServerFailure {
			t.Fatalf("rcode %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
		}
		if st := r.srv.Stats(); st.Servfail != 1 {
			t.Fatalf("servfail %d", st.Servfail)
		}
	})
}

func svcbParams(t *testing.T, resp *mdns.Msg) []string {
	t.Helper()
	if len(resp.Answer) != 1 {
		t.Fatalf("answers %v", resp.Answer)
	}
	h, ok := resp.Answer[0].(*mdns.HTTPS)
	if !ok {
		t.Fatalf("answer %T", resp.Answer[0])
	}
	var keys []string
	for _, kv := range h.Value {
		keys = append(keys, kv.Key().String())
	}
	return keys
}

func TestHTTPSRecords(t *testing.T) {
	cases := []struct {
		name     string
		qname    string
		stripECH bool
		want     []string
	}{
		{"ok/forwarded-ai-stripped", "ai.example.", true, []string{"alpn", "ipv4hint"}},
		{"ok/forwarded-ai-kept", "ai.example.", false, []string{"alpn", "ipv4hint", "ech"}},
		{"ok/steered-no-ech-no-hints", "steer.example.", true, []string{"alpn"}},
		{"ok/steered-hints-gone-ech-kept", "steer.example.", false, []string{"alpn", "ech"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(c *Config) { c.StripECH = tc.stripECH })
			for i := 0; i < 2; i++ { // upstream, then cache
				resp := r.query(t, "udp", tc.qname, mdns.TypeHTTPS, true)
				if got := svcbParams(t, resp); !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("try %d: params %q, want %q", i, got, tc.want)
				}
			}
			if n := r.up.count(tc.qname); n != 1 {
				t.Fatalf("upstream queries %d, want 1", n)
			}
		})
	}
}

func TestRefuseBlockAddress(t *testing.T) {
	r := newRig(t, func(c *Config) {
		c.BlockV4 = netip.MustParseAddr("10.1.1.1")
	})
	cases := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers []string
	}{
		{"ok/A-block-page", mdns.TypeA, mdns.RcodeSuccess, []string{"10.1.1.1"}},
		{"ok/AAAA-nodata", mdns.TypeAAAA, mdns.RcodeSuccess, nil},
		{"ok/HTTPS-nodata", mdns.TypeHTTPS, mdns.RcodeSuccess, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := r.query(t, "udp", "blocked.example.", tc.qtype, false)
			if resp.Rcode != tc.rcode {
				t.Fatalf("rcode %s", mdns.RcodeToString[resp.Rcode])
			}
			if got := answerStrings(resp.Answer); !reflect.DeepEqual(got, tc.answers) {
				t.Fatalf("answers %q, want %q", got, tc.answers)
			}
			if len(resp.Answer) > 0 && resp.Answer[0].Header().Ttl != 30 {
				t.Fatalf("block TTL %d, want 30", resp.Answer[0].Header().Ttl)
			}
		})
	}
	if n := r.up.count("blocked.example."); n != 0 {
		t.Fatalf("refused name went upstream %d times", n)
	}
}

func TestSteerOnlyV4(t *testing.T) {
	r := newRig(t, func(c *Config) { c.SteerV6 = netip.Addr{} })
	resp := r.query(t, "udp", "steer.example.", mdns.TypeAAAA, true)
	if resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 0 {
		t.Fatalf("AAAA without a v6 steer address: %s %v, want NODATA", mdns.RcodeToString[resp.Rcode], resp.Answer)
	}
	resp = r.query(t, "udp", "steer.example.", mdns.TypeA, true)
	if got := answerStrings(resp.Answer); !reflect.DeepEqual(got, []string{"10.9.9.9"}) || resp.Answer[0].Header().Ttl != 30 {
		t.Fatalf("A %v", resp.Answer)
	}
}

func TestClientAllowList(t *testing.T) {
	r := newRig(t, func(c *Config) {
		c.AllowClients = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	for _, network := range []string{"udp", "tcp"} {
		t.Run("fail/refused-"+network, func(t *testing.T) {
			resp := r.query(t, network, "plain.example.", mdns.TypeA, false)
			if resp.Rcode != mdns.RcodeRefused || len(resp.Answer) != 0 {
				t.Fatalf("rcode %s answers %v, want REFUSED", mdns.RcodeToString[resp.Rcode], resp.Answer)
			}
		})
	}
	if n := r.up.queries.Load(); n != 0 {
		t.Fatalf("upstream saw %d queries from a refused client", n)
	}
	if len(r.ev.all()) != 0 {
		t.Fatal("events for a refused client")
	}
}

func TestDefaultAllowClients(t *testing.T) {
	s := &Server{cfg: Config{AllowClients: DefaultAllowClients()}}
	cases := []struct {
		name string
		ip   string
		want bool
	}{
		{"ok/loopback", "127.0.0.1", true},
		{"ok/rfc1918", "192.168.1.5", true},
		{"ok/ula", "fd12::1", true},
		{"ok/v6-loopback", "::1", true},
		{"fail/public-v4", "8.8.8.8", false},
		{"fail/public-v6", "2001:4860::8888", false},
		{"fail/cgnat", "100.64.0.1", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.allowed(netip.MustParseAddr(tc.ip)); got != tc.want {
				t.Fatalf("allowed(%s) = %v", tc.ip, got)
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	r := newRig(t, nil)
	udp := r.query(t, "udp", "big.example.", mdns.TypeA, false)
	if !udp.Truncated {
		t.Fatalf("60 A records over UDP without EDNS: TC not set (%d answers)", len(udp.Answer))
	}
	if len(udp.Answer) >= 60 {
		t.Fatalf("%d answers in a 512-byte reply", len(udp.Answer))
	}
	tcp := r.query(t, "tcp", "big.example.", mdns.TypeA, false)
	if tcp.Truncated || len(tcp.Answer) != 60 {
		t.Fatalf("TCP: TC=%v answers=%d, want 60", tcp.Truncated, len(tcp.Answer))
	}
	edns := r.query(t, "udp", "big.example.", mdns.TypeA, true)
	if edns.Truncated || len(edns.Answer) != 60 {
		t.Fatalf("UDP with EDNS 1232: TC=%v answers=%d, want 60", edns.Truncated, len(edns.Answer))
	}
	if n := r.up.count("big.example."); n != 1 {
		t.Fatalf("upstream queries %d, want 1", n)
	}
}

func TestEvents(t *testing.T) {
	r := newRig(t, nil)
	r.query(t, "udp", "ai.example.", mdns.TypeA, true)
	r.query(t, "udp", "ai.example.", mdns.TypeA, true) // cached
	r.query(t, "tcp", "steer.example.", mdns.TypeA, true)
	r.query(t, "udp", "blocked.example.", mdns.TypeAAAA, true)
	r.query(t, "udp", "plain.example.", mdns.TypeA, true)           // not AI: no event
	r.query(t, "udp", "use-application-dns.net.", mdns.TypeA, true) // canary: no event
	ev := func(name, qtype, rcode, action, service string, answers ...string) *audit.Event {
		return &audit.Event{
			ID: "ID1", Time: t0, Kind: "dns",
			Client:   audit.Client{IP: "127.0.0.1"},
			Dest:     audit.Dest{Host: name},
			Provider: "prov", Service: service,
			DNS: &audit.DNSInfo{Name: name, QType: qtype, Answers: answers, Rcode: rcode, Action: action},
		}
	}
	want := []*audit.Event{
		ev("ai.example", "A", "NOERROR", "forward", "svc-ai", "192.0.2.10"),
		ev("ai.example", "A", "NOERROR", "cached", "svc-ai", "192.0.2.10"),
		ev("steer.example", "A", "NOERROR", "steer", "svc-st", "10.9.9.9"),
		ev("blocked.example", "AAAA", "NXDOMAIN", "refuse", "svc-bl"),
	}
	got := r.ev.all()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("event %d:\n got %+v %+v\nwant %+v %+v", i, got[i], got[i].DNS, want[i], want[i].DNS)
		}
	}
	if st := r.srv.Stats(); st.Events != 4 || st.Canary != 1 || st.Steered != 1 || st.Blocked != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok/minimal", Config{Listen: "127.0.0.1:0", Upstreams: []string{"127.0.0.1:53"}}, true},
		{"fail/no-listen", Config{Upstreams: []string{"127.0.0.1:53"}}, false},
		{"fail/no-upstream", Config{Listen: "127.0.0.1:0"}, false},
		{"fail/upstream-no-port", Config{Listen: "127.0.0.1:0", Upstreams: []string{"127.0.0.1"}}, false},
		{"fail/steer-v4-is-v6", Config{Listen: "127.0.0.1:0", Upstreams: []string{"127.0.0.1:53"}, SteerV4: netip.MustParseAddr("::1")}, false},
		{"fail/block-v6-is-v4", Config{Listen: "127.0.0.1:0", Upstreams: []string{"127.0.0.1:53"}, BlockV6: netip.MustParseAddr("10.0.0.1")}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewServer(tc.cfg, nil)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestULID(t *testing.T) {
	a := newULID(t0)
	b := newULID(t0.Add(time.Millisecond))
	if len(a) != 26 || len(b) != 26 || !(a < b) {
		t.Fatalf("ids %q %q: want 26 chars and time order", a, b)
	}
	if a[:10] != newULID(t0)[:10] {
		t.Fatalf("time prefix differs for the same millisecond")
	}
}

// FuzzRewriteSVCB feeds arbitrary DNS messages through the answer rewriting
// and rendering: it must not panic, and a message that unpacked must pack.
func FuzzRewriteSVCB(f *testing.F) {
	m := new(mdns.Msg)
	m.SetQuestion("ai.example.", mdns.TypeHTTPS)
	m.Answer = []mdns.RR{&mdns.HTTPS{SVCB: mdns.SVCB{
		Hdr:      mdns.RR_Header{Name: "ai.example.", Rrtype: mdns.TypeHTTPS, Class: mdns.ClassINET, Ttl: 300},
		Priority: 1, Target: ".",
		Value: []mdns.SVCBKeyValue{
			&mdns.SVCBAlpn{Alpn: []string{"h2", "h3"}},
			&mdns.SVCBECHConfig{ECH: echBlob},
			&mdns.SVCBIPv6Hint{Hint: []net.IP{net.ParseIP("2001:db8::1")}},
		},
	}}}
	seed, err := m.Pack()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	m.Answer = []mdns.RR{mustRR(f, "a.example. 60 IN CNAME b.example."), mustRR(f, "b.example. 60 IN A 192.0.2.1")}
	seed2, _ := m.Pack()
	f.Add(seed2)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m mdns.Msg
		if m.Unpack(b) != nil {
			return
		}
		rewriteSVCB(m.Answer, true, true)
		_ = answerStrings(m.Answer)
		for _, rr := range m.Answer {
			if h, ok := rr.(*mdns.HTTPS); ok {
				for _, kv := range h.Value {
					if k := kv.Key(); k == mdns.SVCB_ECHCONFIG || k == mdns.SVCB_IPV4HINT || k == mdns.SVCB_IPV6HINT {
						t.Fatalf("param %s survived", k)
					}
				}
			}
		}
	})
}

// BenchmarkCacheHit measures answers served from the cache over loopback
// UDP with an in-process client on one connection.
func BenchmarkCacheHit(b *testing.B) {
	r := newRig(b, nil)
	c := &mdns.Client{Net: "udp", Timeout: 3 * time.Second}
	conn, err := c.Dial(r.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	m := new(mdns.Msg)
	m.SetQuestion("ai.example.", mdns.TypeA)
	m.SetEdns0(1232, false)
	if _, _, err := c.ExchangeWithConn(m, conn); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Id = mdns.Id()
		if _, _, err := c.ExchangeWithConn(m, conn); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
	if n := r.up.count("ai.example."); n != 1 {
		b.Fatalf("upstream queries %d, want 1", n)
	}
}

func TestShutdown(t *testing.T) {
	up := startUpstream(t)
	srv, err := NewServer(Config{Listen: "127.0.0.1:0", Upstreams: []string{up.addr}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err == nil {
		t.Fatal("fail/second Start: no error")
	}
	addr := srv.Addr().String()
	cancel() // shuts down in the background
	sctx, c2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer c2()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	m := new(mdns.Msg)
	m.SetQuestion("plain.example.", mdns.TypeA)
	if _, _, err := (&mdns.Client{Net: "tcp", Timeout: 300 * time.Millisecond}).Exchange(m, addr); err == nil {
		t.Fatal("answered after Shutdown")
	}
}
