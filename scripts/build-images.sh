#!/usr/bin/env bash
# Build kopilot's two images daemonless with buildah (vfs storage, chroot isolation), from nothing
# but Debian's package mirror and PyPI (no container registry is needed or used):
#
#   localhost/kopilot-base:<key>            minimal Debian (mmdebstrap --variant=essential) with
#                                           python3, libstdc++ and the two unprivileged users
#   localhost/kopilot-controller:<version>  kopilot[kube] on the base: `kopilot run` (chart:
#                                           deploy/helm/kopilot), user 65532
#   localhost/kopilot-serving:<version>     kopilot[serve] on the base: `kopilot serve` (chart:
#                                           deploy/helm/model-service), user 10001
#
# Python packages are wheels only, pinned by constraints.txt, installed for the image's own
# Python (3.11, glibc 2.36) whatever Python runs this script; the image's python3 byte-compiles
# them. Each image carries the hash of its inputs (label io.kopilot.inputs): when the inputs have
# not changed, the image is kept and nothing is built. The rootfs tarball and pip's downloads are
# cached in $KOPILOT_CACHE/images, so a machine that keeps that directory but not the image store
# rebuilds without the Debian bootstrap.
#
# Usage: bash scripts/build-images.sh [--force|--check]     (as root; docs/images.md)
#   --force  rebuild everything, the Debian bootstrap included
#   --check  build nothing; exit 0 when both images are built from the current inputs, 1 if not
# Env:   KOPILOT_CACHE (~/.cache/kopilot), KOPILOT_DEBIAN_MIRROR, KOPILOT_DEBIAN_SECURITY_MIRROR,
#        PYTHON (python3: any Python with pip, used only to download and unpack wheels).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

FORCE=0 CHECK=0
case "${1:-}" in
  --force) FORCE=1 ;;
  --check) CHECK=1 ;;
  "") ;;
  *) echo "usage: bash scripts/build-images.sh [--force|--check]" >&2; exit 2 ;;
esac

TOOLS=(buildah mmdebstrap)
[ "$CHECK" = 0 ] || TOOLS=(buildah)
for tool in "${TOOLS[@]}"; do
  if ! command -v "$tool" >/dev/null; then
    echo "build-images: $tool is missing; install it with \`apt-get install -y buildah mmdebstrap\`" \
      "(or run scripts/setup.d/60-images.sh)" >&2
    exit 1
  fi
done

# vfs storage and chroot isolation work as root anywhere (no overlayfs, no user namespaces, no
# daemon); tests/deploy/test_images.py reads the images with the same flags.
BUILDAH=(buildah --storage-driver vfs)
PYTHON="${PYTHON:-python3}"
CACHE="${KOPILOT_CACHE:-$HOME/.cache/kopilot}/images"
mkdir -p "$CACHE"
SUITE=bookworm
MIRROR="${KOPILOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${KOPILOT_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
PACKAGES="python3,libstdc++6"
PY_TAG=311
GLIBC=2_36
ARCH="$(uname -m)"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -1)"
CONTROLLER="localhost/kopilot-controller:$VERSION"
SERVING="localhost/kopilot-serving:$VERSION"

sha() { sha256sum | cut -c1-16; }

label_of() {  # the io.kopilot.inputs label of an image, empty when there is no such image
  "${BUILDAH[@]}" inspect --type image --format '{{index .OCIv1.Config.Labels "io.kopilot.inputs"}}' "$1" \
    2>/dev/null || true
}

