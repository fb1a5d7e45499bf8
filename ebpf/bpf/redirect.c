// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// aigress eBPF programs: redirect TCP connects to AI destinations to the
// local aigress transparent listener, attribute every TCP connect to the
// process that made it, and let applications keep seeing their original peer.
//
// Programs (all attached to one cgroup v2 directory):
//   cgroup/connect4, cgroup/connect6       select, rewrite, record, emit event
//   sockops (TCP_CONNECT_CB)               copy the record to a map keyed by
//                                          the client's local address, which
//                                          is what the proxy sees at accept()
//   cgroup/getpeername4, getpeername6      show the original peer again
//   cgroup/sendmsg4, cgroup/sendmsg6       optionally refuse UDP 443 (QUIC)
//                                          to AI destinations
//
// Byte order: addresses are kept in network byte order (as in the kernel
// contexts); ports are kept in host byte order in maps and events.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define PROTO_TCP 6
#define PROTO_UDP 17

// config.flags
#define CFG_ALL_TCP443 (1 << 0)
#define CFG_BLOCK_QUIC (1 << 1)
#define CFG_HAVE_V4 (1 << 2)
#define CFG_HAVE_V6 (1 << 3)

// conn_event.action
#define ACT_PASS 0
#define ACT_REDIRECT 1
#define ACT_BLOCK 2
#define ACT_EXCLUDED 3

// ring buffer bytes pending before the reader is woken
#define WAKEUP_BYTES (32 * 1024)

// stats indexes
#define STAT_EVENTS_LOST 0
#define STAT_REDIRECTED 1
#define STAT_BLOCKED 2
#define STAT_MAX 4

struct config {
	__u32 listen_ip4;    // network order
	__u32 listen_ip6[4]; // network order
	__u16 listen_port4;  // host order
	__u16 listen_port6;  // host order
	__u32 flags;
	__u32 exclude_tgid; // 0 = off
	__u32 exclude_mark; // 0 = off
};

// conn_rec is what Go reads back for a redirected connection.
struct conn_rec {
	__u64 ts_ns; // bpf_ktime_get_ns (CLOCK_MONOTONIC)
	__u64 cookie;
	__u64 cgroup_id;
	__u32 orig_ip[4]; // network order; IPv4 in orig_ip[0]
	__u32 pid;        // task (thread) id
	__u32 tgid;       // process id
	__u32 uid;
	__u32 gid;
	__u16 orig_port;     // host order
	__u8 family;         // family of orig_ip: AF_INET or AF_INET6
	__u8 listen_family;  // family of the listener we redirected to
	__u32 _pad;
	char comm[16];
};

// addr_key identifies the client end of a redirected connection as the
// proxy sees it in accept(): (family, local ip, local port).
struct addr_key {
	__u32 ip[4]; // network order; IPv4 in ip[0], rest zero
	__u16 port;  // host order
	__u8 family;
	__u8 _pad;
};

struct conn_event {
	__u64 ts_ns;
	__u64 cookie;
	__u64 cgroup_id;
	__u32 dst_ip[4]; // network order
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u32 gid;
	__u16 dst_port; // host order
	__u8 family;    // family of dst_ip
	__u8 action;    // ACT_*
	__u8 protocol;  // 6 tcp, 17 udp
	__u8 _pad[3];
	char comm[16];
};

struct lpm_v4 {
	__u32 prefixlen;
	__u32 addr; // network order
};

struct lpm_v6 {
	__u32 prefixlen;
	__u32 addr[4]; // network order
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4);
	__type(value, __u8);
} targets_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6);
	__type(value, __u8);
} targets_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_rec);
} conns_by_cookie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct addr_key);
	__type(value, struct conn_rec);
} conns_by_addr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// conn_event only travels through the ring buffer: name it in a global so
// that its BTF is emitted for bpf2go -type.
const struct conn_event *unused_event __attribute__((unused));

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline struct config *get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&config_map, &zero);
}

