# gwpipe — every target works on a fresh machine with Go installed.
SHELL := /bin/bash
GO ?= go
# go.work has no root module: list every module's packages explicitly.
PKGS = $(shell $(GO) list -m -f '{{.Dir}}/...')
BINS := bin/gwpipe bin/fakeintake bin/loadgen
TEST_FLAGS ?= -count=1 -timeout 30m

.PHONY: all build run test test-race bench bench-e2e bench-go lint fmt clean $(BINS)

all: build

build: $(BINS)

$(BINS): bin/%:
	@mkdir -p bin
	$(GO) build -trimpath -o $@ ./services/$*

## run: the pipeline on its embedded defaults with a local fake Datadog
## intake and generated API Gateway traffic (no AWS account, no API key).
## With DD_API_KEY set, logs go to Datadog for real and no fake starts.
run: build
	./scripts/run-local.sh

## test: vet, format check, then every test of every module.
test: lint
	$(GO) test $(TEST_FLAGS) $(PKGS)

test-race:
	$(GO) test -race $(TEST_FLAGS) $(PKGS)

## bench: the end-to-end benchmark, then the per-stage Go benchmarks.
bench: bench-e2e bench-go

bench-e2e: build
	./scripts/bench.sh

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 $(PKGS)

lint:
	$(GO) vet $(PKGS)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin data
