#!/usr/bin/env bash
# Installs what the tests drive, on a fresh Debian machine, as root.
# Idempotent and quick when everything is present. Each package's own needs
# are in test/setup.d/*.sh, sourced here after the common tools.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

apt_updated=""
apt_install() {
	if [ -z "$apt_updated" ]; then
		apt-get update -qq
		apt_updated=1
	fi
	apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
need=""
command -v curl >/dev/null || need="$need curl"
command -v ip >/dev/null || need="$need iproute2"
command -v iptables >/dev/null || need="$need iptables"
command -v nft >/dev/null || need="$need nftables"
command -v tcpdump >/dev/null || need="$need tcpdump"
/usr/bin/python3 -c 'import requests' 2>/dev/null || need="$need python3-requests"
command -v node >/dev/null || need="$need nodejs npm"
command -v chromium >/dev/null || need="$need chromium fonts-dejavu-core"
command -v bpftool >/dev/null || need="$need bpftool"
if [ -n "$need" ]; then
	echo "setup: installing$need"
	apt_install $need
fi
# Package snippets (they re-check and are no-ops when satisfied).
for s in test/setup.d/*.sh; do
	# shellcheck disable=SC1090
	. "$s"
done

# The official Node SDK for the real-client tests (versions pinned in
# test/node/package-lock.json).
if [ ! -d test/node/node_modules/openai ] || [ ! -d test/node/node_modules/undici ]; then
	echo "setup: npm ci in test/node"
	(cd test/node && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: ok"
