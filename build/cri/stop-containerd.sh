#!/usr/bin/env bash
# Stop a containerd started by start-containerd.sh <workdir>, and everything it left running.
#
#   build/cri/stop-containerd.sh [--purge] <workdir>
#
# Shims and containers outlive containerd, so a clean stop removes the sandboxes over CRI first (the test
# helper does). This script does not rely on that; it needs neither containerd nor ctr/crictl:
#   1. SIGTERM containerd (the pid in <workdir>/containerd.pid, only while its command line names this
#      workdir's config), SIGKILL after KE_CRI_STOP_TIMEOUT seconds (default 10);
#   2. `runc delete --force` every container left in <workdir>/runc (kills its processes, removes its cgroup);
#   3. SIGKILL the leftover `containerd-shim-runc-v2 ... -address <workdir>/containerd.sock` and remove their
#      sockets in /run/containerd/s (the one path containerd 1.6 keeps outside the workdir);
#   4. delete the iptables NAT rules of pod IPs still allocated in <workdir>/cni/ipam (no CNI DEL ran);
#   5. unmount whatever is still mounted under <workdir> (rootfs overlays, netns, shm);
#   6. delete the CNI bridge named in the workdir's conflist once nothing is attached to it, unless it is
#      the shared default ke-cni0;
#   7. rmdir the cgroup subtree KE_CRI_CGROUP_PARENT (e.g. /kc-AbC123) in every hierarchy, if set:
#      containerd never removes pod-level cgroup parents;
#   8. with --purge, remove <workdir>.
# Idempotent: running it again, or on a workdir where nothing runs, does nothing and exits 0. Exits 1 when
# something could not be cleaned (named on stderr). Logs to <workdir>/logs/stop.log and stderr.
set -euo pipefail

PURGE=0
[[ ${1:-} == --purge ]] && { PURGE=1; shift; }
[[ $# -eq 1 ]] || { echo "usage: $0 [--purge] <workdir>" >&2; exit 2; }
[[ -d $1 ]] || exit 0
W=$(cd "$1" && pwd)
[[ $W != / ]] || { echo "refusing to clean /" >&2; exit 2; }
TIMEOUT=${KE_CRI_STOP_TIMEOUT:-10}
CGROUP_PARENT=${KE_CRI_CGROUP_PARENT:-}
RUNC_ROOT=$W/runc/k8s.io
RUNC=$(command -v runc || echo /usr/sbin/runc)
mkdir -p "$W/logs"
log() {
  local line
  line=$(printf '[stop-containerd %s] %s' "$(date +%H:%M:%S)" "$*")
  echo "$line" >&2
  if [[ -d $W/logs ]]; then echo "$line" >>"$W/logs/stop.log"; fi
}
failed=0
warn() { log "WARNING: $*"; failed=1; }

cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# 1. containerd itself
if [[ -s $W/containerd.pid ]]; then
  pid=$(cat "$W/containerd.pid")
  ours() { cmdline "$pid" | grep -qF -- "--config $W/config.toml"; }
  if ours; then
    log "SIGTERM -> containerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + TIMEOUT))
    while ours && ((SECONDS <= deadline)); do sleep 0.1; done
    if ours; then
      log "containerd still running after ${TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do ours || break; sleep 0.1; done
    fi
    ours && warn "containerd (pid $pid) did not exit"
  fi
  rm -f "$W/containerd.pid"
fi

# 2. containers runc still knows (pause and app containers alike)
if [[ -d $RUNC_ROOT ]]; then
  for dir in "$RUNC_ROOT"/*/; do
    [[ -d $dir ]] || continue
    id=$(basename "$dir")
    log "runc delete --force $id"
    "$RUNC" --root "$RUNC_ROOT" delete --force "$id" >/dev/null 2>&1 || warn "runc delete --force $id failed"
  done
fi

# 3. shims of this containerd; a shim's socket is /run/containerd/s/sha256("<address>/<namespace>/<id>")
shim_socket() { printf '/run/containerd/s/%s' "$(printf '%s' "$W/containerd.sock/$1/$2" | sha256sum | cut -d' ' -f1)"; }
for proc in /proc/[0-9]*; do
  line=$(cmdline "${proc#/proc/}")
  [[ $line == *containerd-shim-runc-v2* && $line == *" -address $W/containerd.sock "* ]] || continue
  log "SIGKILL -> leftover shim (pid ${proc#/proc/})"
  kill -KILL "${proc#/proc/}" 2>/dev/null || true
done
for task in "$W"/state/io.containerd.runtime.v2.task/*/*/; do
  [[ -d $task ]] || continue
  ns=$(basename "$(dirname "$task")")
  rm -f "$(shim_socket "$ns" "$(basename "$task")")"
done

# 4. NAT rules of pods whose CNI DEL never ran: the bridge plugin's ipMasq chain and portmap's DNAT chain,
# both commented with the sandbox id. host-local keeps one file per allocated IP holding that id.
drop_nat_rules() { # $1 = sandbox id
  local chain rules n i target
  command -v iptables-save >/dev/null || return 0
  for chain in $(iptables-save -t nat | grep -F "id: \\\"$1\\\"" | awk '$1 == "-A" {print $2}' | sort -u); do
    mapfile -t rules < <(iptables -t nat -S "$chain" | grep '^-A ')
    for ((i = ${#rules[@]} - 1; i >= 0; i--)); do
      [[ ${rules[i]} == *"id: \\\"$1\\\""* ]] || continue
      n=$((i + 1))
      target=$(awk '{for (k = 1; k < NF; k++) if ($k == "-j") print $(k + 1)}' <<<"${rules[i]}")
      iptables -t nat -D "$chain" "$n" || warn "iptables -t nat -D $chain $n failed"
      if [[ $target == CNI-* && $target != CNI-HOSTPORT-* ]]; then
        iptables -t nat -F "$target" 2>/dev/null && iptables -t nat -X "$target" 2>/dev/null || true
      fi
    done
  done
}
for alloc in "$W"/cni/ipam/*/*; do
  [[ -f $alloc && $(basename "$alloc") =~ ^[0-9a-f.:]+$ ]] || continue
  id=$(head -n1 "$alloc" | tr -d "\r")  # host-local writes "<id>\r\n<ifname>"
  log "releasing $(basename "$alloc") of sandbox $id"
  drop_nat_rules "$id"
  rm -f "$alloc"
done

# 5. mounts under the workdir, deepest first
mapfile -t mounts < <(awk -v w="$W/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
for m in "${mounts[@]}"; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || warn "cannot unmount $m"
done

# 6. this workdir's own bridge, once no pod is attached (the default ke-cni0 is shared and stays, like cni0)
bridge=$(sed -n 's/.*"bridge": "\([^"]*\)".*/\1/p' "$W/cni/net.d/10-ke.conflist" 2>/dev/null || true)
if [[ -n $bridge && $bridge != ke-cni0 && -d /sys/class/net/$bridge/brif ]]; then
  # A pod's veth goes when the kernel tears down its netns, shortly after the last process and mount.
  for _ in $(seq 30); do [[ -z $(ls -A "/sys/class/net/$bridge/brif") ]] && break; sleep 0.1; done
  if [[ -z $(ls -A "/sys/class/net/$bridge/brif") ]]; then
    log "deleting bridge $bridge"
    ip link del "$bridge" 2>/dev/null || warn "cannot delete bridge $bridge"
  else
    log "bridge $bridge still has ports; kept"
  fi
fi

# 7. the pod cgroup parents, in every v1 hierarchy and in v2
if [[ -n $CGROUP_PARENT ]]; then
  [[ $CGROUP_PARENT == /?* && $CGROUP_PARENT != *..* ]] || { warn "KE_CRI_CGROUP_PARENT must be an absolute cgroup path"; exit 1; }
  for dir in /sys/fs/cgroup"$CGROUP_PARENT" /sys/fs/cgroup/*"$CGROUP_PARENT"; do
    [[ -d $dir ]] || continue
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ -d $dir ]] && warn "cgroup $dir is not empty"
  done
fi

rm -f "$W/containerd.sock" "$W/containerd.sock.ttrpc"
if ((PURGE)); then
  if ((${#mounts[@]} > 0)) && awk -v w="$W/" 'index($5, w) == 1 {found = 1} END {exit !found}' /proc/self/mountinfo; then
    warn "not removing $W: something is still mounted under it"
  else
    rm -rf "$W"
  fi
fi
((failed == 0)) || exit 1
log "stopped"
