#!/usr/bin/env bash
# Installs kubeedge-ts from this checkout: the compiled daemons and their production dependencies into
# $PREFIX (default /opt/kubeedge-ts), `cloudcore` and `edgecore` commands into /usr/local/bin, the systemd
# units, and default configs into /etc/kubeedge/config when none exist; also the mappers (`modbus-mapper`,
# `virtual-mapper`, unit mapper@<protocol>, settings in mapper.env). DESTDIR stages into another root.
#   build/install.sh                  # install
#   sudo systemctl enable --now cloudcore        # on the cloud host
#   sudo edgecore --token <token> ... then systemctl enable --now edgecore   # on an edge host
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/opt/kubeedge-ts}
DESTDIR=${DESTDIR:-}
ROOT="$DESTDIR$PREFIX"

node build/scripts/prepare.mjs
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -r package.json package-lock.json README.md dist node_modules "$stage/"
mkdir -p "$stage/mappers" && cp mappers/README.md "$stage/mappers/"
# Drop dev dependencies but keep the compiled better-sqlite3 addon: edge hosts need no compiler.
(cd "$stage" && npm prune --omit=dev --no-audit --no-fund >/dev/null)
# better-sqlite3 needs only its compiled addon and lib/ at run time, not the SQLite sources and objects.
bs="$stage/node_modules/better-sqlite3"
find "$bs/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$bs/build/Release" -mindepth 1 ! -name better_sqlite3.node -exec rm -rf {} + 2>/dev/null || true
rm -rf "$bs/deps" "$bs/src"
find "$stage/node_modules" -mindepth 1 -maxdepth 2 -type d -empty -delete
mkdir -p "$ROOT" "$DESTDIR/usr/local/bin" "$DESTDIR/etc/systemd/system" "$DESTDIR/etc/kubeedge/config"
rm -rf "$ROOT"
cp -r "$stage" "$ROOT"
# edgecore runs on small hosts: a 1 MiB young generation costs a little CPU in scavenges and saves ~10 MiB of
# resident memory (docs/performance.md, edged figures).
# cloudcore: OpenSSL told to send no TLS 1.3 session tickets, which Node 20 cannot switch off by API
# (docs/channel.md, Security), and a young generation of up to 32 MiB per semi-space: a bulk kubectl logs took
# 1.0-1.1 instead of 1.7-1.8 CPU-s per 100 MiB (docs/performance.md, streams).
for bin in cloudcore edgecore; do
  flags=""; [ "$bin" = edgecore ] && flags="--max-semi-space-size=1 "
  [ "$bin" = cloudcore ] && flags="--openssl-config=$PREFIX/dist/cloudcore/openssl.cnf --max-semi-space-size=32 "
  printf '#!/bin/sh\nexec node %s%s/dist/%s/main.js "$@"\n' "$flags" "$PREFIX" "$bin" > "$DESTDIR/usr/local/bin/$bin"
  chmod 755 "$DESTDIR/usr/local/bin/$bin"
  cp "build/systemd/$bin.service" "$DESTDIR/etc/systemd/system/$bin.service"
  config="$DESTDIR/etc/kubeedge/config/$bin.yaml"
  [ -e "$config" ] || node "$ROOT/dist/$bin/main.js" --print-default-config > "$config"
done
for protocol in modbus virtual; do
  printf '#!/bin/sh\nexec node %s/dist/mappers/%s/main.js "$@"\n' "$PREFIX" "$protocol" > "$DESTDIR/usr/local/bin/$protocol-mapper"
  chmod 755 "$DESTDIR/usr/local/bin/$protocol-mapper"
done
cp build/systemd/mapper@.service "$DESTDIR/etc/systemd/system/mapper@.service"
mapper_env="$DESTDIR/etc/kubeedge/config/mapper.env"
[ -e "$mapper_env" ] || printf 'NODE_NAME=%s\nMQTT_BROKER=mqtt://127.0.0.1:1884\n' "$(hostname | tr '[:upper:]' '[:lower:]')" > "$mapper_env"
echo "installed into $ROOT; commands in $DESTDIR/usr/local/bin; units in $DESTDIR/etc/systemd/system"
