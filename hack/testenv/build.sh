#!/usr/bin/env bash
# Builds (or installs) everything the local test control plane needs, at the versions pinned in
# hack/versions.env, into a cache outside the repo:
#
#   ${LAUNCHGATE_CACHE:-$HOME/.cache/launchgate}/
#     kube-apiserver-<v>/kube-apiserver   built from k8s.io/kubernetes (wrapper in hack/testenv/kube-apiserver)
#     kubectl-<v>/kubectl                 built from the same module, so client and server match
#     kube-controller-manager-<v>/...     the real Deployment, ReplicaSet, Job, EndpointSlice,
#     kube-scheduler-<v>/...              garbage-collector and HPA controllers, and the scheduler,
#                                         from the same module
#     kwok-<v>/kwok                       built from sigs.k8s.io/kwok: plays the kubelet of fake Nodes
#     etcd-<v>/etcd                       built from go.etcd.io/etcd/server/v3 (wrapper in hack/testenv/etcd)
#     gateway-api-<v>/*.yaml              standard-channel CRDs from the sigs.k8s.io/gateway-api module
#     helm-<v>/helm                       built from helm.sh/helm/v3 (packaging tests: helm lint/template)
#     kube-state-metrics-<v>/kube-state-metrics  built from k8s.io/kube-state-metrics/v2: the
#                                         deployment facts the checklist judges, as metrics
#   prometheus, promtool                  Debian package (only if not already on PATH)
#   lua5.1                                Debian package (only if not already on PATH): the
#                                         Argo CD health-check tests run their Lua with it
#   chromium                              Debian package (only if /usr/bin/chromium is missing): the
#                                         dashboard's browser tests drive it with Playwright
#
# Why build instead of download: only the Go module proxy, PyPI and Debian are reachable from CI,
# and there is no Docker. Everything here comes from those.
#
# Idempotent: a component whose binary for the pinned version is already in the cache is skipped,
# so a second run is a fast no-op. CI runs this on a clean machine (see .ci/run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../versions.env
set -a; . "$ROOT/hack/versions.env"; set +a
: "${KUBERNETES_VERSION:?missing in hack/versions.env}"
: "${ETCD_VERSION:?missing in hack/versions.env}"
: "${GATEWAY_API_VERSION:?missing in hack/versions.env}"

# shellcheck source=lib.sh
. "$ROOT/hack/testenv/lib.sh"

# Copies a wrapper module from the repo into the cache so go.mod/go.sum edits never touch the repo.
fresh_src() { # fresh_src <wrapper-name> <dest>
  rm -rf "$2"
  mkdir -p "$2"
  cp "$ROOT/hack/testenv/$1/go.mod" "$ROOT/hack/testenv/$1/main.go" "$2/"
}

# --- kube-apiserver, kubectl, kube-controller-manager, kube-scheduler ----------------------------
# All four come from one wrapper module pinned to k8s.io/kubernetes, so they share one version,
# one dependency graph and one Go build cache.
KUBE_CMDS=(kube-apiserver kubectl kube-controller-manager kube-scheduler)

kube_bin() { printf '%s/%s-%s/%s\n' "$CACHE" "$1" "$KUBERNETES_VERSION" "$1"; } # kube_bin <name>

