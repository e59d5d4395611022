"""Where the tests' real trace samples are: `tests/data/traces`, inside the repository.

Each sample is a small, unchanged slice of a public data set (tests/data/traces/SOURCE.txt says
which rows, from where, under which licence). Tests never read outside the repository; a check
that needs a whole data set is a benchmark (bench/, `--data`).
"""

from __future__ import annotations

from pathlib import Path

TRACES = Path(__file__).resolve().parent / "data" / "traces"
