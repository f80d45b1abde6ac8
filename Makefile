# rpm-ingestd. The two commands: `make run` (try it on this machine) and `make test` (everything CI runs).
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := bin/rpm-ingestd
CONFIG    ?= deploy/config.dev.yml
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
GOFILES   := $(shell find cmd pkg internal e2e -name '*.go' 2>/dev/null)
SCRIPTS   := $(shell git ls-files '*.sh' 2>/dev/null)

.PHONY: help deps deps-run build run test fmtcheck unit docs fuzz e2e bench bench-go rules lint rpm rpm-noselinux selinux clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

deps: ## install the system packages the tests need (apt-get or dnf; as root)
	@deploy/deps.sh test

deps-run: ## install the system packages the daemon needs (Go, createrepo_c)
	@deploy/deps.sh run

build: $(BIN) ## build bin/rpm-ingestd

$(BIN): $(GOFILES) go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/rpm-ingestd

run: deps-run build ## build and start the embedded default: uploads and the repo on http://127.0.0.1:5000, data in ./var (CONFIG=file for another)
	@mkdir -p var/repo var/spool
	$(BIN) -c $(CONFIG)

test: deps fmtcheck ## install what the tests need, then run every test (unit, integration, end-to-end, selinux, unit file)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m ./cmd/... ./pkg/... ./internal/...
	$(MAKE) --no-print-directory rules
	$(MAKE) --no-print-directory fuzz
	$(GO) test -count=1 -timeout 15m ./e2e/...
	$(MAKE) --no-print-directory selinux
	deploy/verify-unit.sh

unit: ## unit and integration tests only (no nginx end-to-end)
	$(GO) test -race -count=1 ./cmd/... ./pkg/... ./internal/...

docs: ## the docs checks: config keys and routes documented, links resolve, the README quick start runs
	$(GO) test -count=1 ./internal/doccheck/...
	$(GO) test -count=1 -run 'TestReadmeQuickStart|TestQuickstartPortRewrite|TestDocsNginxExamples' ./e2e/...

.PHONY: rules
rules: ## check the Prometheus alert rules and run their unit tests (promtool)
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

# One bounded run per fuzz target (go test -fuzz takes one target in one package at a time). The seed corpora in
# testdata/fuzz already replay in every plain go test; an input that fails here is written there: fix, then commit it.
FUZZTIME ?= 10s
FUZZ      = GO=$(GO) deploy/fuzz.sh

fuzz: ## run each fuzz target for FUZZTIME (10s): rpm parsing, signatures, htpasswd, spool paths, primary.xml
	$(FUZZ) FuzzGuard ./pkg/rpmmeta/ $(FUZZTIME)
	$(FUZZ) FuzzInspect ./pkg/rpmmeta/ $(FUZZTIME)
	$(FUZZ) FuzzParseSignature ./pkg/signature/ $(FUZZTIME)
	$(FUZZ) FuzzParseHtpasswd ./pkg/auth/ $(FUZZTIME)
	$(FUZZ) FuzzSpoolPath ./pkg/ingest/ $(FUZZTIME)
	$(FUZZ) FuzzScanPrimary ./pkg/indexer/ $(FUZZTIME)

e2e: build ## the end-to-end suite only
	$(GO) test -count=1 -v -timeout 15m ./e2e/...

bench: deps build ## the daemon through nginx against its floors and createrepo_c, into BENCHMARKS.md (BENCH_QUICK=1: < 2 min)
	$(GO) build -o bin/rpm-ingestd-bench ./cmd/rpm-ingestd-bench
	bin/rpm-ingestd-bench -bin $(BIN) -var var/bench -out BENCHMARKS.md

bench-go: ## the Go micro-benchmarks (ingest, inspect, createrepo flags, coalescing), as ratios against floors
	$(GO) test -run '^$$' -bench . -benchtime 5x ./pkg/...

fmtcheck: ## fail on Go files gofmt would change
	@test -z "$$(gofmt -l $(GOFILES))" || { gofmt -l $(GOFILES); echo "gofmt: files above need formatting"; exit 1; }

lint: fmtcheck ## gofmt, go vet, staticcheck, shellcheck
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.6.1 ./...
	shellcheck $(SCRIPTS)

selinux: ## build selinux/rpm-ingestd.pp with the distribution's policy devel Makefile
	selinux/build.sh

rpm: build selinux ## build the rpm-ingestd RPM (with the SELinux module) into dist/
	deploy/rpm/build-rpm.sh --selinux=yes $(VERSION)

rpm-noselinux: build ## the RPM without the SELinux module (hosts without policy devel files)
	deploy/rpm/build-rpm.sh --selinux=no $(VERSION)

clean: ## remove build output and the `make run` data in ./var
	rm -rf bin dist var selinux/build selinux/*.pp
