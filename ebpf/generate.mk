# Included by the top-level Makefile. Regenerates the committed bpf2go output
# (ebpf/redirect_bpfel.go, ebpf/redirect_bpfel.o) from ebpf/bpf/redirect.c.
# Needs clang, llvm-strip, libbpf-dev and bpftool (test/setup.d/ebpf.sh).
# ebpf/vmlinux.h is made from the running kernel's BTF and is not committed.

.PHONY: generate
generate:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > ebpf/vmlinux.h
	go generate ./ebpf/