static __always_inline int is_excluded(struct bpf_sock_addr *ctx, struct config *cfg, __u32 tgid)
{
	if (cfg->exclude_tgid && cfg->exclude_tgid == tgid)
		return 1;
	if (cfg->exclude_mark) {
		struct bpf_sock *sk = ctx->sk;
		if (sk && sk->mark == cfg->exclude_mark)
			return 1;
	}
	return 0;
}

static __always_inline int target_v4(__u32 ip)
{
	struct lpm_v4 k = {.prefixlen = 32, .addr = ip};
	return bpf_map_lookup_elem(&targets_v4, &k) != NULL;
}

static __always_inline int target_v6(__u32 ip[4])
{
	struct lpm_v6 k = {.prefixlen = 128};
	k.addr[0] = ip[0];
	k.addr[1] = ip[1];
	k.addr[2] = ip[2];
	k.addr[3] = ip[3];
	return bpf_map_lookup_elem(&targets_v6, &k) != NULL;
}

static __always_inline void emit(struct conn_rec *r, __u8 action, __u8 proto)
{
	struct conn_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_EVENTS_LOST);
		return;
	}
	e->ts_ns = r->ts_ns;
	e->cookie = r->cookie;
	e->cgroup_id = r->cgroup_id;
	e->dst_ip[0] = r->orig_ip[0];
	e->dst_ip[1] = r->orig_ip[1];
	e->dst_ip[2] = r->orig_ip[2];
	e->dst_ip[3] = r->orig_ip[3];
	e->pid = r->pid;
	e->tgid = r->tgid;
	e->uid = r->uid;
	e->gid = r->gid;
	e->dst_port = r->orig_port;
	e->family = r->family;
	e->action = action;
	e->protocol = proto;
	e->_pad[0] = 0;
	e->_pad[1] = 0;
	e->_pad[2] = 0;
	__builtin_memcpy(e->comm, r->comm, sizeof(e->comm));
	// Waking the reader for every connect costs more than the programs
	// themselves: wake it only once a batch is pending; the Go reader also
	// polls on a short deadline, so single events are late by at most that.
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

static __always_inline void fill_rec(struct bpf_sock_addr *ctx, struct conn_rec *r, __u64 pid_tgid)
{
	__u64 uid_gid = bpf_get_current_uid_gid();
	r->ts_ns = bpf_ktime_get_ns();
	r->cookie = bpf_get_socket_cookie(ctx);
	r->cgroup_id = bpf_get_current_cgroup_id();
	r->pid = (__u32)pid_tgid;
	r->tgid = pid_tgid >> 32;
	r->uid = (__u32)uid_gid;
	r->gid = uid_gid >> 32;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
}

SEC("cgroup/connect4")
int aigress_connect4(struct bpf_sock_addr *ctx)
{
	struct config *cfg = get_config();
	if (!cfg)
		return 1;

	__u32 type = ctx->type;
	__u32 proto = ctx->protocol;
	int tcp = type == SOCK_STREAM && proto == PROTO_TCP;
	int udp = type == SOCK_DGRAM && proto == PROTO_UDP;
	if (!tcp && !udp)
		return 1;

	__u32 dst = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if (udp) {
		// Connected UDP sockets (QUIC clients usually connect) never
		// reach sendmsg4 with an address, so QUIC is refused here too.
		if ((cfg->flags & CFG_BLOCK_QUIC) && port == 443 && target_v4(dst) &&
		    !is_excluded(ctx, cfg, pid_tgid >> 32)) {
			struct conn_rec r = {};
			fill_rec(ctx, &r, pid_tgid);
			r.family = AF_INET;
			r.orig_ip[0] = dst;
			r.orig_port = port;
			stat_inc(STAT_BLOCKED);
			emit(&r, ACT_BLOCK, PROTO_UDP);
			return 0;
		}
		return 1;
	}

	struct conn_rec r = {};
	fill_rec(ctx, &r, pid_tgid);
	r.family = AF_INET;
	r.orig_ip[0] = dst;
	r.orig_port = port;

	if (is_excluded(ctx, cfg, r.tgid)) {
		emit(&r, ACT_EXCLUDED, PROTO_TCP);
		return 1;
	}

	int sel = 0;
	if (cfg->flags & CFG_HAVE_V4) {
		if (dst == cfg->listen_ip4 && port == cfg->listen_port4)
			sel = 0; // never loop onto the listener itself
		else if ((cfg->flags & CFG_ALL_TCP443) && port == 443)
			sel = 1;
		else
			sel = target_v4(dst);
	}
	if (!sel) {
		emit(&r, ACT_PASS, PROTO_TCP);
		return 1;
	}

	r.listen_family = AF_INET;
	bpf_map_update_elem(&conns_by_cookie, &r.cookie, &r, BPF_ANY);
	ctx->user_ip4 = cfg->listen_ip4;
	ctx->user_port = (__u32)bpf_htons(cfg->listen_port4);
	stat_inc(STAT_REDIRECTED);
	emit(&r, ACT_REDIRECT, PROTO_TCP);
	return 1;
}

