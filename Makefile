# mcutie — build, run, test. `make help` lists the targets.
GO        ?= go
BIN       ?= bin/mcutie
STATICCHECK_VERSION ?= v0.8.2
FUZZTIME  ?= 10s
PKGS      := ./...

.PHONY: help build run test test-short bench bench-durable bench-retained-1m bench-churn bench-bin bench-compare bench-devices bench-scaling bench-profiles bench-cluster mosquitto fuzz lint fmt vet staticcheck clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# The version stamped into the binary (mcutie --version, mcutie_build_info):
# the nearest tag, else the commit; the toolchain adds the commit and its time.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build: ## build bin/mcutie (version, commit and build date stamped in)
	$(GO) build -buildvcs=auto -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/mcutie

run: build ## start a broker: MQTT on 127.0.0.1:1883, metrics on 127.0.0.1:9100, data in ./data (flags: make run ARGS="...")
	./$(BIN) $(ARGS)

test: ## all tests with the race detector (what CI runs), then the Kubernetes/Helm checks
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(MAKE) --no-print-directory test-kubernetes

test-short: ## quick tests without the race detector
	$(GO) test -short -count=1 $(PKGS)

bench: ## micro benchmarks with allocation counts
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

bin/durbench: $(shell find bench/durbench codec -name '*.go')
	$(GO) build -o bin/durbench ./bench/durbench

bench-durable: build bin/durbench ## persistent QoS 1 throughput per --durability mode and the memory store (about 1 minute)
	@for d in commit sync none; do echo "== --durability $$d"; bench/durbench/run_pub.sh $$d --durability $$d; done
	@echo "== --store memory"; bench/durbench/run_pub.sh memory --store memory

bench-retained-1m: build bin/durbench ## 1,000,000 retained messages: fill, restart time, memory, a # subscriber receiving all (a few minutes)
	bench/durbench/run_1m.sh

bench-churn: build bin/durbench ## retained replacement + session churn for DUR (default 10m); data dir size over time
	bench/durbench/run_churn.sh

bench-bin: build ## build the load generator bin/mcutie-bench, mochi-mqtt's main bin/mochi (nested module bench/mochi) and the driver bin/compare
	$(GO) build -o bin/mcutie-bench ./bench
	$(GO) build -o bin/compare ./bench/compare
	cd bench/mochi && $(GO) build -o ../../bin/mochi .

mosquitto: ## install Mosquitto (Debian package) if it is missing
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || { \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "installing mosquitto"; $$SUDO apt-get update -q && $$SUDO apt-get install -y -q mosquitto; }

bench-compare: bench-bin mosquitto ## mcutie vs Mosquitto vs mochi-mqtt, same scenarios; writes bench/results/latest.{md,svg,json} (~7 min)
	./bin/compare --suite compare $(COMPARE_FLAGS)

bench-devices: bench-bin mosquitto ## paced load from 1,000 and 10,000 devices (one PUBLISH per write), mcutie vs Mosquitto vs mochi-mqtt; writes bench/results/devices.{md,json} (~25 min)
	./bin/compare --suite devices $(COMPARE_FLAGS)

bench-scaling: bench-bin ## mcutie fan-in/fan-out with --loops 1 and 2; writes bench/results/scaling.{md,json}
	./bin/compare --suite scaling $(COMPARE_FLAGS)

bench-profiles: bench-bin ## mcutie with each --profile; writes bench/results/profiles.{md,json}
	./bin/compare --suite profiles $(COMPARE_FLAGS)

bench-cluster: build ## mcutie clustered on this machine: CPU and latency of a cross-node message vs a local one, 1/2/3-node throughput; writes bench/results/cluster.{md,json} (~5 min)
	$(GO) build -o bin/clusterbench ./bench/clusterbench
	./bin/clusterbench --mcutie $(BIN) --out bench/results $(CLUSTER_FLAGS)

fuzz: ## run every fuzz target for FUZZTIME each (default 10s)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME); \
	  done; done

fmt: ## gofmt -s -w
	gofmt -s -w $$(git ls-files '*.go')

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

