# The two commands of the README are `go run ./cmd/spyagency demo` and `make test`.
GO ?= go

.PHONY: test vet bench fuzz build

# Everything CI runs: vet, then every test with the race detector.
test: vet
	$(GO) test -race -count=1 -timeout 30m ./...  # the end-to-end worlds take minutes under -race

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
