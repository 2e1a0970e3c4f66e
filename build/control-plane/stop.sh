#!/usr/bin/env bash
# Stop a control plane started by start.sh <dir>.
#
#   build/control-plane/stop.sh <dir>
#
# Sends SIGTERM to every process in <dir>/pids (scheduler and controller-manager first,
# then kube-apiserver, then etcd), waits up to KE_CP_STOP_TIMEOUT seconds (default 20) for
# all of them to exit, then SIGKILLs the rest. A pid is only signalled while its
# /proc/<pid>/cmdline still names the component, so a recycled pid is never killed.
# Keeps <dir> (etcd data, pki, logs) so start.sh <dir> can restart with the same state.
# Exit status 0 when nothing from <dir>/pids is left running.
set -uo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 <dir>" >&2; exit 2; }
D=$1
TIMEOUT=${KE_CP_STOP_TIMEOUT:-20}
log() { printf '[stop %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ ! -f $D/pids ]]; then
  log "no $D/pids; nothing to stop"
  exit 0
fi

ours() { # pid name -> alive (not a zombie) and still the component we started
  local pid=$1 name=$2 state
  [[ -r /proc/$pid/stat ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z ]] || return 1
  [[ $(head -z -n1 "/proc/$pid/cmdline" 2>/dev/null | tr -d '\0') == */"$name" ]]
}

# Reverse start order: clients of the apiserver first, etcd last.
mapfile -t entries < <(tac "$D/pids")
alive() {
  local e n=0
  for e in "${entries[@]}"; do
    set -- $e
    [[ $# -eq 2 ]] && ours "$2" "$1" && n=$((n + 1))
  done
  echo $n
}

deadline=$((SECONDS + TIMEOUT))
for e in "${entries[@]}"; do
  set -- $e
  [[ $# -eq 2 ]] || continue
  if ours "$2" "$1"; then
    log "SIGTERM -> $1 (pid $2)"
    kill -TERM "$2" 2>/dev/null || true
    # Let clients of the apiserver (and then the apiserver itself) exit before their
    # backend goes away; bounded by the overall deadline.
    [[ $1 == etcd ]] || while ours "$2" "$1" && ((SECONDS <= deadline)); do sleep 0.1; done
  fi
done

while (( $(alive) > 0 && SECONDS <= deadline )); do sleep 0.2; done

if (( $(alive) > 0 )); then
  for e in "${entries[@]}"; do
    set -- $e
    [[ $# -eq 2 ]] || continue
    if ours "$2" "$1"; then
      log "still running after ${TIMEOUT}s: SIGKILL -> $1 (pid $2)"
      kill -KILL "$2" 2>/dev/null || true
    fi
  done
  for _ in $(seq 1 50); do (( $(alive) == 0 )) && break; sleep 0.1; done
fi

if (( $(alive) > 0 )); then
  log "ERROR: processes still running:"; cat "$D/pids" >&2
  exit 1
fi
mv -f "$D/pids" "$D/pids.stopped"
log "stopped"
exit 0
