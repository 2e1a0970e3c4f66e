#!/usr/bin/env bash
# Build the offline container images as one OCI-layout tarball, for `ctr -n k8s.io images import`.
#
#   build/cri/build-images.sh <out.tar>
#
# One gzip layer (Debian's static busybox with every applet linked in /bin, /etc/passwd and /etc/group)
# shared by three images (docs/cri.md):
#   registry.k8s.io/pause:3.6       entrypoint /bin/sleep infinity: the sandbox image containerd 1.6 expects
#   localhost/lite/busybox:latest   cmd /bin/sh
#   localhost/lite/busybox:v2       the same, plus env LITE_IMAGE_VERSION=v2: another image id, so a rolling
#                                   update has a real image change to make
# Deterministic: the same busybox-static package gives byte-identical output (fixed mtimes, owners, order,
# gzip without a name or timestamp). Needs busybox-static and jq (Debian packages). Scratch files go to a
# temp dir that is removed on exit.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 <out.tar>" >&2; exit 2; }
OUT=$1
BUSYBOX=/bin/busybox
die() { printf '[build-images] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -x $BUSYBOX ]] || die "$BUSYBOX is missing: apt-get install busybox-static"
# Debian's dynamic busybox package also installs /bin/busybox; it would not run in an image without libc.
if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is dynamically linked: apt-get install busybox-static"; fi
command -v jq >/dev/null || die "jq is missing: apt-get install jq"

umask 022
B=$(mktemp -d "${TMPDIR:-/tmp}/ke-img-XXXXXX")
trap 'rm -rf "$B"' EXIT
R=$B/rootfs
mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev" "$R/root" "$R/var" "$B/oci/blobs/sha256"
cp "$BUSYBOX" "$R/bin/busybox"
chmod 0755 "$R/bin/busybox"
for a in $("$BUSYBOX" --list); do
  [[ $a == busybox ]] || ln -s busybox "$R/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
chmod 1777 "$R/tmp"
chmod 0700 "$R/root"
tar -C "$R" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$B/layer.tar" .
DIFFID=$(sha256sum "$B/layer.tar" | cut -d' ' -f1)
gzip -n -c "$B/layer.tar" >"$B/layer.tar.gz"
LDIG=$(sha256sum "$B/layer.tar.gz" | cut -d' ' -f1)
LSIZE=$(stat -c %s "$B/layer.tar.gz")
mv "$B/layer.tar.gz" "$B/oci/blobs/sha256/$LDIG"

# stdin -> content-addressed blob; prints "<hex digest> <size>"
blob() {
  local f=$B/tmpblob d
  cat >"$f"
  d=$(sha256sum "$f" | cut -d' ' -f1)
  mv "$f" "$B/oci/blobs/sha256/$d"
  echo "$d $(stat -c %s "$B/oci/blobs/sha256/$d")"
}

# $1 = image reference, $2 = the config's `config` object (JSON) -> prints the index entry
mkimage() {
  local name=$1 cfg=$2 c m
  c=$(jq -cn --arg diff "sha256:$DIFFID" --argjson cfg "$cfg" \
    '{architecture:"amd64",os:"linux",created:"1970-01-01T00:00:00Z",config:$cfg,
      rootfs:{type:"layers",diff_ids:[$diff]},history:[{created:"1970-01-01T00:00:00Z",created_by:"build-images.sh"}]}' | blob)
  m=$(jq -cn --arg cd "sha256:${c% *}" --argjson cs "${c#* }" --arg ld "sha256:$LDIG" --argjson ls "$LSIZE" \
    '{schemaVersion:2,mediaType:"application/vnd.oci.image.manifest.v1+json",
      config:{mediaType:"application/vnd.oci.image.config.v1+json",digest:$cd,size:$cs},
      layers:[{mediaType:"application/vnd.oci.image.layer.v1.tar+gzip",digest:$ld,size:$ls}]}' | blob)
  jq -cn --arg md "sha256:${m% *}" --argjson ms "${m#* }" --arg name "$name" \
    '{mediaType:"application/vnd.oci.image.manifest.v1+json",digest:$md,size:$ms,
      platform:{architecture:"amd64",os:"linux"},
      annotations:{"io.containerd.image.name":$name,"org.opencontainers.image.ref.name":$name}}'
}

PATH_ENV='"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"'
PAUSE=$(mkimage "registry.k8s.io/pause:3.6" "{\"Env\":[$PATH_ENV],\"Entrypoint\":[\"/bin/sleep\",\"infinity\"],\"WorkingDir\":\"/\"}")
LATEST=$(mkimage "localhost/lite/busybox:latest" "{\"Env\":[$PATH_ENV],\"Cmd\":[\"/bin/sh\"],\"WorkingDir\":\"/\"}")
V2=$(mkimage "localhost/lite/busybox:v2" "{\"Env\":[$PATH_ENV,\"LITE_IMAGE_VERSION=v2\"],\"Cmd\":[\"/bin/sh\"],\"WorkingDir\":\"/\"}")
jq -n --argjson p "$PAUSE" --argjson l "$LATEST" --argjson v "$V2" \
  '{schemaVersion:2,mediaType:"application/vnd.oci.image.index.v1+json",manifests:[$p,$l,$v]}' >"$B/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$B/oci/oci-layout"
mkdir -p "$(dirname "$OUT")"
tar -C "$B/oci" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$OUT.tmp" oci-layout index.json blobs
mv -f "$OUT.tmp" "$OUT"
