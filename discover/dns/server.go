package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/sirupsen/logrus"
	"golang.org/x/net/netutil"

	"github.com/aigress/aigress/audit"
)

// Stats are the server's counters since start.
type Stats struct {
	Queries        uint64 // every query received
	Refused        uint64 // clients outside AllowClients, zone transfers
	CacheHits      uint64
	CacheMisses    uint64
	Upstream       uint64 // queries sent upstream (each try counts)
	UpstreamErrors uint64 // tries that failed (timeout, refused, bad reply)
	Servfail       uint64 // answers with SERVFAIL because no upstream answered
	Dropped        uint64 // queries that found no free upstream slot in time
	Steered        uint64
	Blocked        uint64 // refused by policy (NXDOMAIN or block address)
	Canary         uint64 // use-application-dns.net lookups
	Truncated      uint64 // UDP answers sent with TC
	ECHStripped    uint64 // ech SvcParams removed
	Events         uint64 // audit events emitted
}

type counters struct {
	queries, refused, cacheHits, cacheMisses, upstream, upstreamErrors,
	servfail, dropped, steered, blocked, canary, truncated, echStripped,
	events atomic.Uint64
}

// Server is a caching forwarding resolver. It is safe for concurrent use.
type Server struct {
	cfg       Config
	log       logrus.FieldLogger
	cache     *cache
	sem       chan struct{}
	udpClient *mdns.Client
	tcpClient *mdns.Client
	st        counters

	mu      sync.Mutex
	started bool
	udp     *mdns.Server
	tcp     *mdns.Server
	addr    net.Addr
	done    chan struct{} // closed when Shutdown begins
	stopped chan struct{} // closed when Shutdown has drained
}

var _ mdns.Handler = (*Server)(nil)

// NewServer validates cfg and returns a server that is not yet listening.
func NewServer(cfg Config, log logrus.FieldLogger) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		log = l
	}
	c, err := newCache(cfg.CacheSize, cfg.MaxTTL, cfg.MaxNegTTL)
	if err != nil {
		return nil, fmt.Errorf("dns: cache: %w", err)
	}
	return &Server{
		cfg:       cfg,
		log:       log.WithField("component", "dns"),
		cache:     c,
		sem:       make(chan struct{}, cfg.MaxInflight),
		udpClient: &mdns.Client{Net: "udp", Timeout: cfg.Timeout, UDPSize: upstreamUDPSize},
		tcpClient: &mdns.Client{Net: "tcp", Timeout: cfg.Timeout},
	}, nil
}

// Start binds UDP and TCP on cfg.Listen (the same port for both, also when
// the port is 0) and serves in the background. It returns once both
// listeners accept queries. Cancelling ctx shuts the server down.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("dns: server already started")
	}
	pc, ln, err := listenBoth(s.cfg.Listen)
	if err != nil {
		return err
	}
	idle := s.cfg.TCPIdleTimeout
	udpUp, tcpUp := make(chan struct{}), make(chan struct{})
	s.udp = &mdns.Server{
		PacketConn:        pc,
		Handler:           s,
		UDPSize:           readUDPSize,
		ReadTimeout:       2 * time.Second,
		WriteTimeout:      2 * time.Second,
		NotifyStartedFunc: func() { close(udpUp) },
	}
	s.tcp = &mdns.Server{
		Listener:          netutil.LimitListener(ln, s.cfg.MaxTCPConns),
		Handler:           s,
		ReadTimeout:       2 * time.Second,
		WriteTimeout:      2 * time.Second,
		IdleTimeout:       func() time.Duration { return idle },
		MaxTCPQueries:     DefaultMaxTCPQueries,
		NotifyStartedFunc: func() { close(tcpUp) },
	}
	errc := make(chan error, 2)
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.log.WithError(err).Warn("dns: serve stopped")
				errc <- err
			}
		}()
	}
	for _, up := range []chan struct{}{udpUp, tcpUp} {
		select {
		case <-up:
		case err := <-errc:
			pc.Close()
			ln.Close()
			return fmt.Errorf("dns: serve %s: %w", s.cfg.Listen, err)
		}
	}
	s.addr = pc.LocalAddr()
	s.started = true
	s.done = make(chan struct{})
	s.stopped = make(chan struct{})
	done := s.done
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.Shutdown(sctx)
		case <-done:
		}
	}()
	s.log.WithFields(logrus.Fields{"addr": s.addr.String(), "upstreams": s.cfg.Upstreams}).Info("dns: resolver listening")
	return nil
}

