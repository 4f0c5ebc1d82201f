#!/usr/bin/env bash
# Shared by hack/testenv/build.sh and hack/peers/build.sh (sourced, not run): the cache, logging,
# a Go toolchain (bootstrapped from the module proxy when none is installed) and module downloads.
# The sourcing script has set -euo pipefail and exported hack/versions.env.

CACHE="${LAUNCHGATE_CACHE:-$HOME/.cache/launchgate}"
# Used only when no usable `go` is installed: the toolchain is itself a module, fetched from the
# module proxy in $GOPROXY (or the installed go's GOPROXY; see go_proxy).
GO_BOOTSTRAP_VERSION="${GO_BOOTSTRAP_VERSION:-go1.24.4}"
mkdir -p "$CACHE"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

# --- Go toolchain -----------------------------------------------------------------------------
# The module proxy to bootstrap from: the first proxy URL in $GOPROXY, or else in the GOPROXY of
# whatever `go` is installed (one too old to build with still knows where modules come from).
# Prints nothing and fails when neither names one ("direct" and "off" are not proxies).
go_proxy() {
  local list="${GOPROXY:-}" entry entries=()
  if [ -z "$list" ] && command -v go >/dev/null; then list="$(go env GOPROXY 2>/dev/null || true)"; fi
  IFS=',|' read -r -a entries <<<"$list" # a list separated by ',' or '|'
  for entry in "${entries[@]}"; do
    entry="${entry//[[:space:]]/}"
    case "$entry" in ''|direct|off) continue ;; esac
    printf '%s\n' "${entry%/}"; return 0
  done
  return 1
}

# Go >= 1.21 fetches a newer toolchain by itself when a go.mod asks for one (GOTOOLCHAIN=auto),
# so any such `go` will do. Without one, fetch the toolchain module straight from the proxy.
ensure_go() {
  if command -v go >/dev/null; then
    local minor
    minor="$(go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
    if [ -n "$minor" ] && [ "$minor" -ge 21 ]; then return; fi
    log "installed $(go version 2>/dev/null || echo go) is too old; bootstrapping $GO_BOOTSTRAP_VERSION"
  fi
  local arch dir
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) die "unsupported arch $(uname -m)" ;; esac
  dir="$CACHE/go-$GO_BOOTSTRAP_VERSION"
  if [ ! -x "$dir/bin/go" ]; then
    local proxy tmp url
    proxy="$(go_proxy)" || die "no Go >= 1.21 on PATH, and no Go module proxy to fetch $GO_BOOTSTRAP_VERSION from: \
install Go 1.21 or newer, or set GOPROXY to your module proxy's URL (GOPROXY=<url> make testenv)"
    log "fetching Go $GO_BOOTSTRAP_VERSION from the Go module proxy $proxy"
    tmp="$(mktemp -d "$CACHE/.go-bootstrap.XXXXXX")"
    url="$proxy/golang.org/toolchain/@v/v0.0.1-${GO_BOOTSTRAP_VERSION}.linux-${arch}.zip"
    python3 - "$url" "$tmp" <<'PY'
import io, os, sys, urllib.request, zipfile
url, dest = sys.argv[1], sys.argv[2]
data = urllib.request.urlopen(url, timeout=600).read()
with zipfile.ZipFile(io.BytesIO(data)) as z:
    for info in z.infolist():
        # entries look like golang.org/toolchain@v0.0.1-go1.24.4.linux-amd64/bin/go
        rel = info.filename.split("/", 2)[2] if info.filename.count("/") >= 2 else ""
        if not rel or info.is_dir():
            continue
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(z.read(info))
        # module zips keep no permission bits; the go command marks these executable itself
        os.chmod(path, 0o755 if rel.startswith(("bin/", "pkg/tool/")) else 0o644)
PY
    rm -rf "$dir"; mv "$tmp" "$dir"
  fi
  export PATH="$dir/bin:$PATH"
}

# Downloads a module version and prints one field (GoMod, Dir, ...) of its download record.
mod_field() { # mod_field <module@version> <Key>
  local json err
  json="$(cd "$CACHE" && go mod download -json "$1")" || {
    err="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p')"
    die "go mod download $1 failed: ${err:-see above}"
  }
  printf '%s\n' "$json" | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}$/\1/p"
}

