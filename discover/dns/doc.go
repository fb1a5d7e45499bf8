// Package dns is aigress's caching, forwarding DNS resolver (issue 5 part 4),
// built on github.com/miekg/dns v1 (imported as mdns).
//
// It owns: answering client queries over UDP and TCP on one address, a
// bounded LRU answer cache, forwarding to upstream resolvers with fallback,
// DNS steering and refusal of AI names by policy, ECH stripping, the Firefox
// DoH canary, and one audit event per lookup of a catalog name.
//
// Contracts:
//   - Which names are AI is Config.Lookup (the lead passes the classify
//     catalog); what to do is Config.Policy (forward | steer | refuse). The
//     package imports neither the catalog nor the policy engine.
//   - Config.Emit is called once per query for a catalog name, after the
//     answer has been written, on the serving goroutine; it must not block
//     for long (audit sinks buffer). Event IDs come from Config.NewID.
//   - Start returns once both listeners serve; Shutdown stops them and waits
//     for in-flight queries until its context ends.
//
// Decisions (and why):
//   - Never an open resolver: clients outside Config.AllowClients (default
//     loopback, RFC 1918, link-local, ULA) get REFUSED, before any other work.
//   - The cache key is (lower-cased qname, qtype, qclass, DO bit). Upstream
//     answers are cached verbatim (OPT removed) for the smallest RR TTL,
//     capped at MaxTTL; NXDOMAIN/NODATA for min(SOA TTL, SOA MINIMUM) capped
//     at MaxNegTTL (RFC 2308), and not at all without a SOA. SERVFAIL,
//     REFUSED and truncated answers are never cached. Hits are served with
//     TTLs decreased by the entry's age.
//   - Policy transforms (steering, ECH stripping) are applied when answering,
//     never to the cached copy, because the policy may depend on the client.
//     Steered and refused A/AAAA answers are synthesised with SteerTTL
//     (default 30 s), never asked upstream and never cached.
//   - For a steered name, HTTPS/SVCB answers lose ipv4hint/ipv6hint (they
//     point at the origin and would bypass steering) and, with StripECH, ech.
//     For forwarded catalog names, StripECH removes ech only: a transparent
//     proxy on the path needs the real SNI. Other SvcParams are kept.
//   - A steered name for a family without a steer address answers NODATA so
//     the client uses the other family; a refused name answers NXDOMAIN
//     unless a block page address is set, then A/AAAA get that address and
//     other types NODATA.
//   - use-application-dns.net answers NXDOMAIN for every type, so Firefox
//     keeps using the network's resolver instead of its built-in DoH.
//   - Upstream queries are rebuilt (fresh random ID, EDNS(0) 1232 with the
//     client's DO and CD bits, no client EDNS options forwarded), sent over
//     UDP and retried over TCP when truncated. The answer must match the
//     question. SERVFAIL/REFUSED or a failed try falls back to the next
//     upstream; when none answers the client gets SERVFAIL.
//   - Bounds: at most MaxInflight concurrent upstream queries (a query waits
//     at most Timeout for a slot, then SERVFAIL), 4096-byte UDP reads,
//     answers over UDP truncated (TC) to min(client EDNS size, 1232) or 512,
//     at most MaxTCPConns client TCP connections, TCP idle timeout and at
//     most 128 queries per TCP connection, 2 s read/write timeouts.
//   - Zone transfers (AXFR/IXFR) are REFUSED; non-query opcodes NOTIMP.
//   - Audit answers render addresses bare ("192.0.2.1") and other records as
//     "TYPE rdata". DNSInfo.Action is forward, cached (a forwarded answer
//     from the cache), steer or refuse.
package dns
