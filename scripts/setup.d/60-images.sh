#!/usr/bin/env bash
# The two kopilot images (localhost/kopilot-controller, localhost/kopilot-serving) for
# tests/deploy/test_images.py, built daemonless by scripts/build-images.sh with Debian's buildah
# and mmdebstrap (installed here when missing; needs root, or sudo). No container registry is used.
# Cold: about 6 minutes on 2 busy cores (Debian bootstrap + wheels); warm: a no-op (docs/images.md).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v buildah >/dev/null || ! command -v mmdebstrap >/dev/null; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "images: installing buildah and mmdebstrap (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends buildah mmdebstrap
fi
start=$SECONDS
bash "$ROOT/scripts/build-images.sh"
echo "images: ready in $((SECONDS - start)) s"
