#!/usr/bin/env bash
# edgeinfer on an emulated ARM64 board, compared with this host. Not part of CI (it takes ~20-40 minutes).
#
#   bash scripts/arm64-check.sh [ROOT]      # as root; ROOT defaults to /var/tmp/edgeinfer-arm64
#   CPUS="cortex-a72 max" MODELS="other.onnx" bash scripts/arm64-check.sh   # CPU models; more models
#   MODELS="m.onnx" IMAGES=held_out/ bash scripts/arm64-check.sh            # also logits on these PNGs
#   MIRROR=http://mirror.example/debian bash scripts/arm64-check.sh           # a Debian mirror of your choice
#
# 1. builds a Debian bookworm arm64 root with debootstrap + qemu-user-static (once; reused afterwards), from
#    $MIRROR, else from the Debian mirror the host's apt sources name (the script names no download host);
# 2. installs the runtime there from PyPI in a venv, at the host's numpy/onnxruntime/Pillow/click versions,
#    plus edgeinfer as a wheel built from this checkout;
# 3. runs scripts/platform_check.py (transforms vs the local Pillow, the model's logits, `predict examples`)
#    on the host and, for each CPU model in $CPUS, in the root; then compares each with the host; with $IMAGES
#    (a folder of PNGs) each MODELS model's logits on them too: top-1 agreement and max |logit diff| with the host.
#
# Facts that cost hours: binfmt_misc must be mounted and qemu-aarch64 enabled; never bind-mount the host's /sys
# into the root (onnxruntime's cpuinfo crashes on it); QEMU_CPU must be unset or a CPU name, never empty;
# pip inside the root needs the host's pip configuration and PIP_* variables.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-/var/tmp/edgeinfer-arm64}
CPUS=${CPUS:-"cortex-a72 cortex-a76 cortex-a57 max"}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-runs/arm64}
mkdir -p "$OUT"

# The first Debian archive entry (component main) of the host's apt sources, as apt reads them
# (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list and *.sources): a suite named like a Debian release,
# else its -updates or -backports (the same archive); never -security (another archive, without bookworm).
host_debian_mirror() {
  local names="stable|oldstable|oldoldstable|testing|unstable|sid|bookworm"
  names+=$(. /etc/os-release 2>/dev/null && [ "${ID:-}" = debian ] && echo "|${VERSION_CODENAME:-sid}" || true)
  { apt-get indextargets --no-release-info --format '$(TARGET_OF) $(COMPONENT) $(RELEASE) $(REPO_URI)' || true; } |
    awk -v release="^($names)$" -v updates="^($names)-(updates|backports)$" '
      $1 != "deb" || $2 != "main" { next }
      $3 ~ release && !archive { archive = $4 }
      $3 ~ updates && !same_archive { same_archive = $4 }
      END { mirror = archive ? archive : same_archive; sub(/\/$/, "", mirror); print mirror }'
}

# 1. emulation and the root file system
command -v qemu-aarch64-static >/dev/null && command -v debootstrap >/dev/null ||
  { apt-get update -qq && apt-get install -y -qq qemu-user-static binfmt-support debootstrap >/dev/null; }
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true
if [ ! -x "$ROOT/usr/bin/python3" ]; then
  MIRROR=${MIRROR:-$(host_debian_mirror)}
  [ -n "$MIRROR" ] ||
    { echo "arm64-check.sh: no Debian archive in the host's apt sources; set MIRROR=http://.../debian" >&2; exit 2; }
  echo "== debootstrap arm64 into $ROOT from $MIRROR"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$ROOT" "$MIRROR" >/dev/null
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
for f in /etc/pip.conf /etc/ssl/certs/ca-certificates.crt; do [ -f "$f" ] && install -D -m 644 "$f" "$ROOT$f"; done
[ -d /etc/xdg/pip ] && mkdir -p "$ROOT/etc/xdg" && cp -r /etc/xdg/pip "$ROOT/etc/xdg/"
[ -f ~/.config/pip/pip.conf ] && install -D -m 644 ~/.config/pip/pip.conf "$ROOT/root/.config/pip/pip.conf"
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
trap 'umount "$ROOT/proc" "$ROOT/dev" 2>/dev/null || true' EXIT

