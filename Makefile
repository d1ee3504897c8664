# credgate: build, run and test. `make` (or `make help`) lists the targets.
# Needs GNU make, bash and Go; `make test` also curl (tests/docs runs the documented examples)
# and promtool and redis-server (Debian's prometheus and redis-server packages, which it
# installs with apt-get when run as root; the tests start and stop redis-server themselves).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

GO        ?= go
BIN       := bin/credgate
SIMS      := bin/simulators
MANIFEST  := xcaddy.json
# The config `make run` serves; the demo secrets below match it and the simulators' seeds.
CADDYFILE ?= caddyfile-examples/local.Caddyfile
# The simulators' ports (tests/cmd/simulators), which `make run` waits for.
SIM_PORTS ?= 9101 9102 9103 9104
# The race detector needs cgo (a C compiler); `make test RACE=` runs without it.
RACE      ?= -race
# How long `make fuzz` fuzzes each target, and how long it may spend minimizing one input
# (Go's default, 60s, would eat a short run whole).
FUZZTIME         ?= 10s
FUZZMINIMIZETIME ?= 2s
# `make bench`'s load benchmark: the length of one round, the rounds per row, and the
# closed-loop workers (concurrent requests) of its loaded rows.
BENCH_ROUND   ?= 3s
BENCH_ROUNDS  ?= 5
BENCH_WORKERS ?= 8

DEMO_ENV := \
	PALISADE_CLIENT_ID=local-client-id \
	PALISADE_CLIENT_SECRET=local-client-secret \
	ZSTACK_TOKEN=local-zstack-token \
	PREFACTOR_TOKEN=local-prefactor-token \
	DIGICERT_PARTNER_KEY=local-digicert-key \
	DIGICERT_PARTNER_B_KEY=local-digicert-other-key

