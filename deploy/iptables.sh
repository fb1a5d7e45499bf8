#!/usr/bin/env bash
# Transparent interception with iptables. Usage:
#   deploy/iptables.sh up|down gateway LAN_IF   # redirect TCP 443/80 forwarded from LAN_IF
#   deploy/iptables.sh up|down host             # redirect this host's own outgoing 443/80
# Environment: PORT (aigress transparent_listen port, default 18443),
#   MARK (upstream_mark set in aigress's config, default 0x2a),
#   AIGRESS_USER (optional: exclude by owner instead of mark),
#   BLOCK_QUIC=1 to drop UDP 443.
#
# Loop prevention: aigress's own upstream connections must never be
# redirected back to it. In "host" mode they are excluded by the SO_MARK
# that aigress sets on every upstream socket (config: upstream_mark), or by
# owner when aigress runs as a dedicated user (AIGRESS_USER). In "gateway"
# mode only traffic arriving on LAN_IF is redirected, so aigress's own
# traffic (OUTPUT) is never touched.
#
# BLOCK_QUIC: Chrome and other browsers will not do HTTP/3 (QUIC) through
# an enterprise CA, and QUIC cannot be intercepted here. Dropping UDP 443
# makes them fall back to TCP, which aigress sees.
set -euo pipefail
action=${1:?up|down} mode=${2:?gateway|host}
PORT=${PORT:-18443} MARK=${MARK:-0x2a} CHAIN=AIGRESS
ipt() { iptables "$@"; }
down() {
	for t in nat filter; do
		ipt -t $t -D PREROUTING -j $CHAIN 2>/dev/null || true
		ipt -t $t -D OUTPUT -j $CHAIN 2>/dev/null || true
		ipt -t $t -D FORWARD -j ${CHAIN}_QUIC 2>/dev/null || true
		ipt -t $t -D OUTPUT -j ${CHAIN}_QUIC 2>/dev/null || true
		ipt -t $t -F $CHAIN 2>/dev/null || true
		ipt -t $t -X $CHAIN 2>/dev/null || true
		ipt -t $t -F ${CHAIN}_QUIC 2>/dev/null || true
		ipt -t $t -X ${CHAIN}_QUIC 2>/dev/null || true
	done
}
up() {
	down
	ipt -t nat -N $CHAIN
	case "$mode" in
	gateway)
		lan=${3:?gateway mode needs LAN_IF}
		ipt -t nat -A $CHAIN -i "$lan" -p tcp --dport 443 -j REDIRECT --to-ports "$PORT"
		ipt -t nat -A $CHAIN -i "$lan" -p tcp --dport 80 -j REDIRECT --to-ports "$PORT"
		ipt -t nat -A PREROUTING -j $CHAIN
		;;
	host)
		if [ -n "${AIGRESS_USER:-}" ]; then
			ipt -t nat -A $CHAIN -m owner --uid-owner "$AIGRESS_USER" -j RETURN
		fi
		ipt -t nat -A $CHAIN -m mark --mark "$MARK" -j RETURN
		ipt -t nat -A $CHAIN -o lo -j RETURN
		ipt -t nat -A $CHAIN -p tcp --dport 443 -j REDIRECT --to-ports "$PORT"
		ipt -t nat -A $CHAIN -p tcp --dport 80 -j REDIRECT --to-ports "$PORT"
		ipt -t nat -A OUTPUT -j $CHAIN
		;;
	*) echo "mode: gateway or host" >&2; exit 2 ;;
	esac
	if [ "${BLOCK_QUIC:-0}" = 1 ]; then
		ipt -t filter -N ${CHAIN}_QUIC
		ipt -t filter -A ${CHAIN}_QUIC -p udp --dport 443 -j REJECT --reject-with icmp-port-unreachable
		if [ "$mode" = gateway ]; then ipt -t filter -A FORWARD -j ${CHAIN}_QUIC; else ipt -t filter -A OUTPUT -j ${CHAIN}_QUIC; fi
	fi
}
case "$action" in up) up "$@" ;; down) down ;; *) echo "usage: $0 up|down gateway LAN_IF | host" >&2; exit 2 ;; esac
