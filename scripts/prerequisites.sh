#!/usr/bin/env bash
# What `bash scripts/test.sh` needs, checked before it starts: prints one line naming everything
# missing and exits 1, or prints what it found and exits 0. Only what a run still has to build
# is required: with the control plane already in $KOPILOT_CACHE, Go and its disk are not needed.
#   Python >= 3.11                      (.venv)
#   Go >= 1.24 + ~5.5 GB free disk       (the control plane's first build, scripts/setup.d/50-*)
#   prometheus + promtool + openssl, or root/sudo with apt-get to install them (setup.d/20-*, 50-*)
#   ~1.5 GB free disk                    (a new .venv)
set -uo pipefail
cd "$(dirname "$0")/.."
KOPILOT_CACHE="${KOPILOT_CACHE:-$HOME/.cache/kopilot}"
# shellcheck disable=SC1091
source hack/controlplane/versions.env
missing=()
found=()

free_gb() {  # free space in GB on the filesystem that holds $1 (or its nearest existing parent)
  local d="$1"
  while [ ! -e "$d" ]; do d=$(dirname "$d"); done
  df -Pk "$d" | awk 'NR == 2 {printf "%.1f", $4 / 1048576}'
}
enough() { awk -v have="$1" -v need="$2" 'BEGIN {exit !(have >= need)}'; }

if py=$(command -v python3) && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  found+=("python $("$py" -c 'import platform; print(platform.python_version())')")
else
  missing+=("Python >= 3.11 (python3)")
fi

bin="$KOPILOT_CACHE/controlplane/$K8S_VERSION/bin"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/helm" ] && [ -s "$bin/kwok-stages.yaml" ]; then
  found+=("control plane $K8S_VERSION built")
else
  go_version=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
  if [ -n "$go_version" ] && printf '1.24\n%s\n' "$go_version" | sort -V -C; then
    found+=("go $go_version")
  else
    missing+=("Go >= 1.24 to build the test control plane (found: ${go_version:-none}, see https://go.dev/dl)")
  fi
  have=$(free_gb "$KOPILOT_CACHE")
  if enough "$have" 5.5; then found+=("${have} GB free for the cache"); else
    missing+=("5.5 GB free disk for $KOPILOT_CACHE (the control-plane build; ${have} GB free)")
  fi
fi

can_apt=no
if command -v apt-get >/dev/null && { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null; }; then
  can_apt=yes
fi
for tool in prometheus promtool openssl; do
  if command -v "$tool" >/dev/null; then found+=("$tool"); elif [ "$can_apt" = no ]; then
    missing+=("$tool, or root/sudo with apt-get to install it")
  fi
done

if [ ! -x .venv/bin/python ]; then
  have=$(free_gb .)
  enough "$have" 1.5 || missing+=("1.5 GB free disk for .venv (${have} GB free)")
fi

if [ ${#missing[@]} -gt 0 ]; then
  list=$(printf '%s; ' "${missing[@]}")
  echo "test.sh: missing: ${list%; }" >&2
  exit 1
fi
list=$(printf '%s, ' "${found[@]}")
echo "prerequisites: ${list%, }"
