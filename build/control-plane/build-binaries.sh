#!/usr/bin/env bash
# Build a real Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) and etcd from the Go module proxy, offline-friendly,
# into a cache directory keyed by version.
#
#   build/control-plane/build-binaries.sh            # build if needed, print bin dir
#   build/control-plane/build-binaries.sh --check    # print bin dir; exit 1 if not built (never builds)
#
# The last line on stdout is always the bin dir. Progress goes to stderr.
#
# Environment:
#   KE_CACHE_DIR      cache root (default $HOME/.cache/kubeedge-ts); binaries go to
#                     $KE_CACHE_DIR/control-plane/<KE_KUBE_VERSION>-etcd-<KE_ETCD_VERSION>/bin
#   KE_KUBE_VERSION   k8s.io/kubernetes version (default v1.33.13)
#   KE_ETCD_VERSION   go.etcd.io/etcd/server/v3 version (default v3.5.35)
#   KE_GO_NOSUMDB=1   disable checksum-database verification (GOSUMDB=off). Only needed
#                     when neither sum.golang.org nor the proxy's /sumdb/ endpoint is reachable.
#   KE_GO_BUILD_P     value for `go build -p` (default: Go's default, GOMAXPROCS)
#   GOPROXY, GOMODCACHE, GOCACHE, GOFLAGS ... are honoured as usual.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KUBE_VERSION=${KE_KUBE_VERSION:-v1.33.13}
ETCD_VERSION=${KE_ETCD_VERSION:-v3.5.35}
CACHE_ROOT=${KE_CACHE_DIR:-$HOME/.cache/kubeedge-ts}/control-plane
VDIR=$CACHE_ROOT/${KUBE_VERSION}-etcd-${ETCD_VERSION}
BIN=$VDIR/bin
KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
ALL_BINARIES=(etcd "${KUBE_BINARIES[@]}")

log() { printf '[build-binaries %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

missing() { # prints the missing binaries among "$@"
  local b
  for b in "$@"; do [[ -x $BIN/$b ]] || printf '%s\n' "$b"; done
}

MODE=build
case ${1:-} in
  "") ;;
  --check|--print-bin-dir) MODE=check ;;
  -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) die "unknown argument: $1 (use --check or no argument)" ;;
esac

# Fast path: everything already built.
if [[ -z $(missing "${ALL_BINARIES[@]}") ]]; then
  echo "$BIN"
  exit 0
fi
if [[ $MODE == check ]]; then
  log "not built yet: $(missing "${ALL_BINARIES[@]}" | tr '\n' ' ')"
  echo "$BIN"
  exit 1
fi

