#!/usr/bin/env bash
# Build metrics-server (sigs.k8s.io/metrics-server) from the Go module proxy into a cache directory keyed by
# version, like build/control-plane/build-binaries.sh. Tests run it against the test control plane
# (test/support/metrics-server.ts) to prove `kubectl top` for edge nodes.
#
#   build/metrics-server/build.sh            # build if needed, print the binary's path
#   build/metrics-server/build.sh --check    # print the binary's path; exit 1 if not built (never builds)
#
# The last line on stdout is always the binary's path. Progress goes to stderr.
#
# Environment:
#   KE_CACHE_DIR      cache root (default $HOME/.cache/kubeedge-ts); the binary goes to
#                     $KE_CACHE_DIR/metrics-server/<KE_METRICS_SERVER_VERSION>/bin/metrics-server
#   KE_METRICS_SERVER_VERSION   module version (default v0.8.0: go 1.24, k8s.io/* v0.33, no replace directive,
#                     so `go install module@version` builds it as released)
#   KE_GO_NOSUMDB=1   disable checksum-database verification (GOSUMDB=off)
#   GOPROXY, GOMODCACHE, GOCACHE, GOFLAGS ... are honoured as usual.
#
# Cold (empty GOCACHE, 2 cores): about 4 min of CPU, 2-6 min wall; warm: seconds (docs/kubeedge-stream-facts.md §7.1).
set -euo pipefail

VERSION=${KE_METRICS_SERVER_VERSION:-v0.8.0}
VDIR=${KE_CACHE_DIR:-$HOME/.cache/kubeedge-ts}/metrics-server/$VERSION
BIN=$VDIR/bin/metrics-server

log() { printf '[metrics-server %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

MODE=build
case ${1:-} in
  "") ;;
  --check) MODE=check ;;
  -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) die "unknown argument: $1 (use --check or no argument)" ;;
esac

if [[ -x $BIN ]]; then
  echo "$BIN"
  exit 0
fi
if [[ $MODE == check ]]; then
  log "not built yet: $BIN"
  echo "$BIN"
  exit 1
fi

command -v go >/dev/null || die "go not found in PATH (metrics-server $VERSION needs Go >= 1.24; Go 1.26 tested)"
[[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "KE_METRICS_SERVER_VERSION must look like v0.8.0, got $VERSION"

mkdir -p "$VDIR"
# Serialise concurrent builds of the same version (two test runs starting at once).
exec 9>"$VDIR/.lock"
if ! flock -n 9; then
  log "another build of $VDIR is running; waiting for its lock"
  flock 9
fi
if [[ -x $BIN ]]; then
  echo "$BIN"
  exit 0
fi

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
if [[ ${KE_GO_NOSUMDB:-0} == 1 ]]; then
  log "KE_GO_NOSUMDB=1: checksum database verification is OFF (GOSUMDB=off)"
  export GOSUMDB=off
fi

log "go: $(go version); GOPROXY=$(go env GOPROXY) GOSUMDB=$(go env GOSUMDB)"
log "GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE)"
log "target: sigs.k8s.io/metrics-server $VERSION -> $BIN"

# Installed into a stage folder, then renamed: a binary at $BIN is always a complete one.
STAGE=$VDIR/stage
rm -rf "$STAGE"
mkdir -p "$STAGE" "$VDIR/bin"
T0=$SECONDS
# The version stamp is what the project's Makefile sets (VERSION_LDFLAGS); without it --version prints v0.0.0-master.
GOBIN=$STAGE nice -n 10 go install -trimpath \
  -ldflags="-s -w -X k8s.io/client-go/pkg/version.gitVersion=$VERSION -X k8s.io/component-base/version.gitVersion=$VERSION" \
  "sigs.k8s.io/metrics-server/cmd/metrics-server@$VERSION" >&2 || die "go install failed"
"$STAGE/metrics-server" --version >&2 || die "the built binary does not run"
mv -f "$STAGE/metrics-server" "$BIN"
rmdir "$STAGE" 2>/dev/null || true
cat >"$VDIR/VERSIONS" <<VERSIONS
METRICS_SERVER_VERSION=$VERSION
GO_VERSION=$(go env GOVERSION)
BUILT_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
VERSIONS
log "done in $((SECONDS - T0))s"
echo "$BIN"
