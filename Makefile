# aigress — see README.md. `make run` starts the proxy with the embedded
# default configuration; `make test` installs what the tests need and runs
# the whole suite.
GO        ?= go
BIN       := bin/aigress
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: build run test test-unit fuzz bench lint generate clean setup

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/aigress

run: build
	./$(BIN) run $(ARGS)

# setup installs the tools the tests drive (curl, iptables, nftables,
# tcpdump, python3-requests, chromium, bpftool, the Node SDK). Idempotent.
setup:
	bash test/setup.sh

test: setup build
	bash test/fuzz.sh
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m ./certs/ ./mitm/ ./enforce/
	$(GO) test -count=1 -timeout 12m -p 2 ./...

test-unit:
	$(GO) test -count=1 ./...

fuzz:
	bash test/fuzz.sh $(or $(FUZZTIME),30s)

# bench prints the proxy table (direct vs bare goproxy vs aigress, in one
# run) and the package benchmarks. Not part of `make test`. Loopback only.
bench: build
	@command -v mitmdump >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mitmproxy >/dev/null || echo "bench: mitmproxy not installed, its row is skipped"
	$(GO) run ./test/bench -bin $(BIN)
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./certs/ ./enforce/
	$(GO) test -run '^$$' -bench 'CatalogLookup|ParseClientHello|ParseRequest4KB|StreamDecoderSSE|ScanProse|ScanCode|Scan4KB' ./classify/
	$(GO) test -run '^$$' -bench . -benchtime 20x ./mitm/
	$(GO) test -run '^$$' -bench 'StoreWrite' ./audit/
	$(GO) test -run '^$$' -bench 'ReadPcap' -benchtime 2x ./discover/sniff/
	$(GO) test -run '^$$' -bench 'CacheHit' ./discover/dns/
	$(GO) test -run '^$$' -bench 'Connect' -benchtime 20000x ./ebpf/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$$(go env GOPATH)/bin/staticcheck ./... || { echo "install: go install honnef.co/go/tools/cmd/staticcheck@latest"; exit 1; }

-include ebpf/generate.mk

clean:
	rm -rf bin
