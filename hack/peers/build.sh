#!/usr/bin/env bash
# Builds the peers `make bench-peers` runs beside launchgate, at the versions pinned in
# hack/versions.env, into the same cache as hack/testenv/build.sh:
#
#   ${LAUNCHGATE_CACHE:-$HOME/.cache/launchgate}/
#     argo-rollouts-<v>/rollouts-controller   built from github.com/argoproj/argo-rollouts
#     argo-rollouts-<v>/crds/*.yaml           its CRDs (the module's manifests/crds/)
#     argo-rollouts-<v>/rbac/*.yaml           its ClusterRole (manifests/role/)
#
# Separate from hack/testenv/build.sh so `make testenv`/`make test` never pay for it. None of the
# peer's code is in this repository: it comes from the Go module proxy at the pinned version.
# Idempotent: a cached binary for the pinned version is not rebuilt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../versions.env
set -a; . "$ROOT/hack/versions.env"; set +a
# shellcheck source=../testenv/lib.sh
. "$ROOT/hack/testenv/lib.sh"

# `go install module@version` refuses a module whose go.mod has replace lines, as Argo Rollouts'
# has; building inside a writable copy of the module's own directory honours them.
build_argo_rollouts() {
  local v="${ARGO_ROLLOUTS_VERSION:?missing in hack/versions.env}" dir="$CACHE/argo-rollouts-$ARGO_ROLLOUTS_VERSION"
  local moddir
  moddir="$(mod_field "github.com/argoproj/argo-rollouts@$v" Dir)"
  [ -d "$moddir/cmd/rollouts-controller" ] || die "no cmd/rollouts-controller in $moddir"
  mkdir -p "$dir"
  # The CRDs and the controller's ClusterRole, from the same module (the module cache is read-only).
  rm -rf "$dir/crds" "$dir/rbac"; mkdir -p "$dir/crds" "$dir/rbac"
  cp "$moddir"/manifests/crds/*-crd.yaml "$dir/crds/" # not its kustomization.yaml
  cp "$moddir"/manifests/role/argo-rollouts-clusterrole.yaml "$dir/rbac/"
  chmod u+w "$dir/crds"/*.yaml "$dir/rbac"/*.yaml
  if [ -x "$dir/rollouts-controller" ]; then log "argo-rollouts $v: cached"; return; fi
  log "argo-rollouts $v: building rollouts-controller (about 5 minutes on a small machine)"
  local t0=$SECONDS src="$dir/src"
  rm -rf "$src"; cp -r "$moddir" "$src"; chmod -R u+w "$src"
  (cd "$src" && GOFLAGS= CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X github.com/argoproj/argo-rollouts/utils/version.version=$v" \
    -o "$dir/rollouts-controller.tmp" ./cmd/rollouts-controller)
  mv "$dir/rollouts-controller.tmp" "$dir/rollouts-controller"
  rm -rf "$src" # only the binary is kept; the source is the module's
  log "argo-rollouts $v: built in $((SECONDS - t0))s"
}

ensure_go
build_argo_rollouts
echo "rollouts-controller: $CACHE/argo-rollouts-$ARGO_ROLLOUTS_VERSION/rollouts-controller"
