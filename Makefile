# Odometer — see README.md. `make help` lists the targets.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 60s

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

.PHONY: run
run: ## run the server on the embedded store under ./data (127.0.0.1:8888)
	$(GO) run ./cmd/odometer serve

.PHONY: build
build: ## build bin/odometer
	$(GO) build -o bin/odometer ./cmd/odometer

.PHONY: test
test: ## run every test with the race detector (PostgreSQL's too when ODOMETER_TEST_POSTGRES is set)
	@test -n "$$ODOMETER_TEST_POSTGRES" || echo "note: ODOMETER_TEST_POSTGRES is not set, so the PostgreSQL tests are skipped; to run them: export ODOMETER_TEST_POSTGRES=\$$(scripts/postgres.sh start .postgres)"
	$(GO) test -race -timeout 20m $(PKGS)

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

.PHONY: bench
bench: ## Go micro-benchmarks (store, decoder, aggregation)
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

.PHONY: bench-e2e
bench-e2e: ## end-to-end HTTP benchmarks against Odometer and the PostgreSQL baseline (bench/README.md)
	bash bench/run.sh

.PHONY: bench-bodies
bench-bodies: build ## server memory with 64 clients sending 16 MiB bodies (bench/bodies)
	$(GO) run ./bench/bodies --bin bin/odometer

.PHONY: bench-soak
bench-soak: ## memory under 10 minutes of sustained ingestion: RSS every 30 s, PASS if flat after warm-up (bench/README.md)
	bash bench/soak.sh

.PHONY: bench-queries
bench-queries: ## usage queries at 200K, 2M and 20M stored events: one customer, all customers, per-customer totals (bench/README.md)
	bash bench/queries.sh

.PHONY: fuzz
fuzz: ## fuzz the event decoders, the JSONPath and decimal fast paths, JSON output and the event-log key codec, FUZZTIME each (default 60s)
	$(GO) test -run '^$$' -fuzz FuzzDecodeEvents -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz FuzzDecodeFast -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz FuzzPathFind -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz FuzzParsePlainValue -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz FuzzAppendJSONString -fuzztime $(FUZZTIME) ./api/
	$(GO) test -run '^$$' -fuzz FuzzKeyEncoding -fuzztime $(FUZZTIME) ./eventlog/

.PHONY: test-browser
test-browser: ## dashboard tests in headless Chromium (Debian's chromium package); screenshots in dashboard/e2e/artifacts
	bash dashboard/e2e/run.sh

.PHONY: compat
compat: ## check OpenMeter compatibility with the published @openmeter/sdk npm package
	bash compat/openmeter-sdk/run.sh
