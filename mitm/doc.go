// Package mitm owns the listeners (explicit CONNECT/plain-HTTP proxy on
// goproxy, and the transparent listener for REDIRECT, TPROXY, DNS steering
// and eBPF), the interception decision, TLS towards clients (leaves from
// certs) and upstream (always verified), HTTP/1.1, HTTP/2 and WebSocket
// relay, streaming, and the Flow with its phases.
//
// Contracts:
//   - Stages run in the order of the Pipeline (built once in
//     cmd/aigress/stages.go). Connect decides intercept, tunnel or reject;
//     Request may short-circuit with Flow.Reply; Response may add stream
//     filters; Done runs exactly once per flow, on success, block, client
//     gone, upstream error and tunnel end alike.
//   - Flow.In is read-only; changes go to Flow.Out (SetOutBody fixes
//     Content-Length and drops Content-Encoding).
//   - Stream filters see each chunk as it arrives and may hold bytes back
//     only within their own bounded window; observers return the chunk
//     unchanged, so SSE reaches the client as the upstream sends it.
//   - Upstream failures never give an empty reply: the client gets a JSON
//     502 naming the cause (upstream_bad_certificate, upstream_refused,
//     upstream_timeout, upstream_dns) and the event ID.
//   - A request whose Host differs from its CONNECT host is answered 421.
//   - Tunnels copy bytes untouched; between two *net.TCPConn io.Copy uses
//     splice(2). The resolve map applies to every upstream dial.
//   - Transparent mode peeks the ClientHello without consuming it and sends
//     AI hosts through the same goproxy pipeline by a synthesized CONNECT:
//     there is no second pipeline. A connection whose "original
//     destination" is the listener itself (DNS steering) is dialled by name,
//     never to itself. A client without SNI is passed through.
//   - Bounds: request body buffered up to MaxBodyBytes (larger bodies stream
//     through marked too large), head size, handshake, activity-based idle
//     and upstream header timeouts. Shutdown stops accepting, waits for
//     in-flight flows until its context ends, then closes hijacked
//     connections.
//
// Response bodies are requested without the client's Accept-Encoding (Go's
// transport negotiates gzip and decodes it), so usage and output detectors
// always see plain bytes; clients get identity bodies.
package mitm
