# credgate — run `make help` for the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BIN            := $(CURDIR)/bin
GO             ?= go
VERSION        ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT         ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS        := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Pinned tools, installed into bin/ through the Go module proxy.
CONTROLLER_GEN_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION  ?= v2.15.0
KO_VERSION             ?= v0.19.1
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT  := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KO             := $(BIN)/ko-$(KO_VERSION)

# The control plane of the end-to-end tests, built from source by the test/tools module.
KUBE_VERSION  := $(shell awk '$$1 == "k8s.io/kubernetes" {print $$2}' test/tools/go.mod)
KUBE_LDFLAGS  := -s -w $(foreach v,component-base/version client-go/pkg/version,-X k8s.io/$(v).gitVersion=$(KUBE_VERSION) \
                 -X k8s.io/$(v).gitTreeState=clean) -X k8s.io/component-base/version.gitMajor=1 \
                 -X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION)))
CONTROL_PLANE := $(BIN)/etcd $(BIN)/kube-apiserver $(BIN)/kube-controller-manager
# The workload controllers of the end-to-end tests, each built from source by its own tools
# module (their dependencies are not credgate's), with the CRDs their pinned modules ship.
WORKLOAD_CONTROLLERS := $(BIN)/kuberay-operator $(BIN)/training-operator

FUZZTIME ?= 30s
BENCHTIME ?= 2s

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

# make run POLICIES=dir has credgate serve the policies of dir, reloaded as they change.
# WORKDIR, recreated at each start, keeps what the run wrote after it stops: the audit log
# (credgate audit WORKDIR/audit.log), credgate serve's log, every process's, the certificates.
POLICIES ?=
WORKDIR  ?= .run
# A missing POLICIES directory stops make run before anything is built or started.
ifneq ($(and $(POLICIES),$(filter run,$(MAKECMDGOALS))),)
ifeq ($(wildcard $(POLICIES)/.),)
$(error POLICIES=$(POLICIES): no such directory)
endif
endif

.PHONY: run
run: control-plane build ## A local cluster with credgate: apply the examples, one Job admitted, one refused; serve until Ctrl-C (ONCE=1 exits); POLICIES=dir serves your policies, reloaded on change; the audit log and logs stay in .run/ (WORKDIR).
	$(GO) run ./test/demo --workdir '$(WORKDIR)' $(if $(ONCE),--once) $(if $(POLICIES),--policies '$(POLICIES)')

.PHONY: eval
eval: build ## Evaluate the bundled examples offline (credgate eval): what credgate injects, what it refuses.
	@echo "== credgate eval -f examples/training-job.yaml --credentials examples/credentials.yaml"
	@rc=0; $(BIN)/credgate eval -f examples/training-job.yaml --credentials examples/credentials.yaml 2>&1 || rc=$$?; \
	  echo "== exit code $$rc (0: admitted)"; [ $$rc -eq 0 ]
	@echo
	@echo "== credgate eval -f examples/refused-job.yaml --credentials examples/credentials.yaml"
	@rc=0; $(BIN)/credgate eval -f examples/refused-job.yaml --credentials examples/credentials.yaml 2>&1 || rc=$$?; \
	  echo "== exit code $$rc (1: refused)"; [ $$rc -eq 1 ]

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code for the API types; the webhook configurations (kustomize, Helm) and docs/workloads.md's table from the kinds credgate knows.
	$(CONTROLLER_GEN) object paths=./api/...
	$(GO) test ./webhook/ -run '^TestConfigurationsGenerated$$' -update >/dev/null
	$(GO) test ./workload/ -run '^TestDocsListKinds$$' -update >/dev/null

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD into manifests/crd.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=manifests/crd
	cp manifests/crd/credgate.dev_*.yaml charts/credgate/crds/

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: $(GOLANGCI_LINT) ## gofmt, go vet, golangci-lint (both modules), opa fmt + strict compile of the policies, generated files.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...
	cd test/image && $(GO) vet ./... && $(GOLANGCI_LINT) run --allow-parallel-runners ./...
	$(GO) run ./cmd/credgate policy check policies
	$(GO) run ./cmd/credgate policy check examples/policies
	@$(MAKE) --no-print-directory verify-generated

