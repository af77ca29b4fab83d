# gwpipe — every target works on a fresh machine with Go installed.
SHELL := /bin/bash
GO ?= go
# go.work has no root module: list every module's packages explicitly.
PKGS = $(shell $(GO) list -m -f '{{.Dir}}/...')
BINS := bin/gwpipe bin/fakeintake bin/loadgen
TEST_FLAGS ?= -count=1 -timeout 30m
STATICCHECK_VERSION := v0.8.2
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
# Imports in three groups: standard library, third party, gwpipe's own.
GOIMPORTS_VERSION := v0.39.0
GOIMPORTS ?= $(GO) run golang.org/x/tools/cmd/goimports@$(GOIMPORTS_VERSION)
# gwpipe version: the release (git describe), the revision and the build
# time; without them (go build -buildvcs=false, no git) the build info Go
# records answers, or "dev".
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
BUILD_TIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS = -X main.version=$(VERSION) -X main.revision=$(REVISION) -X main.buildTime=$(BUILD_TIME)

.PHONY: all build run test test-race bench bench-e2e bench-memory bench-replay bench-filters bench-go pgo lint fmt clean $(BINS)

all: build

build: $(BINS)

$(BINS): bin/%:
	@mkdir -p bin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./services/$*

## run: gwpipe demo — the pipeline on its embedded defaults, fed by generated
## API Gateway traffic and delivering to a local fake Datadog intake, all in
## one process (no AWS account, no API key). In a terminal it shows the
## live view of gwpipe top (q quits); otherwise a flow line every 5 s. q,
## Ctrl-C or closing the terminal drains, prints the summary and stops
## everything. Variables:
##   REAL=1         deliver the synthetic traffic to Datadog (DD_API_KEY,
##                  DD_SITE) instead of the fake intake
##   RATE=N         events per second (default 5000)
##   FIREHOSE_ADDR, ADMIN_ADDR, INTAKE_ADDR   listen addresses (127.0.0.1:8088,
##                  :8089, :8080)
run: bin/gwpipe
	./bin/gwpipe demo $(strip $(DEMO_FLAGS))

ifneq ($(filter-out 0 1 true false yes no,$(REAL)),)
$(error REAL=$(REAL): use REAL=1 to deliver to Datadog, or leave it unset)
endif
DEMO_FLAGS = $(if $(filter 1 true yes,$(REAL)),--real) \
	$(if $(RATE),--rate '$(RATE)') \
	$(if $(FIREHOSE_ADDR),--firehose-listen '$(FIREHOSE_ADDR)') \
	$(if $(ADMIN_ADDR),--admin-listen '$(ADMIN_ADDR)') \
	$(if $(INTAKE_ADDR),--intake-listen '$(INTAKE_ADDR)')

## test: vet, format check, then every test of every module.
test: lint
	$(GO) test $(TEST_FLAGS) $(PKGS)

test-race:
	$(GO) test -race $(TEST_FLAGS) $(PKGS)

## bench: the end-to-end benchmark (with the floor of the same work and
## gwpipe's ratio to it), peak memory under hostile loads, replay from S3
## (moto), then the per-stage Go benchmarks.
bench: bench-e2e bench-memory bench-replay bench-go

bench-e2e: build
	./scripts/bench.sh

bench-memory: build
	./scripts/bench-memory.sh

## bench-replay: gwpipe replay from S3 (moto_server) of one large Firehose
## archive object (2 GiB decompressed) and of many small objects: events per
## CPU-second, peak RSS and RSS over time, CPU over wall time.
bench-replay: build
	./scripts/bench-replay.sh

## bench-filters: end-to-end events per CPU-second with the log filters
## (redact ip and email, an exclude expression, a sample rule) against none.
bench-filters: build
	./scripts/bench-filters.sh

## pgo: refresh services/gwpipe/default.pgo, the profile go build uses for
## profile-guided optimisation of gwpipe (scripts/pgo.sh).
pgo:
	./scripts/pgo.sh

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 $(PKGS)

## lint: go vet, staticcheck (pinned, fetched through the Go module proxy on
## first use) over every module, and the gofmt check.
lint:
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	@misgrouped=$$($(GOIMPORTS) -local github.com/gwpipe/gwpipe -l $$(git ls-files '*.go')); \
	if [ -n "$$misgrouped" ]; then echo "imports to group (standard, third party, github.com/gwpipe/gwpipe):"; echo "$$misgrouped"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')
	$(GOIMPORTS) -local github.com/gwpipe/gwpipe -w $$(git ls-files '*.go')

clean:
	rm -rf bin data
