#!/usr/bin/env bash
# Start a real (node-less) Kubernetes control plane on loopback:
# etcd + kube-apiserver + kube-controller-manager + kube-scheduler.
#
#   build/control-plane/start.sh <dir>
#
# Writes into <dir>:
#   kubeconfig        admin kubeconfig (static token in group system:masters, CA embedded);
#                     works with kubectl and @kubernetes/client-node (kc.loadFromFile)
#   env               shell-sourceable: KUBECONFIG, KE_CP_SERVER, ports, KE_CP_BIN_DIR, tokens
#   pids              "<name> <pid>" per line (stop.sh reads it)
#   logs/<name>.log   one log per component
#   pki/              CA, apiserver serving cert, service-account key pair, token file,
#                     component kubeconfigs
#   etcd/             etcd data (kept; starting again on the same dir restarts with the same state)
# Prints the kubeconfig path as the last stdout line. Exits non-zero (after stopping
# whatever it started and printing log tails to stderr) if the cluster does not come up.
#
# Environment:
#   KE_CP_BIN_DIR            dir holding the binaries (default: `build-binaries.sh --check` output)
#   KE_CP_AUTO_BUILD=1       build the binaries if missing (can take 30-60 min cold)
#   KE_CP_COMPONENTS=all     "all" (default) or "apiserver" (etcd + kube-apiserver only, envtest-like)
#   KE_CP_START_TIMEOUT      seconds to wait for each component (default 120)
#   KE_CP_ETCD_ARGS, KE_CP_APISERVER_ARGS, KE_CP_KCM_ARGS, KE_CP_SCHEDULER_ARGS
#                            extra flags appended to each command line (word-split)
#   KE_CP_ADMIN_TOKEN        admin bearer token (default: random per dir, kept across restarts)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ $# -eq 1 ]] || { echo "usage: $0 <dir>" >&2; exit 2; }
mkdir -p "$1"
D=$(cd "$1" && pwd)
TIMEOUT=${KE_CP_START_TIMEOUT:-120}
COMPONENTS=${KE_CP_COMPONENTS:-all}
case $COMPONENTS in all|apiserver) ;; *) echo "KE_CP_COMPONENTS must be all or apiserver" >&2; exit 2 ;; esac