// listenBoth binds UDP and TCP on one address. With port 0 it retries a few
// times until the UDP port is also free for TCP.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: listen %q: %w", addr, err)
	}
	var lastErr error
	for try := 0; try < 10; try++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listen udp %s: %w", addr, err)
		}
		bound := pc.LocalAddr().(*net.UDPAddr)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(bound.Port)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("dns: listen tcp %s: %w", addr, lastErr)
}

// Addr is the bound UDP address (TCP listens on the same one); nil before
// Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops both listeners and waits for in-flight queries until ctx
// ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.started {
		stopped := s.stopped
		s.mu.Unlock()
		if stopped == nil {
			return nil // never started
		}
		select { // another Shutdown is draining: wait for it
		case <-stopped:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("dns: shutdown: %w", ctx.Err())
		}
	}
	s.started = false
	close(s.done)
	udp, tcp, stopped := s.udp, s.tcp, s.stopped
	s.mu.Unlock()
	err1 := udp.ShutdownContext(ctx)
	err2 := tcp.ShutdownContext(ctx)
	close(stopped)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("dns: shutdown: %w", err)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.st
	return Stats{
		Queries: c.queries.Load(), Refused: c.refused.Load(),
		CacheHits: c.cacheHits.Load(), CacheMisses: c.cacheMisses.Load(),
		Upstream: c.upstream.Load(), UpstreamErrors: c.upstreamErrors.Load(),
		Servfail: c.servfail.Load(), Dropped: c.dropped.Load(),
		Steered: c.steered.Load(), Blocked: c.blocked.Load(), Canary: c.canary.Load(),
		Truncated: c.truncated.Load(), ECHStripped: c.echStripped.Load(),
		Events: c.events.Load(),
	}
}

