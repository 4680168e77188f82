# The two commands of the README are `go run ./cmd/spyagency demo` and `make test`.
GO ?= go

.PHONY: test vet bench fuzz build

# Everything CI runs: vet, then every test with the race detector. The end-to-end tests drive the
# simulator for simulated days; under the race detector on a busy 2-core machine one package can pass
# go test's default 10-minute limit, so the limit is raised (CI's own limit is 90 minutes).
test: vet
	$(GO) test -race -count=1 -timeout 40m ./...

vet:
	$(GO) vet ./...

# -buildvcs=true stamps the commit into the binary for `spyagency version`, whatever GOFLAGS says (the
# build machines set -buildvcs=false).
build:
	$(GO) build -buildvcs=true -o spyagency ./cmd/spyagency

# The benchmarks of docs/benchmarks.md (one core where the target says so).
bench:
	$(GO) test -run='^$$' -bench=Reconcile -benchmem -cpu=1 -count=6 ./internal/reconcile/
	$(GO) test -run='^$$' -bench='AppendObservations$$' -benchtime=60x -cpu=1 -count=6 ./internal/store/sqlite/

# A short run of every fuzz target (go test runs their seed corpora on every `make test`).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=15s $$pkg || exit 1; \
	  done; \
	done
