# Setup snippet for the discover/sniff tests (sourced or run by the test setup).
# The end-to-end capture test records with tcpdump inside network namespaces
# (iproute2) while curl talks TLS, HTTP/2 and HTTP to a fake AI host.
missing=""
command -v tcpdump >/dev/null 2>&1 || missing="$missing tcpdump"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
if [ -n "$missing" ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi
