#!/usr/bin/env bash
# Start a private containerd (CRI v1) in <workdir>, with the offline images imported.
#
#   build/cri/start-containerd.sh <workdir>
#
# Writes into <workdir>:
#   config.toml              containerd config: root/, state/, runc/, opt/ and both sockets inside <workdir>
#   cni/net.d/10-ke.conflist  bridge + host-local IPAM + portmap + loopback (written before containerd starts:
#                            containerd does not pick up a conflist moved in later)
#   containerd.pid           containerd's own pid (stop-containerd.sh reads it)
#   logs/containerd.log, logs/ctr-import.log, logs/start.log
# The CRI endpoint is unix://<workdir>/containerd.sock. Starting again on the same <workdir> (after only
# containerd was killed) keeps every sandbox and container: their shims outlive containerd.
# Unix socket paths are limited to 108 bytes, so keep <workdir> short (e.g. /tmp/kc-XXXXXX).
#
# Environment:
#   KE_CRI_IMAGES        images tarball to import (default <workdir>/images.tar, built by build-images.sh
#                        when missing)
#   KE_CNI_SUBNET        pod subnet (default 198.51.100.0/24, RFC 5737 TEST-NET-2)
#   KE_CNI_BRIDGE        bridge device (default ke-cni0); give two containerds running at once different
#                        subnets and bridges
#   KE_CRI_START_TIMEOUT seconds to wait for the socket (default 20)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ $# -eq 1 ]] || { echo "usage: $0 <workdir>" >&2; exit 2; }
mkdir -p "$1/logs"
W=$(cd "$1" && pwd)
IMAGES=${KE_CRI_IMAGES:-$W/images.tar}
SUBNET=${KE_CNI_SUBNET:-198.51.100.0/24}
BRIDGE=${KE_CNI_BRIDGE:-ke-cni0}
TIMEOUT=${KE_CRI_START_TIMEOUT:-20}
CNI_BIN=/usr/lib/cni

log() { printf '[start-containerd %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$W/logs/start.log" >&2; }
die() { log "ERROR: $*"; exit 1; }
need() { [[ -x $1 ]] || die "$1 is missing: apt-get install $2"; }

need /usr/bin/containerd containerd
need /usr/bin/ctr containerd
need /usr/bin/containerd-shim-runc-v2 containerd
need /usr/sbin/runc runc
need $CNI_BIN/bridge containernetworking-plugins
command -v setsid >/dev/null || die "setsid is missing: apt-get install util-linux"
sock=$W/containerd.sock.ttrpc
(( ${#sock} < 108 )) || die "workdir too long: $sock exceeds the 107-byte unix socket path limit"

if [[ -f $W/containerd.pid ]]; then
  pid=$(cat "$W/containerd.pid")
  if [[ -n $pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--config $W/config.toml"; then
    die "containerd (pid $pid) is already running in $W; run stop-containerd.sh $W first"
  fi
  rm -f "$W/containerd.pid"
fi
mkdir -p "$W/cni/net.d" "$W/cni/ipam"

cat >"$W/config.toml" <<EOF
version = 2
root = "$W/root"
state = "$W/state"

[grpc]
  address = "$W/containerd.sock"

[ttrpc]
  address = "$W/containerd.sock.ttrpc"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$W/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
    # Required where root lacks CAP_SYS_RESOURCE (this VM): runc cannot set oom_score_adj=-998 for the
    # sandbox, and every RunPodSandbox fails with "can't get final child's PID from pipe".
    restrict_oom_score_adj = true
    disable_apparmor = true
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "$W/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$CNI_BIN"
      conf_dir = "$W/cni/net.d"
EOF

# Rewritten in place, never moved in: containerd ignores a conflist that appears by rename.
cat >"$W/cni/net.d/10-ke.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "ke-pods",
  "plugins": [
    { "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$SUBNET" }]],
                "routes": [{ "dst": "0.0.0.0/0" }], "dataDir": "$W/cni/ipam" } },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
EOF

if [[ ! -f $IMAGES ]]; then
  log "building $IMAGES"
  "$HERE/build-images.sh" "$IMAGES"
fi

rm -f "$W/containerd.sock" "$W/containerd.sock.ttrpc"
# The inner shell writes its own pid and then becomes containerd (exec), so the recorded pid is containerd's.
setsid bash -c 'echo $$ >"$1/containerd.pid"; exec /usr/bin/containerd --config "$1/config.toml"' _ "$W" \
  </dev/null >>"$W/logs/containerd.log" 2>&1 &
launched=$!
deadline=$((SECONDS + TIMEOUT))
until [[ -S $W/containerd.sock && -s $W/containerd.pid ]]; do
  pid=$launched
  [[ -s $W/containerd.pid ]] && pid=$(cat "$W/containerd.pid")
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 20 "$W/logs/containerd.log" >&2
    die "containerd exited during start (log: $W/logs/containerd.log)"
  fi
  (( SECONDS <= deadline )) || { tail -n 20 "$W/logs/containerd.log" >&2; die "no socket after ${TIMEOUT}s"; }
  sleep 0.05
done

# Namespace k8s.io is the CRI plugin's; ctr labels the images as CRI-managed and unpacks them into overlayfs.
if ! CONTAINERD_ADDRESS=$W/containerd.sock /usr/bin/ctr -n k8s.io images import "$IMAGES" >>"$W/logs/ctr-import.log" 2>&1; then
  tail -n 20 "$W/logs/ctr-import.log" >&2
  die "ctr images import $IMAGES failed"
fi
log "containerd (pid $(cat "$W/containerd.pid")) ready on unix://$W/containerd.sock"
