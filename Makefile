# gearbridge: the two set-up commands are `make run` and `make test`.
GO      ?= go
BIN     ?= bin/gearbridge
ARGS    ?=
CONFIG  ?=

.PHONY: run build test bench lint fuzz soak demo screenshot clean deb dist

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
	# The server's tests once more on the epoll event loop (the binary's
	# default on Linux; the in-process tests above use goroutines).
	GB_TEST_EVENT_LOOP=1 $(GO) test -race -count=1 ./server

bench:
	bash bench/run.sh

# gofmt, then build and vet for each platform we ship or develop on: the
# epoll event loop on Linux (amd64, arm64), goroutines elsewhere (macOS).
LINT_PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for p in $(LINT_PLATFORMS); do echo "build and vet $$p"; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./... && GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./... || exit 1; done

# Randomized soaks, five runs each (GB_SOAK_SEED=N replays one): the
# scheduler under misbehaving workers and clients, and workers that go
# silent, on both transports (server/soak_test.go, soak_silent_test.go);
# the bridge under random Jenkins faults (integration/bridge_soak_test.go);
# and protocol abuse against the real binary on both transports for
# ABUSE_DURATION each, then a restart on the file it left
# (integration/abuse_soak_test.go).
ABUSE_DURATION ?= 2m
soak:
	GB_SOAK=1 $(GO) test -race -count=5 -run 'TestSoakScheduler|TestSoakSilentWorkers' -v ./server
	GB_SOAK=1 GB_TEST_EVENT_LOOP=1 $(GO) test -race -count=5 -run 'TestSoakScheduler|TestSoakSilentWorkers' -v ./server
	GB_SOAK=1 $(GO) test -race -count=5 -run TestBridge_SoakUnderRandomFaults -v ./integration
	GB_SOAK=1 GB_SOAK_DURATION=$(ABUSE_DURATION) $(GO) test -race -count=1 -timeout 30m -run TestSoakProtocolAbuse -v ./integration

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzReader -fuzztime 60s ./protocol
	$(GO) test -run '^$$' -fuzz FuzzFrames -fuzztime 60s ./protocol
	$(GO) test -run '^$$' -fuzz FuzzDecodeJob -fuzztime 60s ./store
	$(GO) test -run '^$$' -fuzz FuzzParseRecord -fuzztime 60s ./store

# make demo: a Jenkins emulator (bridge/jenkinstest/emulator serving its
# example.yaml) and gearbridge bridging it, until Ctrl-C. DEMO_JENKINS,
# DEMO_PORT and DEMO_HTTP (the status page and metrics; default: the
# Gearman port + 1) move it off ports already taken.
DEMO_JENKINS ?= 127.0.0.1:8080
DEMO_PORT    ?= 4730
DEMO_HTTP    ?= 127.0.0.1:$$(($(DEMO_PORT) + 1))
DEMO_TOKEN   := 11d5e3cf0b1a4f2a9c6e8b7d4a3f2e1c0b
demo: build
	$(GO) build -o bin/jenkins-emulator ./bridge/jenkinstest/emulator
	@dir=$$(mktemp -d); emu=; gb=; \
	trap 'kill $$gb $$emu 2>/dev/null; wait; rm -rf $$dir' EXIT; trap 'exit 0' INT TERM; \
	printf 'masters:\n  - name: jenkins01\n    url: http://$(DEMO_JENKINS)/\n    user: gearbridge\n    token_env: DEMO_JENKINS_TOKEN\n    poll_interval: 1s\n    node_parameter: NODE\n' > $$dir/gearbridge.yaml; \
	bin/jenkins-emulator --scenario bridge/jenkinstest/emulator/example.yaml --listen $(DEMO_JENKINS) > $$dir/emulator.out & emu=$$!; \
	until grep -q serving $$dir/emulator.out; do kill -0 $$emu 2>/dev/null || exit 1; sleep 0.1; done; \
	DEMO_JENKINS_TOKEN=$(DEMO_TOKEN) $(BIN) serve --config $$dir/gearbridge.yaml --port $(DEMO_PORT) --http $(DEMO_HTTP) --durability none & gb=$$!; \
	echo; echo "Jenkins emulator: http://$(DEMO_JENKINS)/  (user gearbridge, API token $(DEMO_TOKEN))"; \
	echo "gearbridge:       127.0.0.1:$(DEMO_PORT)  (config $$dir/gearbridge.yaml)"; \
	echo "Status page:      http://$(DEMO_HTTP)/  (metrics: http://$(DEMO_HTTP)/metrics)"; \
	echo "Submit a build, then watch the result come back as JSON:"; \
	echo "  gearman -p $(DEMO_PORT) -f build:hello -u demo-1 '{\"ZUUL_UUID\": \"demo-1\", \"MESSAGE\": \"hi\"}'"; \
	echo "  gearman -p $(DEMO_PORT) -f build:unit-tests:linux '{\"ZUUL_UUID\": \"demo-2\"}'"; \
	echo "Status: gearadmin -p $(DEMO_PORT) --status    Stop: Ctrl-C"; echo; \
	wait $$gb