build_kubernetes() {
  local v="$KUBERNETES_VERSION" name missing=()
  for name in "${KUBE_CMDS[@]}"; do
    [ -x "$(kube_bin "$name")" ] || missing+=("$name")
  done
  if [ "${#missing[@]}" = 0 ]; then log "kubernetes $v (${KUBE_CMDS[*]}): cached"; return; fi
  local staging_v="v0.${v#v1.}" # v1.32.4 -> v0.32.4: the staging modules' matching tag
  local minor="${v#v1.}"; minor="${minor%%.*}"
  local src="$CACHE/kube-apiserver-$v/src"
  log "kubernetes $v: preparing module (staging modules at $staging_v)"
  fresh_src kube-apiserver "$src"
  local gomod
  gomod="$(mod_field "k8s.io/kubernetes@$v" GoMod)"
  [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$v"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and points them at ./staging with
  # replace lines, which do not apply to us: replace each with its published version instead.
  local args=(-require="k8s.io/kubernetes@$v") m
  while read -r m; do
    args+=(-replace="$m=$m@$staging_v")
  done < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$gomod")
  [ "${#args[@]}" -gt 5 ] || die "found no staging replace lines in $gomod"
  # A staging tag the proxy lacks would fail the build: those come from KUBERNETES_MODULE_OVERRIDES.
  for m in ${KUBERNETES_MODULE_OVERRIDES:-}; do
    args+=(-replace="${m%@*}=$m")
  done
  # No `go mod tidy`: it also fetches the test dependencies of every imported package, which is
  # slow and fails whenever one of them is unavailable; -mod=mod resolves what the build needs.
  (cd "$src" && go mod edit "${args[@]}")
  local ver_pkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version) ldflags="-s -w" p
  for p in "${ver_pkgs[@]}"; do
    ldflags+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  local out pkg t0
  for name in "${missing[@]}"; do
    out="$(kube_bin "$name")"
    # kube-apiserver is the wrapper's own main package; the others are k8s.io/kubernetes commands.
    if [ "$name" = kube-apiserver ]; then pkg=.; else pkg="k8s.io/kubernetes/cmd/$name"; fi
    log "$name $v: building (minutes on a small machine; the first one the longest)"
    t0=$SECONDS
    mkdir -p "$(dirname "$out")"
    (cd "$src" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags="$ldflags" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
    log "$name $v: built in $((SECONDS - t0))s"
  done
}

# --- etcd -------------------------------------------------------------------------------------
build_etcd() {
  local v="$ETCD_VERSION" dir="$CACHE/etcd-$ETCD_VERSION"
  if [ -x "$dir/etcd" ]; then log "etcd $v: cached"; return; fi
  local src="$dir/src"
  log "etcd $v: building"
  fresh_src etcd "$src"
  (cd "$src" && go mod edit -require="go.etcd.io/etcd/server/v3@$v")
  (cd "$src" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags="-s -w" -o "$dir/etcd.tmp" .)
  mv "$dir/etcd.tmp" "$dir/etcd"
}

# --- Gateway API CRDs -------------------------------------------------------------------------
fetch_gateway_api() {
  local v="$GATEWAY_API_VERSION" dir="$CACHE/gateway-api-$GATEWAY_API_VERSION"
  if compgen -G "$dir/*.yaml" >/dev/null; then log "gateway-api $v: cached"; return; fi
  local moddir
  moddir="$(mod_field "sigs.k8s.io/gateway-api@$v" Dir)"
  compgen -G "$moddir/config/crd/standard/*.yaml" >/dev/null || die "no CRDs in $moddir/config/crd/standard"
  log "gateway-api $v: copying standard CRDs"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  cp "$moddir"/config/crd/standard/*.yaml "$dir.tmp/"
  chmod u+w "$dir.tmp"/*.yaml # the module cache is read-only
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}

# --- Prometheus -------------------------------------------------------------------------------
install_prometheus() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    log "prometheus: $(command -v prometheus) (already installed)"; return
  fi
  log "prometheus: installing the Debian package"
  # We never use the packaged service; a policy-rc.d that refuses service starts keeps apt from
  # launching a daemon on :9090 in environments without systemd.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"; added_policy=1
  fi
  local rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    if [ -n "${PROMETHEUS_DEB_VERSION:-}" ] && \
       as_root apt-get install -y -qq --no-install-recommends "prometheus=$PROMETHEUS_DEB_VERSION"; then :
    else
      log "prometheus: pinned ${PROMETHEUS_DEB_VERSION:-<none>} unavailable; installing Debian's current version"
      as_root apt-get install -y -qq --no-install-recommends prometheus
    fi
  } || rc=$?
  if [ "$added_policy" = 1 ]; then as_root rm -f "$policy"; fi
  [ "$rc" = 0 ] || die "apt-get install prometheus failed"
  # With systemd the unit may still have been started: stop and disable it.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  if pgrep -x prometheus >/dev/null; then
    as_root service prometheus stop >/dev/null 2>&1 || true
    local pid
    for pid in $(pgrep -x -f '/usr/bin/prometheus( .*)?' || true); do
      log "prometheus: stopping the packaged daemon (pid $pid)"; as_root kill "$pid" || true
    done
  fi
}

# --- Lua 5.1 ----------------------------------------------------------------------------------
# The Argo CD health checks (manifests/argocd) are Lua run by gopher-lua, a Lua 5.1; the tests run
# them with Debian's lua5.1.
install_lua() {
  if command -v lua5.1 >/dev/null; then
    log "lua5.1: $(command -v lua5.1) (already installed)"; return
  fi
  log "lua5.1: installing the Debian package"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq || die "apt-get update failed"
  as_root apt-get install -y -qq --no-install-recommends lua5.1 || die "apt-get install lua5.1 failed"
  command -v lua5.1 >/dev/null || die "lua5.1 is still not on PATH after installing it"
}

# --- Chromium ---------------------------------------------------------------------------------
# The dashboard's browser tests drive a headless Chromium with Playwright. Playwright's own browser
# download reaches hosts CI cannot, so they use Debian's build at /usr/bin/chromium.
install_chromium() {
  if [ -x /usr/bin/chromium ]; then
    log "chromium: /usr/bin/chromium (already installed)"; return
  fi
  log "chromium: installing the Debian package"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq || die "apt-get update failed"
  as_root apt-get install -y -qq --no-install-recommends chromium || die "apt-get install chromium failed"
  [ -x /usr/bin/chromium ] || die "/usr/bin/chromium is still missing after installing chromium"
}

# --- Helm (packaging tests only: `helm lint` and `helm template` of charts/launchgate) --------
build_helm() {
  local v="${HELM_VERSION:?missing in hack/versions.env}" dir="$CACHE/helm-${HELM_VERSION}"
  if [ -x "$dir/helm" ]; then log "helm $v: cached"; return; fi
  log "helm $v: building (a few minutes on a small machine)"
  local gomod kube_minor ldflags
  gomod="$(mod_field "helm.sh/helm/v3@$v" GoMod)"
  [ -f "$gomod" ] || die "could not download helm.sh/helm/v3@$v"
  # What helm's Makefile stamps in: without it `helm template` assumes Kubernetes v1.20.
  kube_minor="$(awk '$1 == "k8s.io/client-go" { split($2, a, "."); print a[2] }' "$gomod")"
  [ -n "$kube_minor" ] || die "no k8s.io/client-go requirement in $gomod"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$v"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kube_minor"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kube_minor"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  # `go install module@version` builds outside any module, with helm's own go.mod and go.sum.
  (cd "$CACHE" && GOFLAGS= CGO_ENABLED=0 GOBIN="$dir.tmp" go install -trimpath -ldflags="$ldflags" "helm.sh/helm/v3/cmd/helm@$v")
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}

# --- kwok -------------------------------------------------------------------------------------
# Plays the kubelet for the Nodes it manages: reports them Ready and moves their pods through the
# stages in hack/testenv/kwok/ (scheduled, running, ready, finished). The stages are the project's
# own, so devenv reads them from the repo; only the binary is cached.
build_kwok() {
  local v="${KWOK_VERSION:?missing in hack/versions.env}" dir="$CACHE/kwok-$KWOK_VERSION"
  if [ -x "$dir/kwok" ]; then log "kwok $v: cached"; return; fi
  log "kwok $v: building (a few minutes on a small machine)"
  local t0=$SECONDS
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  (cd "$CACHE" && GOFLAGS= CGO_ENABLED=0 GOBIN="$dir.tmp" go install -trimpath -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@$v")
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  log "kwok $v: built in $((SECONDS - t0))s"
}

# --- kube-state-metrics -------------------------------------------------------------------------
# The checklist's controls that are facts about a deployment (its ServiceAccount, egress
# NetworkPolicy, Secret ages, owner and runbook annotations) are judged from the metrics this
# exporter derives from the API server; it runs out of cluster with --kubeconfig.
build_kube_state_metrics() {
  local v="${KUBE_STATE_METRICS_VERSION:?missing in hack/versions.env}" dir="$CACHE/kube-state-metrics-$KUBE_STATE_METRICS_VERSION"
  if [ -x "$dir/kube-state-metrics" ]; then log "kube-state-metrics $v: cached"; return; fi
  log "kube-state-metrics $v: building (a minute or two on a small machine)"
  local t0=$SECONDS
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  (cd "$CACHE" && GOFLAGS= CGO_ENABLED=0 GOBIN="$dir.tmp" go install -trimpath -ldflags="-s -w" "k8s.io/kube-state-metrics/v2@$v")
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  log "kube-state-metrics $v: built in $((SECONDS - t0))s"
}

ensure_go
log "cache: $CACHE ($(go env GOVERSION))"
build_etcd
fetch_gateway_api
install_prometheus
install_lua
install_chromium
build_kubernetes
build_kwok
build_helm
build_kube_state_metrics

cat <<EOF
kube-apiserver: $CACHE/kube-apiserver-$KUBERNETES_VERSION/kube-apiserver
kubectl:        $CACHE/kubectl-$KUBERNETES_VERSION/kubectl
kube-controller-manager: $CACHE/kube-controller-manager-$KUBERNETES_VERSION/kube-controller-manager
kube-scheduler: $CACHE/kube-scheduler-$KUBERNETES_VERSION/kube-scheduler
kwok:           $CACHE/kwok-$KWOK_VERSION/kwok
etcd:           $CACHE/etcd-$ETCD_VERSION/etcd
gateway-api:    $CACHE/gateway-api-$GATEWAY_API_VERSION
prometheus:     $(command -v prometheus)
promtool:       $(command -v promtool)
lua5.1:         $(command -v lua5.1)
chromium:       /usr/bin/chromium
EOF
echo "helm:           $CACHE/helm-$HELM_VERSION/helm"
echo "kube-state-metrics: $CACHE/kube-state-metrics-$KUBE_STATE_METRICS_VERSION/kube-state-metrics"
