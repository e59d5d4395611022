#!/usr/bin/env bash
# Prometheus server + promtool for the integration tests in tests/cost and tests/metrics
# (`kopilot advise` against a real Prometheus). Debian's `prometheus` package; the tests run the
# binary directly on 127.0.0.1 with a temp TSDB, never the system service.
# Idempotent: a no-op when both binaries are already on PATH.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "prometheus: already installed ($(prometheus --version 2>&1 | head -1))"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# --no-install-recommends: the web UI assets and node-exporter are not needed for the tests.
$SUDO apt-get install -y -q --no-install-recommends prometheus
# The package starts a system service on :9090 where systemd runs; the tests do not use it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl stop prometheus || true
  $SUDO systemctl disable prometheus || true
fi
prometheus --version 2>&1 | head -1