# make screenshot: docs/status.png, the picture in the README. Headless
# Chromium (apt-get install chromium) reads the status page of gearbridge
# bridging three emulated Jenkins masters, one of them down
# (TestStatusPage_InHeadlessChromium in integration/).
screenshot:
	CI=true GB_SCREENSHOT=$(CURDIR)/docs/status.png $(GO) test -count=1 -run TestStatusPage_InHeadlessChromium ./integration

# Packaging. The version is gearbridge.Version; nfpm is pinned here and
# fetched through the module proxy (its own go.sum pins its dependencies).
VERSION     := $(shell sed -n 's/^var Version = "\(.*\)"$$/\1/p' gearbridge.go)
NFPM        ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
DIST_ARCHES ?= amd64 arm64
# Reproducible packages and archives: every file dated at the last commit.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

# build/<arch>/gearbridge: a static, stripped linux binary; the man page,
# the same for every architecture, is written once by the host's binary
# from the same flag definitions.
build/%/gearbridge: FORCE
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags='-s -w' -o $@ ./cmd/gearbridge
build/gearbridge.1.gz: FORCE
	@mkdir -p build
	$(GO) build -o build/host/gearbridge ./cmd/gearbridge
	build/host/gearbridge man > build/gearbridge.1
	gzip -9nf build/gearbridge.1
build/THIRD_PARTY_LICENSES: FORCE
	@mkdir -p build
	packaging/third-party-licenses.sh > $@
FORCE:

# make deb: dist/gearbridge_<version>_<arch>.deb (DEB_ARCH=arm64 for arm64);
# packaging/test-deb.sh installs, runs and purges it.
deb: build/$(DEB_ARCH)/gearbridge build/gearbridge.1.gz build/THIRD_PARTY_LICENSES
	@mkdir -p dist build/deb
	cp build/$(DEB_ARCH)/gearbridge build/gearbridge.1.gz build/THIRD_PARTY_LICENSES build/deb/
	VERSION=$(VERSION) GOARCH=$(DEB_ARCH) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(NFPM) package --config packaging/nfpm.yaml --packager deb \
	  --target dist/gearbridge_$(VERSION)_$(DEB_ARCH).deb

# make dist: dist/gearbridge-<version>-linux-<arch>.tar.gz for each of
# DIST_ARCHES, and their sums in dist/SHA256SUMS (check: sha256sum -c).
dist: $(foreach a,$(DIST_ARCHES),build/$(a)/gearbridge) build/gearbridge.1.gz build/THIRD_PARTY_LICENSES
	@set -e; mkdir -p dist; rm -f dist/SHA256SUMS; for a in $(DIST_ARCHES); do \
	  name=gearbridge-$(VERSION)-linux-$$a; stage=build/stage/$$name; rm -rf $$stage; mkdir -p $$stage; \
	  cp build/$$a/gearbridge build/gearbridge.1.gz build/THIRD_PARTY_LICENSES LICENSE CHANGELOG.md README.md $$stage/; \
	  cp packaging/gearbridge.service packaging/gearbridge.yaml packaging/logrotate $$stage/; \
	  tar -C build/stage --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner \
	    -cf dist/$$name.tar $$name; \
	  gzip -9nf dist/$$name.tar; echo dist/$$name.tar.gz; \
	done; cd dist && sha256sum $(foreach a,$(DIST_ARCHES),gearbridge-$(VERSION)-linux-$(a).tar.gz) > SHA256SUMS && cat SHA256SUMS

clean:
	rm -rf bin build dist
