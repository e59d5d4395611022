#!/usr/bin/env bash
# The real YOLO detector the serving tests and bench/serving_*.py use: the `nudenet` wheel ships
# `320n.onnx`, an Ultralytics YOLOv8n detection export (18 classes, dynamic batch/H/W axes, class
# names in its metadata). Installed with --no-deps into the active venv: nudenet's own Python code
# needs opencv, which kopilot does not use; only the .onnx file is read. Nothing is downloaded at
# test run time. Idempotent: a no-op when the pinned version is installed.
set -euo pipefail
PY="${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/}python"
INSTALLED=$("$PY" -m pip show nudenet 2>/dev/null || true)
if printf '%s\n' "$INSTALLED" | grep -qx 'Version: 3.4.2'; then
  echo "nudenet 3.4.2 (serving test model): already installed"
  exit 0
fi
"$PY" -m pip install --quiet --no-deps --disable-pip-version-check 'nudenet==3.4.2'
echo "nudenet 3.4.2 (serving test model): installed"