# rwildcard lists the files under a directory that match patterns, recursively (hidden
# directories such as .git are skipped).
rwildcard = $(foreach d,$(wildcard $(1:=/*)),$(call rwildcard,$d,$2) $(filter $(subst *,%,$2),$d))

# What goes into bin/credgate: the manifest, the Go sources outside tests/ (test files and
# the test kits, the vendors' simulators among them, excluded) and every go.mod/go.sum,
# tools/ included.
TEST_KITS := $(wildcard ./adapters/*/*test/*.go ./module/provider/providertest/*.go)
BUILD_INPUTS := $(MANIFEST) \
	$(filter-out ./tests/% %_test.go $(TEST_KITS),$(call rwildcard,.,*.go */go.mod */go.sum))

.PHONY: help build run test bench fuzz clean

help: # list the targets
	@echo 'Targets:'
	@echo '  build  build $(BIN) (Caddy with credgate) from $(MANIFEST) with xcaddy (tools/build)'
	@echo '  run    start the vendor simulators and the gateway on http://localhost:8080'
	@echo '         with $(CADDYFILE), ready once the gateway answers; Ctrl-C stops both'
	@echo '  test   gofmt check, go vet, go test $(RACE) -count=1 ./..., go vet in tools/'
	@echo '  bench  the micro benchmarks (go test -bench in module/ and adapters/), then the load'
	@echo '         benchmark (tests/bench/cmd/loadbench: direct, reverse_proxy and the gateway in'
	@echo '         front of one stub; resolution, breaker, scale; a 10,000-item batch; protecting'
	@echo '         the vendors; shared state on Redis) reading them: one report ending in'
	@echo '         name=value lines, about 6 minutes; BENCH_ROUND=$(BENCH_ROUND)'
	@echo '         BENCH_ROUNDS=$(BENCH_ROUNDS) BENCH_WORKERS=$(BENCH_WORKERS)'
	@echo '  fuzz   run every fuzz target (go test -fuzz), one after another, FUZZTIME each'
	@echo '         (now $(FUZZTIME)): make fuzz FUZZTIME=1m'
	@echo '  clean  remove bin/'
	@echo '  help   this list'

build: $(BIN) # build bin/credgate (only when a source is newer than it)

$(BIN): $(BUILD_INPUTS)
	@echo '==> building $@ from $(MANIFEST)'
	$(GO) -C tools run ./build -manifest '$(CURDIR)/$(MANIFEST)' -output '$(CURDIR)/$@'

# scripts/run-local.sh says "ready" only once the gateway answers; a config that fails exits
# non-zero with the gateway's last lines (tests/runlocal tests it).
run: $(BIN) # simulators and gateway; ready once the gateway answers
	$(GO) build -o $(SIMS) ./tests/cmd/simulators
	@export $(DEMO_ENV); SITE=localhost:8080 SIM_PORTS='$(SIM_PORTS)' \
		scripts/run-local.sh '$(BIN)' '$(CADDYFILE)' '$(SIMS)'

test: # formatting, vet, race tests, vet of tools/
	@if ! command -v promtool >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo '==> installing promtool (Debian package prometheus) for the alerting rules tests'; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
		else \
			echo 'make test: promtool is missing (tests/monitoring runs promtool test rules); install it:' >&2; \
			echo '    sudo apt-get update && sudo apt-get install -y prometheus' >&2; exit 1; \
		fi; \
	fi
	@if ! command -v redis-server >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo '==> installing redis-server (Debian package redis-server) for the shared state tests'; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
		else \
			echo 'make test: redis-server is missing (tests/fleet runs gateways that share a real Redis); install it:' >&2; \
			echo '    sudo apt-get update && sudo apt-get install -y redis-server' >&2; exit 1; \
		fi; \
	fi
	@echo '==> gofmt'
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt: these files need formatting (gofmt -w):"; echo "$$unformatted"; exit 1; fi
	@echo '==> go vet ./...'
	$(GO) vet ./...
	@echo '==> go test $(RACE) -count=1 ./...'
	$(GO) test $(RACE) -count=1 ./...
	@echo '==> go vet ./... (tools/)'
	$(GO) -C tools vet ./...

# bench runs the testing.B benchmarks into a temporary file (shown as they run), then the load
# benchmark, which includes them in its report: a table, then a last block of name=value lines.
bench: # micro benchmarks, then the load benchmark
	@micro=$$(mktemp -t credgate-bench.XXXXXX); trap 'rm -f "$$micro"' EXIT; \
	echo "==> go test -run '^\$$' -bench . -benchmem -count 1 ./module/... ./adapters/..."; \
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./module/... ./adapters/... </dev/null | tee "$$micro"; \
	echo '==> go run ./tests/bench/cmd/loadbench -micro <that output>'; \
	$(GO) run ./tests/bench/cmd/loadbench -micro "$$micro" \
		-round '$(BENCH_ROUND)' -rounds '$(BENCH_ROUNDS)' -workers '$(BENCH_WORKERS)' </dev/null

# fuzz finds the targets itself: every Fuzz function that `go test -list` reports in a package
# with one in its test files, so that a new target needs no change here. go test -fuzz takes one
# target at a time. A failing input lands in the package's testdata/fuzz/<FuzzName>/, where
# plain go test replays it. It fails when any target fails, after running them all.
fuzz: # every fuzz target, FUZZTIME each
	@failed=(); count=0; \
	while read -r pkg dir; do \
		grep -qs '^func Fuzz' "$$dir"/*_test.go || continue; \
		if ! list=$$($(GO) test -list '^Fuzz' "$$pkg" </dev/null); then \
			printf '%s\n' "$$list"; failed+=("$$pkg (does not build)"); continue; \
		fi; \
		for target in $$(grep '^Fuzz' <<<"$$list" || true); do \
			count=$$((count + 1)); \
			echo "==> $$target in $$pkg, $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime '$(FUZZTIME)' \
				-fuzzminimizetime '$(FUZZMINIMIZETIME)' "$$pkg" </dev/null || failed+=("$$target in $$pkg"); \
		done; \
	done < <($(GO) list -f '{{.ImportPath}} {{.Dir}}' ./...); \
	if (( count == 0 )); then echo 'make fuzz: no fuzz target found' >&2; exit 1; fi; \
	if (( $${#failed[@]} > 0 )); then \
		echo "make fuzz: $${#failed[@]} of $$count failed:" >&2; printf '    %s\n' "$${failed[@]}" >&2; exit 1; \
	fi; \
	echo "make fuzz: $$count targets, $(FUZZTIME) each, no failure"

clean: # remove the binaries
	rm -rf bin