.PHONY: verify-generated
verify-generated: generate manifests ## Regenerate; in CI (CI=true), fail if the committed files were stale.
	@if [ -n "$${CI:-}" ]; then git diff --exit-code -- api manifests/crd charts/credgate/crds manifests/webhook charts/credgate/templates/webhooks.yaml docs/workloads.md || \
	  { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }; fi

##@ Test

.PHONY: test
test: verify-generated control-plane $(BIN)/minio $(WORKLOAD_CONTROLLERS) build ## Run every test: unit, Rego, handler, fuzz seeds, golden files, end to end, S3/STS, the image.
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/ ./tempcreds/
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -tags e2e ./test/e2e/ ./tempcreds/
	$(MAKE) --no-print-directory image-test

.PHONY: e2e
e2e: control-plane $(BIN)/minio $(WORKLOAD_CONTROLLERS) build ## Run the end-to-end tests only (etcd, kube-apiserver, the Job controller, KubeRay, the training operator, credgate serve and refresher, MinIO).
	$(GO) test -count=1 -tags e2e ./test/e2e/ -v

.PHONY: golden
golden: ## Regenerate golden files under testdata/ (review the diff): mutate, eval and the webhook's responses.
	$(GO) test ./mutate/... ./eval/... -update
	$(GO) test ./webhook/ -run TestHandler -update

.PHONY: fuzz
fuzz: ## Fuzz the admission handler, its decoder (against the API server's), the patch (against a generic diff) and its encoding (against encoding/json), and the policy input's JSON parser, FUZZTIME each (default 30s).
	$(GO) test ./webhook/ -run '^$$' -fuzz FuzzHandler -fuzztime $(FUZZTIME)
	$(GO) test ./webhook/ -run '^$$' -fuzz FuzzDecodeJSON -fuzztime $(FUZZTIME)
	$(GO) test ./mutate/ -run '^$$' -fuzz FuzzPatch -fuzztime $(FUZZTIME)
	$(GO) test ./mutate/ -run '^$$' -fuzz FuzzEncodeKnown -fuzztime $(FUZZTIME)
	$(GO) test ./policies/ -run '^$$' -fuzz FuzzParseJSON -fuzztime $(FUZZTIME)

.PHONY: bench
bench: ## Benchmark the admission path, policy evaluation, the patch encoding and the durable audit write; results in bench/results.txt.
	@mkdir -p bench
	# Five rounds, each running every benchmark once: a benchmark and the floor it is compared
	# with run minutes apart at most, not one's five runs before the other's.
	for round in 1 2 3 4 5; do $(GO) test -p 1 ./webhook/ ./policies/ ./mutate/ ./audit/ -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count 1 || exit 1; done | tee bench/raw.txt
	grep '^Benchmark' bench/raw.txt > bench/results.txt && rm bench/raw.txt
	$(GO) run ./bench/summarize

# make bench-peer measures credgate serve beside an OPA server that only decides, built from
# source by its own module (bench/peer/opa) at the version of the OPA library credgate's go.mod
# pins, with CGO off as OPA's releases are. PEER_FLAGS passes flags (go run ./bench/peer --help).
OPA_VERSION := $(shell awk '$$1 == "github.com/open-policy-agent/opa" {print $$2}' go.mod)
OPA         := $(BIN)/opa-$(OPA_VERSION)
PEER_FLAGS  ?=