build_base() {
  if [ "$FORCE" = 0 ] && [ "$(label_of "$BASE")" = "$BASE_KEY" ]; then
    echo "base: $BASE is up to date"
    return
  fi
  local rootfs="$CACHE/rootfs-$BASE_KEY.tar"
  if [ ! -s "$rootfs" ] || [ "$FORCE" = 1 ]; then
    echo "base: bootstrapping Debian $SUITE ($PACKAGES) from $MIRROR"
    # essential: no apt, no init; merged /usr without the perl-based usrmerge package. The
    # unprivileged users are written straight into /etc (the essential set has no useradd).
    local log="$CACHE/mmdebstrap.log"
    if ! mmdebstrap --variant=essential --include="$PACKAGES" \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --customize-hook='printf "kopilot:x:65532:65532:kopilot controller:/nonexistent:/usr/sbin/nologin\nserving:x:10001:10001:kopilot serving:/nonexistent:/usr/sbin/nologin\n" >> "$1/etc/passwd"' \
      --customize-hook='printf "kopilot:x:65532:\nserving:x:10001:\n" >> "$1/etc/group"' \
      --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
      "$SUITE" "$CACHE/rootfs-$BASE_KEY.part.tar" \
      "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
      "deb $SECURITY $SUITE-security main" >"$log" 2>&1; then
      tail -40 "$log" >&2
      echo "base: mmdebstrap failed (whole log: $log)" >&2
      exit 1
    fi
    mv "$CACHE/rootfs-$BASE_KEY.part.tar" "$rootfs"
  fi
  local ctr
  ctr="$("${BUILDAH[@]}" from scratch)"
  "${BUILDAH[@]}" add --quiet "$ctr" "$rootfs" / >/dev/null
  "${BUILDAH[@]}" config --label "io.kopilot.inputs=$BASE_KEY" --env LANG=C.UTF-8 "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$BASE" >/dev/null
  echo "base: built $BASE"
  # Bases of earlier inputs are no longer used by anything this script builds.
  local old
  for old in $("${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep '/kopilot-base:' || true); do
    [ "$old" = "$BASE" ] || "${BUILDAH[@]}" rmi "$old" >/dev/null 2>&1 || true
  done
  find "$CACHE" -maxdepth 1 -name 'rootfs-*.tar' ! -name "rootfs-$BASE_KEY.tar" -delete
}

# build_app IMAGE EXTRA USER PORT CMD TITLE SMOKE (SMOKE: Python the image must run, as USER)
build_app() {
  local image="$1" extra="$2" user="$3" port="$4" cmd="$5" title="$6" smoke="$7"
  if [ "$FORCE" = 0 ] && [ "$(label_of "$image")" = "$APP_KEY" ]; then
    echo "$image: up to date"
    return
  fi
  local work
  work="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  echo "$image: wheels for kopilot[$extra] (constraints.txt, cp$PY_TAG, manylinux_${GLIBC}_$ARCH)"
  "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$work/dist" .
  local wheel
  wheel="$(ls "$work"/dist/kopilot-*.whl)"
  # Every manylinux tag glibc 2.36 runs (pip does not expand --platform itself).
  local PLATFORMS=() minor
  for minor in $(seq 5 "${GLIBC#2_}"); do PLATFORMS+=(--platform "manylinux_2_${minor}_$ARCH"); done
  PLATFORMS+=(--platform "manylinux2014_$ARCH" --platform "manylinux2010_$ARCH")
  PLATFORMS+=(--platform "manylinux1_$ARCH")
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile --no-warn-conflicts \
    --cache-dir "$CACHE/pip" --target "$work/site" --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi "cp$PY_TAG" \
    "${PLATFORMS[@]}" \
    --constraint constraints.txt "$wheel[$extra]"
  rm -rf "$work/site/bin"  # console scripts carry this machine's interpreter; one is written below
  # Never imported by kopilot: the packages' own test suites, and the kubernetes client's asyncio
  # copy (kubernetes/aio, 68 MB; kopilot uses the synchronous client). The smoke import below
  # proves the image still loads what kopilot needs.
  find "$work/site" -depth -type d -name tests -path '*/numpy/*' -exec rm -rf {} +
  rm -rf "$work/site/kubernetes/aio"
  printf '#!/usr/bin/python3\nimport sys\n\nfrom kopilot.cli import main\n\nsys.exit(main())\n' \
    > "$work/kopilot"
  chmod 0755 "$work/kopilot"

  local ctr
  ctr="$("${BUILDAH[@]}" from "$BASE")"
  "${BUILDAH[@]}" copy --quiet "$ctr" "$work/site" /usr/local/lib/python3.11/dist-packages >/dev/null
  "${BUILDAH[@]}" copy --quiet --chmod 0755 "$ctr" "$work/kopilot" /usr/local/bin/kopilot >/dev/null
  "${BUILDAH[@]}" config \
    --user "$user" --workingdir / --port "$port" \
    --entrypoint '["/usr/local/bin/kopilot"]' --cmd "$cmd" \
    --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1 --env MPLCONFIGDIR=/tmp/matplotlib \
    --label "io.kopilot.inputs=$APP_KEY" \
    --label "org.opencontainers.image.title=$title" \
    --label "org.opencontainers.image.version=$VERSION" \
    --label "org.opencontainers.image.licenses=Apache-2.0" \
    "$ctr"
  # The image's own interpreter compiles the bytecode: the root filesystem is read-only at run time.
  "${BUILDAH[@]}" run --isolation chroot --user 0:0 "$ctr" -- \
    python3 -m compileall -q -j 0 /usr/local/lib/python3.11/dist-packages \
    >/dev/null
  "${BUILDAH[@]}" run --isolation chroot --user "$user" "$ctr" -- python3 -c "$smoke"
  local previous
  previous="$("${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$image" 2>/dev/null \
    || true)"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$image" >/dev/null
  # The image this one replaces (now untagged) is dropped unless a container still uses it.
  [ -z "$previous" ] || "${BUILDAH[@]}" rmi "$previous" >/dev/null 2>&1 || true
  echo "$image: built ($("${BUILDAH[@]}" images --format '{{.Size}}' "$image"))"
}

# The inputs: the base's recipe (the function's own text) and the Debian suite/packages; each app
# image's recipe, the base, the constraints, the project's metadata and every source file.
BASE_KEY="$(printf '%s\n' "$SUITE" "$PACKAGES" "$ARCH" "$(declare -f build_base)" | sha)"
BASE="localhost/kopilot-base:$BASE_KEY"
SRC_KEY="$(
  find src -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*.egg-info/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum
  sha256sum pyproject.toml constraints.txt  # README.md only fills the wheel's description
)"
APP_KEY="$(printf '%s\n' "$BASE_KEY" "$(declare -f build_app)" "$SRC_KEY" | sha)"

if [ "$CHECK" = 1 ]; then
  stale=0
  for image in "$CONTROLLER" "$SERVING"; do
    if [ "$(label_of "$image")" != "$APP_KEY" ]; then
      echo "$image: missing or built from other inputs; run \`bash scripts/build-images.sh\`" >&2
      stale=1
    fi
  done
  exit "$stale"
fi

build_base
build_app "$CONTROLLER" kube 65532:65532 9102 '["--help"]' "kopilot controller (kopilot run)" \
  "import kopilot.cli, kopilot.kube.worlds, kubernetes.client, kubernetes.dynamic, matplotlib.pyplot"
build_app "$SERVING" serve 10001:10001 8080 '["serve", "--help"]' "kopilot model server (kopilot serve)" \
  "import kopilot.cli, kopilot.serving.server, onnxruntime, onnx"
