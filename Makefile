# Lookalike — the two commands that matter:
#   make run    set up, build, and serve http://localhost:8080 (indexes a demo catalog when empty)
#   make test   set up and pass every test (what .ci/run calls)
SHELL := /bin/bash
GO ?= go
BIN := bin/lookalike
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# An execution count, not a duration: Go 1.26 reports a spurious "context deadline exceeded" when a
# duration budget expires mid-execution (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 50000x
export CGO_ENABLED := 1

.PHONY: all setup setup-test build run test vet fmt-check unit race fuzz image bench clean

all: build

setup:
	@scripts/setup

setup-test:
	@scripts/setup --test

build: setup
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/lookalike

run: build
	$(BIN) serve

test: setup-test vet fmt-check unit race fuzz image

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -count=1 -timeout 30m ./...

race:
	$(GO) test -count=1 -race -timeout 15m -run 'Stress|Concurrent' ./index/ ./api/

# The container image: built and started where docker or podman can, else its steps run without
# a container (scripts/image-check says which). The Dockerfile lint is a unit test (internal/archtest).
image:
	@scripts/image-check

# Short fuzz runs of every decoder and parser; long runs: make fuzz FUZZTIME=2000000x
FUZZ_TARGETS := \
	./embed/:FuzzDecode \
	./index/:FuzzDecodeRecord ./index/:FuzzDecodeTrash ./index/:FuzzDecodeLists ./index/:FuzzParseFilter ./index/:FuzzFilterFromJSON ./index/:FuzzUnmarshalSQ8 ./index/:FuzzParseSnapHead \
	./api/:FuzzParseSearch ./api/:FuzzParseItem ./api/:FuzzBatch ./api/:FuzzFeedbackRequest \
	./embed/project/:FuzzUnmarshal ./api/:FuzzTuneRequest \
	./internal/ingest/:FuzzManifest ./internal/edit/:FuzzMergePatch ./eval/:FuzzIdx ./cluster/:FuzzDecodeMutation
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

bench: build
	$(BIN) bench embed ../shared/datasets/ukbench
	$(BIN) bench search --n 100000

clean:
	rm -rf bin