# It runs twice: as credgate serves by default, where the samples, repeated as a Job's pods are,
# reuse their decisions (bench/peer.txt); and with reuse off, every admission reviewed in full
# as a pod never seen before is (bench/peer-no-reuse.txt).
.PHONY: bench-peer
bench-peer: control-plane build $(OPA) ## credgate serve beside an OPA server deciding the same rules on the same inputs, over TLS, closed and open loop; results in bench/peer.txt (and bench/peer-no-reuse.txt, decisions never reused).
	$(GO) run ./bench/peer --opa $(patsubst $(CURDIR)/%,%,$(OPA)) -o bench/peer.txt $(PEER_FLAGS)
	$(GO) run ./bench/peer --opa $(patsubst $(CURDIR)/%,%,$(OPA)) -o bench/peer-no-reuse.txt --credgate-flag=--reused-decisions=0 $(PEER_FLAGS)

.PHONY: opa
opa: $(OPA) ## Build the OPA server of make bench-peer from source into bin/ (once).

$(OPA): bench/peer/opa/go.mod bench/peer/opa/go.sum
	@grep -q '^require github.com/open-policy-agent/opa $(OPA_VERSION)$$' bench/peer/opa/go.mod || \
	  { echo "bench/peer/opa/go.mod must require github.com/open-policy-agent/opa $(OPA_VERSION), as go.mod does"; exit 1; }
	@echo ">> building OPA $(OPA_VERSION) from source (bench/peer/opa; a few minutes the first time)"
	cd bench/peer/opa && CGO_ENABLED=0 $(GO) build -o $@ github.com/open-policy-agent/opa

.PHONY: bench-e2e
bench-e2e: control-plane $(BIN)/minio build ## Admission latency as kube-apiserver measures it (p50/p99 of credgate's pod webhooks, 20 pods/s for 10s); results in bench/e2e.txt.
	CREDGATE_E2E_RESULTS=bench/e2e.txt $(GO) test -count=1 -tags e2e ./test/e2e/ -run '^TestAdmissionLatency$$' -v
	@cat bench/e2e.txt

# make bench-scale creates 10,000 Credentials in 1,000 namespaces in a local cluster (several
# minutes on two cores). SCALE_FLAGS passes flags (go run ./bench/scale --help).
SCALE_FLAGS ?=

.PHONY: bench-scale
bench-scale: control-plane build ## credgate serve's memory (RSS, Go heap) with 10,000 Credentials, before and after each is used once, and its start-up with them; results in bench/scale.txt.
	$(GO) run ./bench/scale -o bench/scale.txt $(SCALE_FLAGS)

# make soak drives two replicas of credgate serve behind a stand-in Service with labelled Pods,
# Jobs and refused Pods for DURATION (loopback only), and fails if any admission did not end as
# expected. SOAK_FLAGS passes more flags (go run ./bench/soak --help).
DURATION ?= 2m
SOAK_FLAGS ?=

.PHONY: soak
soak: control-plane build ## Soak: labelled Pods, Jobs and refused Pods through two replicas for DURATION (default 2m): outcomes, the API server's latency, RSS, fds, goroutines; results in bench/soak.txt.
	$(GO) run ./bench/soak -o bench/soak.txt -duration $(DURATION) $(SOAK_FLAGS)

##@ Build

.PHONY: build
build: ## Build bin/credgate.
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/credgate ./cmd/credgate

.PHONY: release-assets
release-assets: ## Render a release's assets into bin/release: install manifests, CRDs, the packaged chart (the release workflow attaches them).
	rm -rf $(BIN)/release
	$(GO) run ./manifests/render -o $(BIN)/release
	$(MAKE) --no-print-directory chart BIN=$(BIN)/release

.PHONY: chart
chart: ## Package the Helm chart charts/credgate into bin/credgate-<version>.tgz (renders it first; files stamped with the commit's time).
	SOURCE_DATE_EPOCH=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null)} $(GO) run ./charts/cmd/package -o $(BIN) charts/credgate

