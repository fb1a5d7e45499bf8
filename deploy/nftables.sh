#!/usr/bin/env bash
# Transparent interception with nftables. Usage:
#   deploy/nftables.sh up|down gateway LAN_IF   # redirect TCP 443/80 forwarded from LAN_IF
#   deploy/nftables.sh up|down host             # redirect this host's own outgoing 443/80
# Environment: PORT (default 18443), MARK (aigress upstream_mark, default
# 0x2a), AIGRESS_USER (exclude by owner), BLOCK_QUIC=1 to reject UDP 443.
# Loop prevention and the QUIC rationale: see deploy/iptables.sh.
set -euo pipefail
action=${1:?up|down} mode=${2:?gateway|host}
PORT=${PORT:-18443} MARK=${MARK:-0x2a} TABLE=aigress
down() { nft delete table inet $TABLE 2>/dev/null || true; }
up() {
	down
	local quic="" rules=""
	case "$mode" in
	gateway)
		lan=${3:?gateway mode needs LAN_IF}
		rules="chain prerouting { type nat hook prerouting priority dstnat; policy accept;
			iifname \"$lan\" tcp dport { 80, 443 } redirect to :$PORT
		}"
		[ "${BLOCK_QUIC:-0}" = 1 ] && quic="chain forward { type filter hook forward priority filter; policy accept;
			iifname \"$lan\" udp dport 443 reject # QUIC: browsers fall back to TCP, which aigress sees
		}"
		;;
	host)
		local owner=""
		[ -n "${AIGRESS_USER:-}" ] && owner="meta skuid \"$AIGRESS_USER\" return"
		rules="chain output { type nat hook output priority dstnat; policy accept;
			$owner
			meta mark $MARK return
			oifname \"lo\" return
			tcp dport { 80, 443 } redirect to :$PORT
		}"
		[ "${BLOCK_QUIC:-0}" = 1 ] && quic="chain out_filter { type filter hook output priority filter; policy accept;
			udp dport 443 reject # QUIC: browsers fall back to TCP, which aigress sees
		}"
		;;
	*) echo "mode: gateway or host" >&2; exit 2 ;;
	esac
	nft -f - <<NFT
table inet $TABLE {
	$rules
	$quic
}
NFT
}
case "$action" in up) up "$@" ;; down) down ;; *) echo "usage: $0 up|down gateway LAN_IF | host" >&2; exit 2 ;; esac
