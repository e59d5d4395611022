#!/usr/bin/env bash
# Test control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) for the
# integration tests in tests/kube. Built from pinned Go modules into
# $KOPILOT_CACHE/controlplane/<version>/bin; idempotent: a no-op when the binaries are there.
# Cold build on a 2-core machine: see hack/controlplane/README.md for the measured time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
exec bash "$ROOT/hack/controlplane/build.sh"
