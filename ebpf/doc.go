// Package ebpf redirects TCP connects to AI destinations to the aigress
// transparent listener with cgroup eBPF programs, and tells the proxy which
// process made each connection. It needs neither iptables nor proxy settings.
//
// # What it owns
//
//   - bpf/redirect.c: CO-RE programs, built by bpf2go (//go:generate in
//     redirect.go; `make generate`, see generate.mk). The output
//     redirect_bpfel.go/.o is committed, so `go build` needs no clang.
//     vmlinux.h is made from the running kernel's BTF and is not committed.
//   - Loading and attaching (Attach), map updates (AddTarget, AddTargetAddr,
//     RemoveTarget), look-ups (Lookup), the event stream (Events), the
//     feature probe (Probe) and detaching (Close).
//
// # Programs (all attached to one cgroup v2 directory, Options.CgroupPath)
//
//   - cgroup/connect4, cgroup/connect6: for a TCP connect whose destination
//     is in the LPM tries (targets_v4/targets_v6, filled from config CIDRs
//     and DNS answers) or, with AllTCP443, any port 443, rewrite the
//     destination to the listener and store a record (original destination,
//     pid, tgid, uid, gid, comm, cgroup id, time) keyed by socket cookie.
//     An AF_INET6 socket connecting to a v4-mapped address is handled as
//     IPv4: it is matched against the IPv4 targets and rewritten to
//     ::ffff:ListenV4. IPv6 destinations are redirected only when ListenV6
//     is set. A connect to the listener itself is never rewritten.
//   - sockops (BPF_SOCK_OPS_TCP_CONNECT_CB): the accepted socket in the
//     proxy has another cookie, so the record is copied into a second LRU
//     hash keyed by the client's (family, local address, local port). At
//     TCP_CONNECT_CB the source port is bound and the SYN not yet sent, so
//     the entry always exists before the proxy's accept() returns. Lookup
//     takes the accepted connection's RemoteAddr. (Chosen over
//     sock_release/getsockopt tricks: no race, no extra syscall per accept.)
//   - cgroup/getpeername4/6: applications see their original peer.
//   - cgroup/sendmsg4/6 (only with BlockQUIC) and the UDP branch of
//     connect4/6: UDP 443 to targets fails with EPERM, so browsers fall back
//     from QUIC to TCP, which can be intercepted.
//   - A ring buffer carries an event for every TCP connect in the cgroup
//     (pass, redirect, excluded) and every blocked QUIC connect, so traffic
//     that is not redirected is still attributed.
//
// # Loop prevention (aigress's own sockets)
//
// A connect is never redirected when its process (tgid) is
// Options.ExcludePID (default: this process) or its socket carries
// SO_MARK == Options.ExcludeMark (set the mark on the upstream dialer; the
// same mark the iptables/nftables modes match). The simplest deployment is to
// run aigress outside the attached cgroup subtree (attach to user.slice or a
// container's cgroup); the tgid rule covers the case where it is inside
// (e.g. attached to the root), the mark covers helper processes.
//
// # Lifetime
//
// Programs are attached with real bpf_links (link.AttachRawLink), never
// pinned. link.AttachCgroup is not used because it silently falls back to
// BPF_PROG_ATTACH on kernels without cgroup bpf_link, and such an attachment
// outlives the process. With links, Close detaches everything, and the
// kernel detaches them when the process dies, SIGKILL included
// (TestDetachOnSIGKILL checks this with BPF_PROG_QUERY).
//
// # Maps and bounds
//
// Targets: 16384 prefixes per family. Records: LRU hashes of 65536 entries
// (by cookie, for getpeername; by client address, for Lookup); they are not
// deleted when sockets close, the LRU evicts the oldest. Events: a 256 KiB
// ring buffer; the programs wake the reader only once 32 KiB are pending and
// the reader polls every 100 ms, so a lone event is up to ~100 ms late, and a
// full buffer drops events (Stats.EventsLost) instead of slowing connect().
// Waking the reader per event cost ~15 µs per connect on a 2-core machine.
//
// # Requirements
//
// Linux >= 5.8 (ring buffer, getpeername hooks, cgroup bpf_link), kernel BTF
// at /sys/kernel/btf/vmlinux, cgroup v2, CAP_BPF + CAP_NET_ADMIN +
// CAP_PERFMON (or CAP_SYS_ADMIN). Probe reports what is missing, wrapping
// ErrNotSupported, with the iptables/nftables fallback hint.
//
// # Contracts
//
// Redirector methods are safe for concurrent use. Events has one reader; its
// channel closes when ctx ends or on Close. Conn.TGID is the process id (what
// audit should show as pid); Conn.PID is the thread that called connect().
// CgroupPath is relative to the cgroup2 root, resolved from the cgroup id via
// /proc/TGID/cgroup or a rate-limited walk of the hierarchy, cached.
package ebpf