# The image: ko cross-compiles credgate (.ko.yaml) onto a base that test/image/cmd/imagebase
# assembles from the Debian packages pinned in test/image/base.lock, or onto BASE_IMAGE.
# ko has no way to read a base from disk, but it looks base images up by digest in its
# cache (KOCACHE/img) before any registry: imagebase writes the base there and prints its
# reference. Timestamps come from the commit, so one commit always gives one digest.
IMAGE_DIR         := $(BIN)/image
IMAGE_LAYOUT      ?= $(IMAGE_DIR)/credgate
IMAGE_PLATFORMS   ?= linux/amd64,linux/arm64
IMAGE_TAGS        ?= $(VERSION)
BASE_IMAGE        ?=
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: image
image: $(KO) ## Build the linux/amd64+arm64 image with ko into bin/image/credgate (OCI layout, SBOMs in credgate.sbom/); PUSH=1 KO_DOCKER_REPO=... pushes; BASE_IMAGE=... swaps the base.
	$(if $(PUSH),$(if $(KO_DOCKER_REPO),,$(error PUSH=1 needs KO_DOCKER_REPO=<registry>/<repository>)))
	@# ko appends to an existing layout, so start afresh (a push leaves the layout alone).
	@rm -rf $(if $(PUSH),,$(IMAGE_LAYOUT)) $(IMAGE_LAYOUT).sbom && mkdir -p $(IMAGE_DIR)
ifeq ($(BASE_IMAGE),)
	cd test/image && $(GO) run ./cmd/imagebase build -lock base.lock -debs $(IMAGE_DIR)/debs \
	  -platforms $(IMAGE_PLATFORMS) -o $(IMAGE_DIR)/kocache/img > $(IMAGE_DIR)/base.ref
endif
	KOCACHE=$(IMAGE_DIR)/kocache KO_DEFAULTBASEIMAGE=$(or $(BASE_IMAGE),$$(cat $(IMAGE_DIR)/base.ref)) \
	  KO_GO_PATH=$(GO) VERSION=$(VERSION) COMMIT=$(COMMIT) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
	  $(KO) build ./cmd/credgate --bare --platform=$(IMAGE_PLATFORMS) --sbom-dir=$(IMAGE_LAYOUT).sbom \
	  --image-label=org.opencontainers.image.version=$(VERSION),org.opencontainers.image.revision=$(COMMIT) \
	  $(if $(PUSH),--push --tags=$(IMAGE_TAGS) --image-refs=$(IMAGE_DIR)/pushed.ref,--push=false --oci-layout-path=$(IMAGE_LAYOUT))

.PHONY: image-test
image-test: image ## Build the image twice (warm, the second into bin/image/rebuild) and test it: platforms, user, binary, CA bundle, zoneinfo, SBOM, same digest.
	$(MAKE) --no-print-directory image IMAGE_LAYOUT=$(IMAGE_DIR)/rebuild VERSION=$(VERSION) COMMIT=$(COMMIT)
	cd test/image && $(GO) vet ./... && IMAGE_LAYOUT=$(IMAGE_LAYOUT) IMAGE_REBUILD=$(IMAGE_DIR)/rebuild \
	  VERSION=$(VERSION) COMMIT=$(COMMIT) BASE_IMAGE=$(BASE_IMAGE) $(GO) test -count=1 ./...

.PHONY: image-pin
image-pin: ## Re-pin test/image/base.lock to Debian's newest ca-certificates and tzdata (when a build says the pinned ones are gone); review and commit.
	cd test/image && $(GO) run ./cmd/imagebase pin -lock base.lock

.PHONY: control-plane
control-plane: $(CONTROL_PLANE) ## Build etcd, kube-apiserver and kube-controller-manager from source into bin/ (once).

$(BIN)/etcd: test/tools/go.mod test/tools/go.sum
	@echo ">> building etcd from source (test/tools; about a minute the first time)"
	cd test/tools && $(GO) build -o $@ go.etcd.io/etcd/server/v3