lint: vet staticcheck ## gofmt check, go vet, staticcheck (pinned)
	@out=$$(gofmt -s -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt -s would change:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin

.PHONY: bench-redis
bench-redis: build bin/durbench ## bench-durable on --store redis, a private redis-server per mode (~35 s); REDIS_BENCH=1m: the 1M retained fill and restart instead, all: both
	bench/durbench/run_redis.sh $(or $(REDIS_BENCH),pub)

# ---- packaging (docs/install.md) ----
# Release binaries: static (CGO_ENABLED=0), stamped like `make build`,
# named mcutie-<os>-<arch>, with their SHA256SUMS.
RELEASE_TARGETS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
DIST      ?= dist
# The container tool of `make image`: the first of podman, buildah, docker.
CONTAINER ?= $(shell for c in podman buildah docker; do command -v $$c >/dev/null 2>&1 && { echo $$c; break; }; done)
IMAGE     ?= mcutie:$(subst +,-,$(VERSION))

.PHONY: release image test-packaging test-kubernetes
release: ## static binaries for RELEASE_TARGETS (linux, darwin × amd64, arm64) in DIST (dist/) with SHA256SUMS
	@mkdir -p $(DIST) && rm -f $(DIST)/mcutie-* $(DIST)/SHA256SUMS
	@set -e; for t in $(RELEASE_TARGETS); do os=$${t%/*}; arch=$${t#*/}; \
	  echo "== $(DIST)/mcutie-$$os-$$arch ($(VERSION))"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -buildvcs=auto -ldflags "-s -w -X main.version=$(VERSION)" -o $(DIST)/mcutie-$$os-$$arch ./cmd/mcutie; \
	done
	cd $(DIST) && { command -v sha256sum >/dev/null 2>&1 && sha256sum mcutie-* || shasum -a 256 mcutie-*; } > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

image: ## container image IMAGE (mcutie:VERSION) FROM scratch with CONTAINER (podman, buildah or docker): static binary, UID 10001, /data, ports 1883 and 9100
	@[ -n "$(CONTAINER)" ] || { echo "make image: no podman, buildah or docker found (apt-get install -y podman)"; exit 1; }
	rm -rf bin/image && mkdir -p bin/image/data
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags "-s -w -X main.version=$(VERSION)" -o bin/image/mcutie ./cmd/mcutie
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/image/healthcheck ./packaging/healthcheck
	cp packaging/container/passwd packaging/container/group packaging/container/mcutie.yaml bin/image/
	@if [ -r /etc/ssl/certs/ca-certificates.crt ]; then cp /etc/ssl/certs/ca-certificates.crt bin/image/; \
	  else echo "warning: no /etc/ssl/certs/ca-certificates.crt: the image has no CA bundle (https:// plugin endpoints will fail)"; : > bin/image/ca-certificates.crt; fi
	case "$$(basename $(CONTAINER))" in docker) fmt=;; *) fmt="--format docker --layers=false";; esac; \
	  $(CONTAINER) build $$fmt --build-arg VERSION=$(VERSION) -f packaging/Containerfile -t $(IMAGE) bin/image
	@echo "built $(IMAGE); try: $(CONTAINER) run --rm -p 1883:1883 -p 9100:9100 $(IMAGE) --allow-anonymous"

test-packaging: ## the packaging tests including the slow ones: a release build, the image built and run (needs podman, buildah or docker), the Kubernetes/Helm checks
	MCUTIE_PACKAGING_TEST=1 $(GO) test -count=1 -v -run 'TestPackaging|TestCheck' ./e2e ./packaging/...
	$(MAKE) --no-print-directory test-kubernetes KUBERNETES_TESTFLAGS=-v

# packaging/check is a module of its own, so that Helm and the Kubernetes
# API types stay out of the broker's go.mod; its dependencies download
# through the module proxy on first use. No -race: it has no concurrency of
# its own, and instrumenting the Kubernetes libraries doubles a build that
# is already most of its time.
KUBERNETES_TESTFLAGS ?=
test-kubernetes: ## packaging/kubernetes and the Helm chart: rendered by Helm, decoded strictly into the Kubernetes types, the broker run as the StatefulSet runs it
	cd packaging/check && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m $(KUBERNETES_TESTFLAGS) ./...

.PHONY: bench-cluster-probe
bench-cluster-probe: ## the clustering engines compared on loopback (docs/clustering.md; nested module, ~1 min)
	cd bench/clusterprobe && $(GO) run . -n 50000 -rate 10000 -applies 1000

# ---- dashboard (admin/ui, docs/admin.md) ----
.PHONY: dashboard
dashboard: ## build the web dashboard (admin/ui/src → admin/ui/dist, committed and embedded; needs Node.js 20 and npm)
	cd admin/ui && npm ci --no-audit --no-fund && npm run build
	$(GO) test -count=1 ./admin/ui -run TestDistMatchesSources -update-source-hash

.PHONY: bench-dashboard
bench-dashboard: build ## admin API latency and dashboard page load with 10,000 MQTT connections (bench/dashbench, headless Chromium; ~15 s; flags: DASHBENCH_FLAGS="--clients 20000")
	$(GO) run ./bench/dashbench --bin $(BIN) $(DASHBENCH_FLAGS)