# 2. the runtime at the host's versions, edgeinfer from this checkout
pins=$("$PYTHON" -c 'import importlib.metadata as m
print(" ".join(f"{name}=={m.version(name)}" for name in ("numpy", "onnxruntime", "pillow", "click")))')
rm -rf "$ROOT/opt/edgeinfer" && mkdir -p "$ROOT/opt/edgeinfer"
"$PYTHON" -m pip wheel -q --no-deps -w "$ROOT/opt/edgeinfer/wheels" . >/dev/null
cp -r scripts examples "$ROOT/opt/edgeinfer/"
chroot_run() {  # chroot_run [QEMU_CPU=name] command...
  local vars=(PATH=/usr/bin:/bin HOME=/root)
  while IFS= read -r v; do vars+=("$v"); done < <(env | grep '^PIP_' || true)
  if [[ "$1" == QEMU_CPU=* ]]; then vars+=("$1"); shift; fi
  env -i "${vars[@]}" "$(command -v chroot)" "$ROOT" "$@"
}
if [ ! -x "$ROOT/opt/venv/bin/python" ]; then
  chroot_run python3 -m venv /opt/venv
fi
echo "== pip install in the arm64 root: $pins"
chroot_run /opt/venv/bin/pip install -q $pins
wheel=$(cd "$ROOT/opt/edgeinfer/wheels" && ls edgeinfer-*.whl)
chroot_run /opt/venv/bin/pip install -q --no-deps --force-reinstall "/opt/edgeinfer/wheels/$wheel"

# 3. self-test and reports on each CPU, compared with the host (the checkout's scripts, the installed edgeinfer)
for model in ${MODELS:-}; do cp "$model" "$ROOT/opt/edgeinfer/"; done
rm -rf "$ROOT/opt/edgeinfer/images"
[ -z "${IMAGES:-}" ] || { mkdir -p "$ROOT/opt/edgeinfer/images" && cp "$IMAGES"/*.png "$ROOT/opt/edgeinfer/images/"; }
status=0
for model in default ${MODELS:-}; do
  name=$(basename "$model" .onnx)
  host_model="" root_model=""  # empty: the bundled model
  host_images="" root_images=""  # empty: no folder of PNGs
  [ "$model" = default ] || { host_model=$model; root_model=/opt/edgeinfer/$name.onnx; }
  [ "$model" = default ] || [ -z "${IMAGES:-}" ] || { host_images=$IMAGES; root_images=/opt/edgeinfer/images; }
  "$PYTHON" scripts/platform_check.py report ${host_model:+--model "$host_model"} \
    ${host_images:+--images "$host_images"} > "$OUT/$name-host.json"
  for cpu in $CPUS; do
    echo "== $name on aarch64, QEMU_CPU=$cpu"
    chroot_run "QEMU_CPU=$cpu" /opt/venv/bin/edgeinfer verify $root_model > "$OUT/$name-verify-$cpu.txt" 2>&1 ||
      status=1
    tail -1 "$OUT/$name-verify-$cpu.txt"
    chroot_run "QEMU_CPU=$cpu" /bin/sh -c "cd /opt/edgeinfer && /opt/venv/bin/python scripts/platform_check.py \
      report ${root_model:+--model $root_model} ${root_images:+--images $root_images}" > "$OUT/$name-arm64-$cpu.json"
    "$PYTHON" scripts/platform_check.py compare "$OUT/$name-host.json" "$OUT/$name-arm64-$cpu.json" |
      tee "$OUT/$name-compare-$cpu.txt" || status=1
  done
done
exit $status