static __always_inline int is_v4mapped(__u32 ip[4])
{
	return ip[0] == 0 && ip[1] == 0 && ip[2] == bpf_htonl(0x0000ffff);
}

SEC("cgroup/connect6")
int aigress_connect6(struct bpf_sock_addr *ctx)
{
	struct config *cfg = get_config();
	if (!cfg)
		return 1;

	__u32 type = ctx->type;
	__u32 proto = ctx->protocol;
	int tcp = type == SOCK_STREAM && proto == PROTO_TCP;
	int udp = type == SOCK_DGRAM && proto == PROTO_UDP;
	if (!tcp && !udp)
		return 1;

	__u32 dst[4];
	dst[0] = ctx->user_ip6[0];
	dst[1] = ctx->user_ip6[1];
	dst[2] = ctx->user_ip6[2];
	dst[3] = ctx->user_ip6[3];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	int mapped = is_v4mapped(dst);

	struct conn_rec r = {};
	fill_rec(ctx, &r, pid_tgid);
	r.orig_port = port;
	if (mapped) {
		// A dual-stack AF_INET6 socket connecting to ::ffff:a.b.c.d is an
		// IPv4 connection: match the IPv4 targets, record it as IPv4.
		r.family = AF_INET;
		r.orig_ip[0] = dst[3];
	} else {
		r.family = AF_INET6;
		r.orig_ip[0] = dst[0];
		r.orig_ip[1] = dst[1];
		r.orig_ip[2] = dst[2];
		r.orig_ip[3] = dst[3];
	}

	int target = mapped ? target_v4(dst[3]) : target_v6(dst);

	if (udp) {
		if ((cfg->flags & CFG_BLOCK_QUIC) && port == 443 && target &&
		    !is_excluded(ctx, cfg, r.tgid)) {
			stat_inc(STAT_BLOCKED);
			emit(&r, ACT_BLOCK, PROTO_UDP);
			return 0;
		}
		return 1;
	}

	if (is_excluded(ctx, cfg, r.tgid)) {
		emit(&r, ACT_EXCLUDED, PROTO_TCP);
		return 1;
	}

	int sel = 0;
	if (mapped) {
		// Redirect to ::ffff:<ListenV4>: the kernel then runs the IPv4
		// connect path, and the IPv4 listener accepts it.
		if (cfg->flags & CFG_HAVE_V4) {
			if (dst[3] == cfg->listen_ip4 && port == cfg->listen_port4)
				sel = 0;
			else
				sel = ((cfg->flags & CFG_ALL_TCP443) && port == 443) || target;
		}
	} else if (cfg->flags & CFG_HAVE_V6) {
		// Without an IPv6 listener, IPv6 destinations are left alone.
		if (dst[0] == cfg->listen_ip6[0] && dst[1] == cfg->listen_ip6[1] &&
		    dst[2] == cfg->listen_ip6[2] && dst[3] == cfg->listen_ip6[3] &&
		    port == cfg->listen_port6)
			sel = 0;
		else
			sel = ((cfg->flags & CFG_ALL_TCP443) && port == 443) || target;
	}
	if (!sel) {
		emit(&r, ACT_PASS, PROTO_TCP);
		return 1;
	}

	if (mapped) {
		r.listen_family = AF_INET;
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = cfg->listen_ip4;
		ctx->user_port = (__u32)bpf_htons(cfg->listen_port4);
	} else {
		r.listen_family = AF_INET6;
		ctx->user_ip6[0] = cfg->listen_ip6[0];
		ctx->user_ip6[1] = cfg->listen_ip6[1];
		ctx->user_ip6[2] = cfg->listen_ip6[2];
		ctx->user_ip6[3] = cfg->listen_ip6[3];
		ctx->user_port = (__u32)bpf_htons(cfg->listen_port6);
	}
	bpf_map_update_elem(&conns_by_cookie, &r.cookie, &r, BPF_ANY);
	stat_inc(STAT_REDIRECTED);
	emit(&r, ACT_REDIRECT, PROTO_TCP);
	return 1;
}

