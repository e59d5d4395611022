#!/usr/bin/env bash
# The whole test suite, from nothing: Python env, system parts (scripts/setup.d/*), checks, tests.
# Usage: bash scripts/test.sh [extra pytest args]
# Needs (checked first, by scripts/prerequisites.sh): Python >= 3.11; Go >= 1.24 and ~5.5 GB of
# disk until the test control plane is built (about 28 min the first time); prometheus, promtool
# and openssl, or root/sudo with apt-get. `bash scripts/test-times.sh` times each phase.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export KOPILOT_CACHE="${KOPILOT_CACHE:-$HOME/.cache/kopilot}"
bash scripts/prerequisites.sh
mkdir -p "$KOPILOT_CACHE"

echo "== python environment (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e '.[dev]' -c constraints.txt

echo "== system parts"
for step in scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  echo "-- $step"
  bash "$step"
done

echo "== lint (ruff), types (mypy --strict), layers (import-linter)"
ruff check src tests bench
ruff format --check src tests bench
mypy
lint-imports

echo "== tests"
python -m pytest "$@"