command -v go >/dev/null || die "go not found in PATH (need Go >= 1.24; Go 1.26 tested)"
[[ $KUBE_VERSION =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "KE_KUBE_VERSION must look like v1.33.13, got $KUBE_VERSION"
KUBE_MINOR=${BASH_REMATCH[1]}
STAGING_VERSION=v0.${KUBE_VERSION#v1.}

mkdir -p "$VDIR"
# Serialise concurrent builds of the same version.
exec 9>"$VDIR/.lock"
if ! flock -n 9; then
  log "another build of $VDIR is running; waiting for its lock"
  flock 9
fi
if [[ -z $(missing "${ALL_BINARIES[@]}") ]]; then
  echo "$BIN"
  exit 0
fi

export CGO_ENABLED=0
# Make `go` write nothing next to the sources in the repo and never stamp VCS info.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
if [[ ${KE_GO_NOSUMDB:-0} == 1 ]]; then
  log "KE_GO_NOSUMDB=1: checksum database verification is OFF (GOSUMDB=off)"
  export GOSUMDB=off
fi
BUILD_P=()
[[ -n ${KE_GO_BUILD_P:-} ]] && BUILD_P=(-p "$KE_GO_BUILD_P")

log "go: $(go version); GOPROXY=$(go env GOPROXY) GOSUMDB=$(go env GOSUMDB)"
log "GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE)"
log "target: kubernetes $KUBE_VERSION (staging $STAGING_VERSION), etcd $ETCD_VERSION -> $BIN"

STAGE=$VDIR/stage
rm -rf "$STAGE"
mkdir -p "$STAGE" "$BIN"

build_etcd() {
  local w=$VDIR/work/etcd t0=$SECONDS
  log "etcd: preparing wrapper module in $w"
  rm -rf "$w"; mkdir -p "$w"
  sed "s/@ETCD_VERSION@/$ETCD_VERSION/g" "$HERE/etcd/go.mod.in" >"$w/go.mod"
  cp "$HERE/etcd/main.go" "$w/main.go"
  (cd "$w" && go mod tidy >&2) || die "etcd: go mod tidy failed"
  log "etcd: go mod tidy done ($((SECONDS - t0))s); building"
  (cd "$w" && nice -n 10 go build "${BUILD_P[@]}" -trimpath \
      -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=gomodproxy-$ETCD_VERSION" \
      -o "$STAGE/etcd" . >&2) || die "etcd: go build failed"
  "$STAGE/etcd" --version >&2 || die "etcd: built binary does not run"
  log "etcd: built in $((SECONDS - t0))s"
}

build_kube() {
  local w=$VDIR/work/kube t0=$SECONDS gomod modtime m n=0
  log "kube: preparing wrapper module in $w"
  rm -rf "$w"; mkdir -p "$w"
  sed "s/@KUBE_VERSION@/$KUBE_VERSION/g" "$HERE/kube/go.mod.in" >"$w/go.mod"
  cp -r "$HERE/kube/cmd" "$w/cmd"
  cd "$w"
  # k8s.io/kubernetes requires every staging repo at the fake version v0.0.0 and
  # replaces them with ./staging/... in its own go.mod; replaces in dependencies are
  # ignored, so the wrapper must pin each one to the matching v0.X.Y tag itself.
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
          sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [[ -f $gomod ]] || die "kube: could not download k8s.io/kubernetes@$KUBE_VERSION go.mod"
  for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod"); do
    go mod edit "-replace=$m=$m@$STAGING_VERSION"
    n=$((n + 1))
  done
  ((n > 0)) || die "kube: no staging modules found in $gomod"
  log "kube: $n staging replaces -> $STAGING_VERSION; running go mod tidy"
  go mod tidy >&2 || die "kube: go mod tidy failed"
  # Reproducible build date: the commit time of the release as reported by the proxy.
  modtime=$(go list -m -json k8s.io/kubernetes | sed -n 's/^[[:space:]]*"Time": "\(.*\)",\{0,1\}$/\1/p')
  local x="" p kv
  for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    for kv in "gitVersion=$KUBE_VERSION" gitMajor=1 "gitMinor=$KUBE_MINOR" gitTreeState=clean \
              "buildDate=${modtime:-1970-01-01T00:00:00Z}"; do
      x+=" -X $p.$kv"
    done
  done
  log "kube: go mod tidy done ($((SECONDS - t0))s); building ${KUBE_BINARIES[*]} (this is the slow part)"
  nice -n 10 go build "${BUILD_P[@]}" -trimpath -ldflags "-s -w$x" -o "$STAGE/" \
    ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubectl >&2 ||
    die "kube: go build failed"
  cd - >/dev/null
  for m in kube-apiserver kube-controller-manager kube-scheduler; do
    "$STAGE/$m" --version >&2 || die "kube: $m does not run"
  done
  "$STAGE/kubectl" version --client >&2 || die "kube: kubectl does not run"
  log "kube: built in $((SECONDS - t0))s"
}

T0=$SECONDS
[[ -n $(missing etcd) ]] && build_etcd
[[ -n $(missing "${KUBE_BINARIES[@]}") ]] && build_kube

# Install atomically (rename within the same filesystem).
for b in "${ALL_BINARIES[@]}"; do
  [[ -f $STAGE/$b ]] && mv -f "$STAGE/$b" "$BIN/$b"
done
rmdir "$STAGE" 2>/dev/null || true
cat >"$VDIR/VERSIONS" <<EOF
KUBE_VERSION=$KUBE_VERSION
ETCD_VERSION=$ETCD_VERSION
GO_VERSION=$(go env GOVERSION)
BUILT_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
[[ -z $(missing "${ALL_BINARIES[@]}") ]] || die "still missing after build: $(missing "${ALL_BINARIES[@]}" | tr '\n' ' ')"
log "done in $((SECONDS - T0))s; binaries: $(ls "$BIN" | tr '\n' ' ')"
echo "$BIN"