// At TCP_CONNECT_CB the source address and port are bound and the SYN is
// not yet sent, so the entry exists before the proxy can accept().
SEC("sockops")
int aigress_sockops(struct bpf_sock_ops *ctx)
{
	if (ctx->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct conn_rec *r = bpf_map_lookup_elem(&conns_by_cookie, &cookie);
	if (!r)
		return 1;

	struct addr_key k = {};
	k.port = (__u16)ctx->local_port; // host order
	if (r->listen_family == AF_INET) {
		// Also right for a v4-mapped AF_INET6 socket: local_ip4 reads
		// the socket's IPv4 source address.
		k.family = AF_INET;
		k.ip[0] = ctx->local_ip4;
	} else {
		k.family = AF_INET6;
		k.ip[0] = ctx->local_ip6[0];
		k.ip[1] = ctx->local_ip6[1];
		k.ip[2] = ctx->local_ip6[2];
		k.ip[3] = ctx->local_ip6[3];
	}
	bpf_map_update_elem(&conns_by_addr, &k, r, BPF_ANY);
	return 1;
}

SEC("cgroup/getpeername4")
int aigress_getpeername4(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct conn_rec *r = bpf_map_lookup_elem(&conns_by_cookie, &cookie);
	if (!r || r->family != AF_INET)
		return 1;
	ctx->user_ip4 = r->orig_ip[0];
	ctx->user_port = (__u32)bpf_htons(r->orig_port);
	return 1;
}

SEC("cgroup/getpeername6")
int aigress_getpeername6(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct conn_rec *r = bpf_map_lookup_elem(&conns_by_cookie, &cookie);
	if (!r)
		return 1;
	if (r->family == AF_INET) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = r->orig_ip[0];
	} else {
		ctx->user_ip6[0] = r->orig_ip[0];
		ctx->user_ip6[1] = r->orig_ip[1];
		ctx->user_ip6[2] = r->orig_ip[2];
		ctx->user_ip6[3] = r->orig_ip[3];
	}
	ctx->user_port = (__u32)bpf_htons(r->orig_port);
	return 1;
}

// Unconnected UDP sends with an explicit address.
SEC("cgroup/sendmsg4")
int aigress_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct config *cfg = get_config();
	if (!cfg || !(cfg->flags & CFG_BLOCK_QUIC))
		return 1;
	if (bpf_ntohs((__u16)ctx->user_port) != 443)
		return 1;
	if (!target_v4(ctx->user_ip4))
		return 1;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (is_excluded(ctx, cfg, pid_tgid >> 32))
		return 1;
	stat_inc(STAT_BLOCKED);
	return 0;
}

SEC("cgroup/sendmsg6")
int aigress_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct config *cfg = get_config();
	if (!cfg || !(cfg->flags & CFG_BLOCK_QUIC))
		return 1;
	if (bpf_ntohs((__u16)ctx->user_port) != 443)
		return 1;
	__u32 dst[4];
	dst[0] = ctx->user_ip6[0];
	dst[1] = ctx->user_ip6[1];
	dst[2] = ctx->user_ip6[2];
	dst[3] = ctx->user_ip6[3];
	int target = is_v4mapped(dst) ? target_v4(dst[3]) : target_v6(dst);
	if (!target)
		return 1;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (is_excluded(ctx, cfg, pid_tgid >> 32))
		return 1;
	stat_inc(STAT_BLOCKED);
	return 0;
}
