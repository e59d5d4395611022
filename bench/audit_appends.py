"""What the locked journal costs per audit record, beside the bare O_APPEND write it replaced.

Appends `--count` verdicts to a fresh audit log three ways, in the same run, on the same disk:
- baseline: what `AuditLog.append` did before (open with O_APPEND, one write, close; no lock,
  no catch-up, no torn-tail check), with and without fsync;
- kopilot: `AuditLog.append` (flock, catch up with other writers, one write), with and without
  fsync (`kopilot run` fsyncs; simulations do not).
Prints records per second and the ratio kopilot / baseline.

    python bench/audit_appends.py [--count 5000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from kopilot.governance import audit, verdicts
from kopilot.model import actions


def _verdict(i: int) -> verdicts.Verdict:
    action = actions.Scale(service="ml/svc", replicas=i % 50, current=4, reason="bench")
    return verdicts.Verdict(
        action=action, outcome=verdicts.Outcome.APPROVED, reason="ok", time=float(i)
    )


def _baseline(path: Path, count: int, fsync: bool) -> float:
    start = time.perf_counter()
    for i in range(count):
        rec = audit.record_of(_verdict(i), i + 1)
        line = (json.dumps(rec, sort_keys=True, default=str) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    return time.perf_counter() - start


def _kopilot(path: Path, count: int, fsync: bool) -> float:
    log = audit.AuditLog(path, fsync=fsync)
    start = time.perf_counter()
    for i in range(count):
        log.append(_verdict(i))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--dir", type=Path, default=None, help="Where the logs go (a disk).")
    parser.add_argument("--quick", action="store_true", help="A small run: 300 appends.")
    args = parser.parse_args()
    if args.quick:
        args.count = min(args.count, 300)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for fsync in (False, True):
            count = args.count if not fsync else max(1, args.count // 10)
            base = _baseline(Path(tmp) / f"base-{fsync}.jsonl", count, fsync)
            ours = _kopilot(Path(tmp) / f"kopilot-{fsync}.jsonl", count, fsync)
            print(
                f"fsync={'on ' if fsync else 'off'} {count:>6} records: "
                f"baseline {count / base:>9.0f}/s, kopilot {count / ours:>9.0f}/s, "
                f"kopilot takes {ours / base:.2f}x the baseline's time"
            )


if __name__ == "__main__":
    main()
