# shellcheck shell=bash
# ebpf: tools for `make generate` (clang, llvm-strip, libbpf headers, bpftool
# for vmlinux.h) and for the bpftool check in ebpf tests. A plain `go build`
# and `go test ./ebpf/` need none of them: the bpf2go output is committed,
# and the test falls back to the cilium/ebpf query API without bpftool.
if ! command -v clang >/dev/null 2>&1 || ! command -v bpftool >/dev/null 2>&1 ||
	! command -v llvm-strip >/dev/null 2>&1 || [ ! -f /usr/include/bpf/bpf_helpers.h ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends clang llvm libbpf-dev bpftool >/dev/null
fi
