#!/usr/bin/env bash
# Build the test control plane from Go modules (Go module proxy only): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler (from the wrapper module in this folder), kwok, and helm
# (to render and apply deploy/helm charts in the tests).
# Output: $KOPILOT_CACHE/controlplane/<K8S_VERSION>/bin. Does nothing when all binaries are there
# and were built for the versions in versions.env (copied to <K8S_VERSION>/versions.env); after a
# change of an etcd, kwok or helm version it rebuilds (Go's build cache makes the unchanged parts
# quick). Go's module and build caches live under $KOPILOT_CACHE/go, so a re-run is instant.
# Only what the tests use is built: kube-controller-manager (Deployments -> ReplicaSets -> pods,
# the scaling tests) and kube-scheduler (the extender end-to-end tests) are both needed. Modules
# are fetched by `go build` as the packages need them (no `go mod download` of the whole graph).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck disable=SC1091
source "$HERE/versions.env"
export KOPILOT_CACHE="${KOPILOT_CACHE:-$HOME/.cache/kopilot}"
DEST="$KOPILOT_CACHE/controlplane/$K8S_VERSION"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok helm)
KWOK_STAGES=(node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease
  pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete)

have_all() {
  local b
  for b in "${BINARIES[@]}"; do [ -x "$DEST/bin/$b" ] || return 1; done
  [ -s "$DEST/bin/kwok-stages.yaml" ] && cmp -s "$HERE/versions.env" "$DEST/versions.env"
}

if have_all; then
  echo "controlplane: $K8S_VERSION binaries present in $DEST/bin"
  exit 0
fi

command -v go >/dev/null || { echo "controlplane: 'go' not found; install Go >= 1.24" >&2; exit 1; }
grep -qE "k8s.io/kubernetes $K8S_VERSION( |\$)" "$HERE/go.mod" \
  || { echo "controlplane: go.mod does not require k8s.io/kubernetes $K8S_VERSION" >&2; exit 1; }
grep -qE "go.etcd.io/etcd/server/v3 $ETCD_VERSION( |\$)" "$HERE/go.mod" \
  || { echo "controlplane: go.mod does not require go.etcd.io/etcd/server/v3 $ETCD_VERSION" >&2; exit 1; }

export GOMODCACHE="$KOPILOT_CACHE/go/mod"
export GOCACHE="$KOPILOT_CACHE/go/build"
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-p=${KOPILOT_BUILD_JOBS:-2} -trimpath -buildvcs=false -mod=readonly"
LDFLAGS="-s -w"
STAGE="$DEST/bin.partial"
# A bin/ built for other versions is not reused; an incomplete one for these versions (say from
# an interrupted run) is finished in place rather than rebuilt.
if [ -d "$DEST/bin" ] && [ -f "$DEST/versions.env" ] && ! cmp -s "$HERE/versions.env" "$DEST/versions.env"; then
  rm -rf "$DEST/bin" "$STAGE" "$DEST/versions.env"
fi
if [ -d "$DEST/bin" ] && [ ! -d "$STAGE" ]; then mv "$DEST/bin" "$STAGE"; fi
mkdir -p "$STAGE"
start=$SECONDS
step() { echo "controlplane: [$((SECONDS - start))s] $*"; }

todo=()
for pkg in kube-apiserver kube-controller-manager kube-scheduler; do
  if [ -x "$STAGE/$pkg" ]; then step "$pkg already built"; else todo+=("k8s.io/kubernetes/cmd/$pkg"); fi
done
if [ ${#todo[@]} -gt 0 ]; then
  # One `go build` for all of them: shared packages compile once, the links run side by side.
  step "building ${todo[*]##*/} (k8s $K8S_VERSION; modules from the Go module proxy as needed)"
  (cd "$HERE" && go build -ldflags "$LDFLAGS" -o "$STAGE/" "${todo[@]}")
fi
if [ ! -x "$STAGE/etcd" ]; then
  step "building etcd"
  (cd "$HERE" && go build -ldflags "$LDFLAGS" -o "$STAGE/etcd" go.etcd.io/etcd/server/v3)
fi
if [ ! -x "$STAGE/kwok" ]; then
  step "building kwok $KWOK_VERSION"
  # kwok is its own module (no replace directives): go install honours its go.mod/go.sum as-is.
  GOBIN="$STAGE" GOFLAGS="${GOFLAGS/-mod=readonly/}" \
    go install -ldflags "$LDFLAGS" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi
if [ ! -x "$STAGE/helm" ]; then
  step "building helm $HELM_VERSION"
  GOBIN="$STAGE" GOFLAGS="${GOFLAGS/-mod=readonly/}" \
    go install -ldflags "$LDFLAGS" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
if [ ! -s "$STAGE/kwok-stages.yaml" ]; then
  # kwok needs Stage objects saying how nodes and pods progress; take kwok's own "fast" set
  # (nodes Ready at once, lease heartbeats; pods Running at once) from the pinned module.
  step "writing kwok stages"
  kwok_dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  for s in "${KWOK_STAGES[@]}"; do
    echo "---"
    echo "# from sigs.k8s.io/kwok@$KWOK_VERSION kustomize/stage/$s.yaml (Apache-2.0)"
    cat "$kwok_dir/kustomize/stage/$s.yaml"
  done > "$STAGE/kwok-stages.yaml.tmp"
  mv "$STAGE/kwok-stages.yaml.tmp" "$STAGE/kwok-stages.yaml"
fi
rm -rf "$DEST/bin"
mv "$STAGE" "$DEST/bin"
cp "$HERE/versions.env" "$DEST/versions.env"
step "done: $(du -sh "$DEST/bin" | cut -f1) in $DEST/bin"