$(BIN)/kube-apiserver: test/tools/go.mod test/tools/go.sum
	@echo ">> building kube-apiserver $(KUBE_VERSION) from source (test/tools; several minutes the first time)"
	cd test/tools && $(GO) build -ldflags '$(KUBE_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(BIN)/kube-controller-manager: test/tools/go.mod test/tools/go.sum
	@echo ">> building kube-controller-manager $(KUBE_VERSION) from source (test/tools)"
	cd test/tools && $(GO) build -ldflags '$(KUBE_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kube-controller-manager

.PHONY: workload-controllers
workload-controllers: $(WORKLOAD_CONTROLLERS) ## Build KubeRay's operator and the Kubeflow training operator from source into bin/, their CRDs into bin/crds/ (once).

$(BIN)/kuberay-operator: test/tools/kuberay/go.mod test/tools/kuberay/go.sum
	@echo ">> building KubeRay's operator from source (test/tools/kuberay; a few minutes the first time)"
	cd test/tools/kuberay && $(GO) build -o $@ github.com/ray-project/kuberay/ray-operator
	mkdir -p $(BIN)/crds/kuberay
	install -m 0644 "$$(cd test/tools/kuberay && $(GO) list -m -f '{{.Dir}}' github.com/ray-project/kuberay/ray-operator)"/config/crd/bases/ray.io_*.yaml $(BIN)/crds/kuberay/

$(BIN)/training-operator: test/tools/trainingoperator/go.mod test/tools/trainingoperator/go.sum
	@echo ">> building the Kubeflow training operator from source (test/tools/trainingoperator; a few minutes the first time)"
	cd test/tools/trainingoperator && $(GO) build -o $@ github.com/kubeflow/training-operator/cmd/training-operator.v1
	mkdir -p $(BIN)/crds/training-operator
	install -m 0644 "$$(cd test/tools/trainingoperator && $(GO) list -m -f '{{.Dir}}' github.com/kubeflow/training-operator)"/manifests/base/crds/kubeflow.org_pytorchjobs.yaml $(BIN)/crds/training-operator/

.PHONY: minio
minio: $(BIN)/minio ## Build the MinIO S3/STS server of the AWS tests from source into bin/ (once; it accepts sessions from 1s).

# One constant differs from the pinned source: MinIO refuses sessions under STS's 15 minutes;
# the tests' MinIO accepts them from 1s, so that rotation and expiry are proven in seconds
# (credgate serve --aws-max-session-duration). The pinned module is copied to bin/minio-src,
# the constant changed there, and built through a copy of test/tools/minio's go.mod that
# replaces the module with the copy (go build -overlay may not touch the module cache).
$(BIN)/minio: test/tools/minio/go.mod test/tools/minio/go.sum
	@echo ">> building minio from source (test/tools/minio; a few minutes the first time)"
	cd test/tools/minio && $(GO) mod download github.com/minio/minio && \
	  rm -rf $(BIN)/minio-src $(BIN)/minio-mod && mkdir -p $(BIN)/minio-mod && \
	  cp -r $$($(GO) list -m -f '{{.Dir}}' github.com/minio/minio) $(BIN)/minio-src && chmod -R u+w $(BIN)/minio-src && \
	  sed -i 's/^\(\s*MinExpiration\s*=\s*\)900$$/\11/' $(BIN)/minio-src/internal/config/constants.go && \
	  grep -q 'MinExpiration *= *1$$' $(BIN)/minio-src/internal/config/constants.go && \
	  cp go.mod go.sum $(BIN)/minio-mod/ && \
	  $(GO) mod edit -modfile=$(BIN)/minio-mod/go.mod -replace=github.com/minio/minio=$(BIN)/minio-src && \
	  $(GO) build -modfile=$(BIN)/minio-mod/go.mod -o $@ github.com/minio/minio

$(CONTROLLER_GEN):
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $@

$(GOLANGCI_LINT):
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@

$(KO):
	GOBIN=$(BIN) $(GO) install github.com/google/ko@$(KO_VERSION)
	mv $(BIN)/ko $@
