// Package sniff is aigress's passive sensor: it finds AI usage in packet
// captures (pcap and pcapng files) or live on an interface, for traffic
// that never passes the proxy (SPAN ports, incident captures).
//
// # What it owns
//
// Decoding frames (Ethernet with 802.1Q/802.1ad tags, Linux SLL and SLL2,
// raw IP, BSD loopback; IPv4 and IPv6; TCP and UDP), tracking flows,
// naming them, and aggregating them into audit events of kind "sensor":
// one per (client IP, service, source) with first/last seen, flows, bytes
// (IP bytes, both directions) and packets.
//
// A flow is named, in this order of trust, by
//   - the TLS ClientHello SNI of its client -> server byte stream (source "sni");
//   - the SNI of its QUIC Initial packets, UDP port 443 (source "quic");
//   - the Host header of an HTTP/1.x request, any port (source "http_host");
//   - the name a DNS answer gave its server address, when none of the
//     above applies (no payload, not TLS, ECH without outer SNI...; source
//     "dns"). DNS lookups of catalog names are counted apart, as "dns_query" rows,
//     so that a lookup and the connection it leads to are not two flows.
//
// An SNI that the catalog does not know ends the flow's inspection: it is
// not AI, whatever DNS said about the address.
//
// # Contracts
//
// A Sensor is used by one goroutine: HandlePacket, ReadPcap, Live, Stats
// and Flush must not run concurrently. HandlePacket never fails and never
// panics on bad input: truncated and malformed frames are counted in Stats.
// It does not retain the packet buffer (capture sources reuse it). Emit is
// called synchronously from Flush (and from Live every Options.LiveFlush),
// so a slow sink slows the sensor, never the proxy. Flush ends the
// capture: tracked flows are finalised and forgotten.
//
// # Decisions
//
//   - gopacket's DecodingLayerParser with layers reused across packets: no
//     per-packet allocation on the fast path; DNS is decoded only on port 53.
//   - TCP reassembly is a small in-order buffer per flow, not tcpassembly:
//     only the client's first bytes matter (the ClientHello, a few KB), so
//     segments are appended by sequence number, retransmissions and
//     overlaps trimmed, and up to 16 out-of-order segments held. The common
//     case, a whole hello in one segment, is parsed in place with no copy.
//     Bounds: MaxStreamBytes per flow (16 KiB), MaxBufferedBytes for all
//     flows (32 MiB); past them inspection is abandoned and counted. The
//     buffer is freed as soon as the flow is named. Without a SYN the first
//     data segment seen anchors the stream.
//   - Flows live in an LRU (MaxFlows, 65536); an evicted flow is finalised
//     (DNS attribution) and counted. A connection that outlives its entry
//     and comes back is a new flow. A SYN on a closed 5-tuple starts a new
//     flow.
//   - The IP -> name map is an LRU (MaxNames) of every A/AAAA answer, the
//     latest answer winning, so an address reused by a non-AI name stops
//     being attributed to AI.
//   - The client of a flow is the SYN sender, else the side talking to
//     port 53/443/80 or a port below 1024, else the higher port.
//   - Event Time is the first time the row's usage was seen; IDs come from
//     Options.NewID (audit.NewID).
//   - Live uses pcapgo.NewEthernetHandle (AF_PACKET, pure Go, no cgo). The
//     handle has no read timeout, so SO_RCVTIMEO is set on its descriptor,
//     read by reflection; if that ever fails, stopping waits for a packet.
//   - gopacket v1.1.19's LinkType is a uint8: pcap files with link type
//     SLL2 (276) arrive as 20, which is decoded as SLL2.
package sniff
