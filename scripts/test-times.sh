#!/usr/bin/env bash
# How long the test command (scripts/test.sh) takes, phase by phase, warm and cold.
#   bash scripts/test-times.sh                 # every phase warm, in this checkout's .venv
#   bash scripts/test-times.sh -- tests/cli    # the pytest phase on these paths only
#   COLD=0 bash scripts/test-times.sh          # skip the cold venv (it installs from PyPI)
#   COLD_SETUP=1 bash scripts/test-times.sh    # also each setup step on an empty KOPILOT_CACHE
#                                              # (the control plane builds from nothing: ~30 min)
# Warm: each phase as test.sh runs it here, with the caches in place (setup steps are then
# no-ops). Cold: the venv phase is measured in a temporary directory (a fresh venv and
# `pip install -e .[dev]`, pip's download cache kept); the control-plane and Prometheus cold
# times need an empty cache or a fresh machine, so they are printed as recorded, with where from.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export KOPILOT_CACHE="${KOPILOT_CACHE:-$HOME/.cache/kopilot}"
PYTEST_ARGS=()
if [ "${1:-}" = "--" ]; then shift; PYTEST_ARGS=("$@"); fi
rows=()

timed() {  # timed NAME KIND command...: run it, record the wall time and the exit code
  local name=$1 kind=$2 start end rc
  shift 2
  start=$(date +%s.%N)
  "$@" >"/tmp/kopilot-test-times.$$.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  rows+=("$(printf '%-34s %-8s %9.1f s  %s' "$name" "$kind" "$(echo "$end - $start" | bc)" \
    "$([ $rc -eq 0 ] && echo ok || echo "exit $rc (log: /tmp/kopilot-test-times.$$.$name.log)")")")
  [ $rc -eq 0 ] || cp "/tmp/kopilot-test-times.$$.log" "/tmp/kopilot-test-times.$$.$name.log"
}

if [ "${COLD:-1}" = 1 ]; then
  tmp=$(mktemp -d)
  timed "venv: create" cold python3 -m venv "$tmp/venv"
  timed "venv: pip install -e .[dev]" cold "$tmp/venv/bin/pip" install --quiet -e ".[dev]"
  rm -rf "$tmp"
  # -e wrote this checkout's egg-info again; the repository's .venv still points here.
fi
if [ "${COLD_SETUP:-0}" = 1 ]; then
  # Each setup step against an empty cache (Go modules and builds included). Steps that install
  # system packages (Prometheus, buildah) are cold only on a machine without them; the images'
  # store is the system's, so their row is cold only where no image was ever built.
  cold_cache=$(mktemp -d)
  for step in scripts/setup.d/*.sh; do
    timed "setup: $(basename "$step" .sh)" cold env KOPILOT_CACHE="$cold_cache" bash "$step"
  done
  rm -rf "$cold_cache"
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# shellcheck disable=SC1091
source .venv/bin/activate
timed "venv: pip install -e .[dev]" warm python -m pip install --quiet -e '.[dev]'
for step in scripts/setup.d/*.sh; do
  timed "setup: $(basename "$step" .sh)" warm bash "$step"
done
timed "lint: ruff check + format" warm bash -c 'ruff check src tests bench && ruff format --check src tests bench'
timed "types: mypy --strict" warm mypy
timed "layers: lint-imports" warm lint-imports
timed "tests: pytest ${PYTEST_ARGS[*]:-(all)}" warm python -m pytest -q -p no:cacheprovider "${PYTEST_ARGS[@]}"
rm -f "/tmp/kopilot-test-times.$$.log"

echo "phase                              run        wall"
printf '%s\n' "${rows[@]}"
cat <<'NOTE'
setup: 50-controlplane               cold    ~2184 s  recorded (COLD_SETUP=1 measures it): 36 min 24 s on 2026-12-03 with
                                                      8 other jobs on the 2 cores (apiserver 14 min); 27 min 22 s in hack/controlplane/README.md
setup: 20-prometheus                 cold         -   apt-get install prometheus: depends on the mirror; not measured here
NOTE