// clientOf returns the client address and whether it came over TCP.
func clientOf(a net.Addr) (netip.Addr, bool) {
	switch v := a.(type) {
	case *net.UDPAddr:
		return v.AddrPort().Addr().Unmap(), false
	case *net.TCPAddr:
		return v.AddrPort().Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func (s *Server) allowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range s.cfg.AllowClients {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ServeDNS answers one query. It implements mdns.Handler.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	s.st.queries.Add(1)
	client, isTCP := clientOf(w.RemoteAddr())
	if !s.allowed(client) {
		s.st.refused.Add(1)
		s.writeRcode(w, r, mdns.RcodeRefused)
		return
	}
	if r.Opcode != mdns.OpcodeQuery {
		s.writeRcode(w, r, mdns.RcodeNotImplemented)
		return
	}
	if len(r.Question) != 1 {
		s.writeRcode(w, r, mdns.RcodeFormatError)
		return
	}
	q := r.Question[0]
	switch q.Qtype {
	case mdns.TypeAXFR, mdns.TypeIXFR:
		s.st.refused.Add(1)
		s.writeRcode(w, r, mdns.RcodeRefused)
		return
	}
	opt := r.IsEdns0()
	do := opt != nil && opt.Do()
	name := strings.ToLower(q.Name)

	reply := new(mdns.Msg)
	reply.SetReply(r)
	reply.RecursionAvailable = true

	if name == canaryName {
		s.st.canary.Add(1)
		reply.Rcode = mdns.RcodeNameError
		s.finish(w, reply, opt, isTCP)
		return
	}

	bare := strings.TrimSuffix(name, ".")
	var service, provider string
	isAI := false
	if s.cfg.Lookup != nil {
		service, provider, isAI = s.cfg.Lookup(bare)
	}
	action := ActionForward
	if isAI && s.cfg.Policy != nil {
		action = s.cfg.Policy(bare, service, client)
	}
	if action == ActionSteer && !s.cfg.SteerV4.IsValid() && !s.cfg.SteerV6.IsValid() {
		action = ActionForward // nowhere to steer to
	}
	evAction := string(action)

	switch {
	case action == ActionRefuse:
		s.st.blocked.Add(1)
		s.refuse(reply, q)
	case action == ActionSteer && (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeAAAA):
		s.st.steered.Add(1)
		s.steer(reply, q)
	default:
		if action == ActionSteer {
			s.st.steered.Add(1)
		}
		cached := s.forward(reply, r, q, do)
		if cached && action == ActionForward {
			evAction = actionCached
		}
		if isAI && (q.Qtype == mdns.TypeHTTPS || q.Qtype == mdns.TypeSVCB) {
			// Steered names lose their address hints too: they point
			// at the origin and would bypass the steering.
			ech, n := rewriteSVCB(reply.Answer, s.cfg.StripECH, action == ActionSteer)
			s.st.echStripped.Add(uint64(ech))
			if n > 0 {
				reply.AuthenticatedData = false
			}
		}
	}

	var answers []string
	if isAI {
		answers = answerStrings(reply.Answer)
	}
	s.finish(w, reply, opt, isTCP)
	if isAI && s.cfg.Emit != nil {
		now := s.cfg.Clock()
		s.st.events.Add(1)
		s.cfg.Emit(&audit.Event{
			ID:       s.cfg.NewID(now),
			Time:     now,
			Kind:     audit.KindDNS,
			Client:   audit.Client{IP: client.String()},
			Dest:     audit.Dest{Host: bare},
			Provider: provider,
			Service:  service,
			DNS: &audit.DNSInfo{
				Name:    bare,
				QType:   typeString(q.Qtype),
				Answers: answers,
				Rcode:   rcodeString(reply.Rcode),
				Action:  evAction,
			},
		})
	}
}

// finish adds EDNS(0) when the client used it, truncates for UDP and writes.
func (s *Server) finish(w mdns.ResponseWriter, reply *mdns.Msg, opt *mdns.OPT, isTCP bool) {
	size := mdns.MinMsgSize
	if opt != nil {
		reply.SetEdns0(upstreamUDPSize, opt.Do())
		size = min(max(int(opt.UDPSize()), mdns.MinMsgSize), upstreamUDPSize)
	}
	if isTCP {
		size = mdns.MaxMsgSize
	}
	reply.Truncate(size)
	if reply.Truncated {
		s.st.truncated.Add(1)
	}
	if err := w.WriteMsg(reply); err != nil {
		s.log.WithError(err).Debug("dns: write answer")
	}
}

func (s *Server) writeRcode(w mdns.ResponseWriter, r *mdns.Msg, rcode int) {
	m := new(mdns.Msg)
	m.SetRcode(r, rcode)
	m.RecursionAvailable = true
	if err := w.WriteMsg(m); err != nil {
		s.log.WithError(err).Debug("dns: write answer")
	}
}

func (s *Server) synthTTL() uint32 {
	return uint32(s.cfg.SteerTTL / time.Second)
}

// steer answers A/AAAA with the proxy address; a family without a steer
// address gets NODATA.
func (s *Server) steer(reply *mdns.Msg, q mdns.Question) {
	reply.Answer = addrRR(q, s.cfg.SteerV4, s.cfg.SteerV6, s.synthTTL())
}

// refuse answers with the block page address when one is set for any
// family (NODATA for other types), else NXDOMAIN.
func (s *Server) refuse(reply *mdns.Msg, q mdns.Question) {
	if !s.cfg.BlockV4.IsValid() && !s.cfg.BlockV6.IsValid() {
		reply.Rcode = mdns.RcodeNameError
		return
	}
	reply.Answer = addrRR(q, s.cfg.BlockV4, s.cfg.BlockV6, s.synthTTL())
}

func addrRR(q mdns.Question, v4, v6 netip.Addr, ttl uint32) []mdns.RR {
	hdr := mdns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: mdns.ClassINET, Ttl: ttl}
	switch {
	case q.Qtype == mdns.TypeA && v4.IsValid():
		return []mdns.RR{&mdns.A{Hdr: hdr, A: v4.AsSlice()}}
	case q.Qtype == mdns.TypeAAAA && v6.IsValid():
		return []mdns.RR{&mdns.AAAA{Hdr: hdr, AAAA: v6.AsSlice()}}
	}
	return nil
}

// forward fills reply from the cache or the upstreams and reports whether
// the cache answered. On failure reply gets SERVFAIL.
func (s *Server) forward(reply, r *mdns.Msg, q mdns.Question, do bool) (cached bool) {
	key := keyOf(q, do)
	now := s.cfg.Clock()
	if e := s.cache.get(key, now); e != nil {
		s.st.cacheHits.Add(1)
		age := uint32(now.Sub(e.stored) / time.Second)
		reply.Rcode = e.rcode
		reply.AuthenticatedData = e.ad && (do || r.AuthenticatedData)
		reply.Answer = agedRRs(e.answer, age)
		reply.Ns = agedRRs(e.ns, age)
		reply.Extra = agedRRs(e.extra, age)
		return true
	}
	s.st.cacheMisses.Add(1)
	m := new(mdns.Msg)
	m.SetQuestion(q.Name, q.Qtype)
	m.Question[0].Qclass = q.Qclass
	m.RecursionDesired = true
	m.CheckingDisabled = r.CheckingDisabled
	m.SetEdns0(upstreamUDPSize, do)
	resp, err := s.exchange(m)
	if err != nil {
		s.st.servfail.Add(1)
		s.log.WithError(err).WithField("name", q.Name).Debug("dns: no upstream answered")
		reply.Rcode = mdns.RcodeServerFailure
		return false
	}
	s.cache.put(key, resp, now)
	reply.Rcode = resp.Rcode
	reply.AuthenticatedData = resp.AuthenticatedData && (do || r.AuthenticatedData)
	reply.Answer = copyRRs(resp.Answer)
	reply.Ns = copyRRs(resp.Ns)
	reply.Extra = copyRRs(resp.Extra)
	return false
}

// exchange asks the upstreams in order. A try that fails, or answers
// SERVFAIL or REFUSED, moves on to the next one.
func (s *Server) exchange(m *mdns.Msg) (*mdns.Msg, error) {
	timer := time.NewTimer(s.cfg.Timeout)
	select {
	case s.sem <- struct{}{}:
		timer.Stop()
	case <-timer.C:
		s.st.dropped.Add(1)
		return nil, errors.New("dns: too many upstream queries in flight")
	}
	defer func() { <-s.sem }()

	var lastErr error
	var last *mdns.Msg
	q := m.Question[0]
	for _, up := range s.cfg.Upstreams {
		s.st.upstream.Add(1)
		m.Id = mdns.Id()
		resp, _, err := s.udpClient.Exchange(m, up)
		if err == nil && resp.Truncated {
			resp, _, err = s.tcpClient.Exchange(m, up)
		}
		if err == nil && (len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, q.Name) ||
			resp.Question[0].Qtype != q.Qtype || resp.Question[0].Qclass != q.Qclass) {
			err = errors.New("answer does not match the question")
		}
		if err != nil {
			s.st.upstreamErrors.Add(1)
			lastErr = fmt.Errorf("dns: upstream %s: %w", up, err)
			s.log.WithError(err).WithField("upstream", up).Debug("dns: upstream try failed")
			continue
		}
		if resp.Rcode == mdns.RcodeServerFailure || resp.Rcode == mdns.RcodeRefused {
			s.st.upstreamErrors.Add(1)
			last = resp
			continue
		}
		return resp, nil
	}
	if last != nil {
		return last, nil
	}
	return nil, lastErr
}

