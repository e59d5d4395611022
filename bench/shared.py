"""Where the shared real traces are, for the benchmarks: `../shared/data` beside the repository.

`KOPILOT_SHARED_DATA` overrides it; `/work/shared/data` is the fallback for a machine laid out like CI's.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_data() -> Path:
    env = os.environ.get("KOPILOT_SHARED_DATA")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    return beside if beside.exists() else Path("/work/shared/data")


SHARED_DATA = shared_data()