log() { printf '[start %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for c in openssl curl setsid; do command -v $c >/dev/null || die "$c is required"; done

# ---------------------------------------------------------------- binaries
if [[ -n ${KE_CP_BIN_DIR:-} ]]; then
  BIN=$KE_CP_BIN_DIR
elif [[ ${KE_CP_AUTO_BUILD:-0} == 1 ]]; then
  BIN=$("$HERE/build-binaries.sh" | tail -n1)
else
  BIN=$("$HERE/build-binaries.sh" --check | tail -n1) ||
    die "control-plane binaries are not built; run $HERE/build-binaries.sh (or set KE_CP_AUTO_BUILD=1 / KE_CP_BIN_DIR)"
fi
for b in etcd kube-apiserver kube-controller-manager kube-scheduler; do
  [[ -x $BIN/$b ]] || die "missing $BIN/$b"
done

# ---------------------------------------------------------------- refuse double start
if [[ -f $D/pids ]]; then
  while read -r name pid; do
    if [[ -n ${pid:-} ]] && kill -0 "$pid" 2>/dev/null &&
       [[ $(head -z -n1 "/proc/$pid/cmdline" 2>/dev/null | tr -d '\0') == */"$name" ]]; then
      die "$name (pid $pid) from a previous start.sh is still running in $D; run stop.sh $D first"
    fi
  done <"$D/pids"
  rm -f "$D/pids"
fi
mkdir -p "$D/logs" "$D/pki"

# ---------------------------------------------------------------- credentials (kept across restarts)
P=$D/pki
rand_token() { openssl rand -hex 16; }
cat >"$P/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = kubeedge-ts-control-plane-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
EOF
sign() { # name subject extensions
  openssl req -new -newkey rsa:2048 -nodes -subj "$2" -keyout "$P/$1.key" -out "$P/$1.csr" 2>/dev/null &&
    openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 \
      -extfile "$P/openssl.cnf" -extensions "$3" -out "$P/$1.crt" 2>/dev/null &&
    rm -f "$P/$1.csr"
}
gen_pki() { # each artifact is created only if missing, so restarts keep identities
  umask 077
  if [[ ! -f $P/ca.crt ]]; then
    log "generating CA, serving/front-proxy certs and service-account keys in $P"
    # One CA for everything: apiserver serving cert, client certs (--client-ca-file),
    # front-proxy (requestheader) and the controller-manager's CSR signer.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -config "$P/openssl.cnf" -extensions v3_ca \
      -keyout "$P/ca.key" -out "$P/ca.crt" 2>/dev/null || return 1
  fi
  [[ -f $P/apiserver.crt ]] || sign apiserver /CN=kube-apiserver v3_server || return 1
  [[ -f $P/front-proxy-client.crt ]] || sign front-proxy-client /CN=front-proxy-client v3_client || return 1
  if [[ ! -f $P/sa.pub ]]; then
    { openssl genrsa -out "$P/sa.key" 2048 && openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub"; } 2>/dev/null ||
      return 1
  fi
}
(gen_pki) || die "openssl failed generating $P"
if [[ ! -f $P/tokens.csv ]]; then
  (
    umask 077
    # token,user,uid,"group1,group2"
    printf '%s,admin,admin,"system:masters"\n' "${KE_CP_ADMIN_TOKEN:-$(rand_token)}" >"$P/tokens.csv"
    printf '%s,system:kube-controller-manager,system:kube-controller-manager\n' "$(rand_token)" >>"$P/tokens.csv"
    printf '%s,system:kube-scheduler,system:kube-scheduler\n' "$(rand_token)" >>"$P/tokens.csv"
  )
fi
token_of() { awk -F, -v u="$1" '$2 == u {print $1}' "$P/tokens.csv"; }
ADMIN_TOKEN=$(token_of admin)
KCM_TOKEN=$(token_of system:kube-controller-manager)
SCHED_TOKEN=$(token_of system:kube-scheduler)
CA_DATA=$(base64 -w0 <"$P/ca.crt")

write_kubeconfig() { # file user token server
  (umask 077; cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubeedge-ts
  cluster:
    server: $4
    certificate-authority-data: $CA_DATA
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@kubeedge-ts
  context:
    cluster: kubeedge-ts
    user: $2
    namespace: default
current-context: $2@kubeedge-ts
EOF
  )
}

# ---------------------------------------------------------------- helpers
free_ports() { # N -> N distinct free loopback ports (bound simultaneously, then released)
  if command -v node >/dev/null; then
    node -e '
      const net = require("net"); const n = +process.argv[1]; const ss = []; const ports = [];
      for (let i = 0; i < n; i++) {
        const s = net.createServer(); ss.push(s);
        s.listen(0, "127.0.0.1", () => {
          ports.push(s.address().port);
          if (ports.length === n) { console.log(ports.join(" ")); ss.forEach((x) => x.close()); }
        });
      }' "$1"
  elif command -v python3 >/dev/null; then
    python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss: s.close()' "$1"
  else
    die "need node or python3 to pick free ports"
  fi
}

launch() { # name cmd... ; detached (own session), stdin closed, logs appended
  local name=$1; shift
  printf '\n===== %s start %s\n%s\n' "$(date -u +%FT%TZ)" "$name" "$*" >>"$D/logs/$name.log"
  setsid "$@" </dev/null >>"$D/logs/$name.log" 2>&1 &
  echo "$name $!" >>"$D/pids"
}

pid_of() { awk -v n="$1" '$1 == n {print $2}' "$D/pids"; }

wait_for() { # name description command... ; polls until command succeeds, component dies or timeout
  local name=$1 what=$2; shift 2
  local deadline=$((SECONDS + TIMEOUT)) pid
  pid=$(pid_of "$name")
  until "$@" >/dev/null 2>&1; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited while waiting for $what"; return 1
    fi
    ((SECONDS <= deadline)) || { log "timed out after ${TIMEOUT}s waiting for $what"; return 1; }
    sleep 0.5
  done
  log "$what: ok"
}

https_ok() { # url [token] -> body "ok"
  local out
  out=$(curl -sS --max-time 5 --cacert "$P/ca.crt" ${2:+-H "Authorization: Bearer $2"} "$1") && [[ $out == ok ]]
}
https_ok_insecure() { # component self-signed serving certs (kcm / scheduler)
  local out
  out=$(curl -sS --max-time 5 -k "$1") && [[ $out == ok ]]
}
api_get_ok() { curl -fsS --max-time 5 --cacert "$P/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" "$SERVER$1" >/dev/null; }

dump_logs() {
  local f
  for f in "$D"/logs/*.log; do
    [[ -f $f ]] || continue
    printf '\n----- last 25 lines of %s\n' "$f" >&2
    tail -n 25 "$f" >&2
  done
}

# ---------------------------------------------------------------- start (with retry on port races)
start_once() {

  read -r EP PP AP KP SP <<<"$(free_ports 5)"
  [[ -n ${SP:-} ]] || die "could not pick free ports"
  SERVER=https://127.0.0.1:$AP
  log "ports: etcd=$EP etcd-peer=$PP apiserver=$AP controller-manager=$KP scheduler=$SP"
  : >"$D/pids"

  # shellcheck disable=SC2086
  launch etcd "$BIN/etcd" --name=default --data-dir="$D/etcd" \
    --listen-client-urls="http://127.0.0.1:$EP" --advertise-client-urls="http://127.0.0.1:$EP" \
    --listen-peer-urls="http://127.0.0.1:$PP" --initial-advertise-peer-urls="http://127.0.0.1:$PP" \
    --initial-cluster="default=http://127.0.0.1:$PP" \
    --unsafe-no-fsync=true --log-level=warn ${KE_CP_ETCD_ARGS:-}
  wait_for etcd "etcd /health" curl -fsS --max-time 3 "http://127.0.0.1:$EP/health" || return 1

  write_kubeconfig "$D/kubeconfig" admin "$ADMIN_TOKEN" "$SERVER"
  local admission=(--enable-admission-plugins=NodeRestriction)
  # Without the controller manager nothing creates the per-namespace "default"
  # ServiceAccount, so (like envtest) drop the ServiceAccount admission plugin.
  [[ $COMPONENTS == apiserver ]] && admission+=(--disable-admission-plugins=ServiceAccount)
  # shellcheck disable=SC2086
  launch kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$EP" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$AP" \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
    --client-ca-file="$P/ca.crt" --token-auth-file="$P/tokens.csv" \
    --authorization-mode=Node,RBAC "${admission[@]}" \
    --allow-privileged=true --service-cluster-ip-range=10.0.0.0/24 \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --requestheader-client-ca-file="$P/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$P/front-proxy-client.crt" --proxy-client-key-file="$P/front-proxy-client.key" \
    --endpoint-reconciler-type=none \
    --profiling=false ${KE_CP_APISERVER_ARGS:-}
  wait_for kube-apiserver "kube-apiserver /readyz" https_ok "$SERVER/readyz" "$ADMIN_TOKEN" || return 1

  if [[ $COMPONENTS == all ]]; then
    write_kubeconfig "$P/kube-controller-manager.kubeconfig" system:kube-controller-manager "$KCM_TOKEN" "$SERVER"
    write_kubeconfig "$P/kube-scheduler.kubeconfig" system:kube-scheduler "$SCHED_TOKEN" "$SERVER"
    local kk=$P/kube-controller-manager.kubeconfig sk=$P/kube-scheduler.kubeconfig
    # shellcheck disable=SC2086
    launch kube-controller-manager "$BIN/kube-controller-manager" \
      --kubeconfig="$kk" --authentication-kubeconfig="$kk" --authorization-kubeconfig="$kk" \
      --bind-address=127.0.0.1 --secure-port="$KP" --cert-dir="$P/kube-controller-manager" \
      --leader-elect=false --use-service-account-credentials=true \
      --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
      --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
      --cluster-name=kubeedge-ts --controllers='*,bootstrapsigner,tokencleaner' \
      --profiling=false ${KE_CP_KCM_ARGS:-}
    # shellcheck disable=SC2086
    launch kube-scheduler "$BIN/kube-scheduler" \
      --kubeconfig="$sk" --authentication-kubeconfig="$sk" --authorization-kubeconfig="$sk" \
      --bind-address=127.0.0.1 --secure-port="$SP" --cert-dir="$P/kube-scheduler" \
      --leader-elect=false --profiling=false ${KE_CP_SCHEDULER_ARGS:-}
    wait_for kube-controller-manager "kube-controller-manager /healthz" \
      https_ok_insecure "https://127.0.0.1:$KP/healthz" || return 1
    wait_for kube-scheduler "kube-scheduler /healthz" \
      https_ok_insecure "https://127.0.0.1:$SP/healthz" || return 1
    # The serviceaccount controller creating default/default proves the controller
    # manager is really reconciling; the ServiceAccount admission plugin needs it
    # before pods can be created in a namespace.
    wait_for kube-controller-manager "serviceaccount default/default" \
      api_get_ok /api/v1/namespaces/default/serviceaccounts/default || return 1
  fi
}

ok=0
for attempt in 1 2 3; do
  if start_once; then ok=1; break; fi
  if grep -qi 'address already in use' "$D"/logs/*.log 2>/dev/null && ((attempt < 3)); then
    log "port race (address already in use); retrying with new ports"
    "$HERE/stop.sh" "$D" >&2 || true
    for f in "$D"/logs/*.log; do mv -f "$f" "$f.attempt$attempt"; done
    continue
  fi
  break
done
if ((ok == 0)); then
  dump_logs
  log "stopping what was started"
  "$HERE/stop.sh" "$D" >&2 || true
  die "control plane did not come up (logs in $D/logs)"
fi

cat >"$D/env" <<EOF
KUBECONFIG=$D/kubeconfig
KE_CP_SERVER=$SERVER
KE_CP_APISERVER_PORT=$AP
KE_CP_ETCD_URL=http://127.0.0.1:$EP
KE_CP_ADMIN_TOKEN=$ADMIN_TOKEN
KE_CP_CA_FILE=$P/ca.crt
KE_CP_BIN_DIR=$BIN
EOF
[[ $COMPONENTS == all ]] && printf 'KE_CP_CONTROLLER_MANAGER_PORT=%s\nKE_CP_SCHEDULER_PORT=%s\n' "$KP" "$SP" >>"$D/env"
chmod 600 "$D/env"
log "control plane up at $SERVER (components: $COMPONENTS); pids: $(awk '{printf "%s=%s ", $1, $2}' "$D/pids")"
echo "$D/kubeconfig"
