#!/usr/bin/env bash
# Test control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) for the
# integration tests in tests/kube. Built from pinned Go modules into
# $KOPILOT_CACHE/controlplane/<version>/bin; idempotent: a no-op when the binaries are there.
# A cold build takes about half an hour on 2 cores (measured: hack/controlplane/README.md).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# The fixture makes its throw-away CA and keys with openssl.
if ! command -v openssl >/dev/null; then
  echo "controlplane: installing openssl (Debian)"
  apt-get update -qq && apt-get install -y -qq openssl
fi
exec bash "$ROOT/hack/controlplane/build.sh"