// rewriteSVCB removes the ech SvcParam (and, with hints, ipv4hint and
// ipv6hint) from HTTPS and SVCB records in place, returning how many ech
// params and how many params in all it removed.
func rewriteSVCB(rrs []mdns.RR, ech, hints bool) (echs, n int) {
	for _, rr := range rrs {
		var svcb *mdns.SVCB
		switch v := rr.(type) {
		case *mdns.SVCB:
			svcb = v
		case *mdns.HTTPS:
			svcb = &v.SVCB
		default:
			continue
		}
		kept := svcb.Value[:0]
		for _, kv := range svcb.Value {
			switch kv.Key() {
			case mdns.SVCB_ECHCONFIG:
				if ech {
					echs++
					n++
					continue
				}
			case mdns.SVCB_IPV4HINT, mdns.SVCB_IPV6HINT:
				if hints {
					n++
					continue
				}
			}
			kept = append(kept, kv)
		}
		clear(svcb.Value[len(kept):])
		svcb.Value = kept
	}
	return echs, n
}

// answerStrings renders answers for the audit event: addresses bare
// ("192.0.2.1"), other records as "TYPE rdata" ("CNAME x.example.").
func answerStrings(rrs []mdns.RR) []string {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		switch v := rr.(type) {
		case *mdns.A:
			out = append(out, v.A.String())
		case *mdns.AAAA:
			out = append(out, v.AAAA.String())
		default:
			h := rr.Header()
			rdata := strings.TrimPrefix(rr.String(), h.String())
			out = append(out, typeString(h.Rrtype)+" "+strings.TrimSpace(rdata))
		}
	}
	return out
}

func typeString(t uint16) string {
	if s, ok := mdns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

func rcodeString(rc int) string {
	if s, ok := mdns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}
