# gearbridge: the two set-up commands are `make run` and `make test`.
GO      ?= go
BIN     ?= bin/gearbridge
ARGS    ?=
CONFIG  ?=

.PHONY: run build test bench lint fuzz demo clean

build:
	$(GO) build -o $(BIN) ./cmd/gearbridge

# The server on port 4730 with its bbolt store in ./gearbridge.db (and the
# Jenkins bridge when CONFIG names a file with masters).
run: build
	$(BIN) serve $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

# Every test, with the race detector. Tests that need gearmand, gearman or
# gearadmin skip when they are missing, but fail under CI=true.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

bench:
	bash bench/run.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzReader -fuzztime 60s ./protocol

clean:
	rm -rf bin
