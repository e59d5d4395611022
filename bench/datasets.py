"""The public data sets the benchmarks read, where to get them, and the samples `--quick` reads.

A benchmark takes the folder holding the full data sets with `--data DIR` (or `KOPILOT_DATA`):
each data set is one sub-folder named as below, its files named as in their source. `--quick`
reads the small samples in `tests/data/traces` instead (the same layout, fewer rows; their
SOURCE.txt says which rows) and runs a small case. A data set that is not there stops the
benchmark with one line naming it and where to get it, and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests" / "data" / "traces"
BUNDLED = REPO / "src" / "kopilot" / "data"


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSet:
    folder: str
    what: str
    source: str


DATASETS = {
    d.folder: d
    for d in (
        DataSet(
            folder="alibaba-gpu-2023",
            what="the Alibaba GPU cluster trace 2023 (openb node and pod lists)",
            source="github.com/alibaba/clusterdata cluster-trace-gpu-v2023/csv (commit 7a6c496)",
        ),
        DataSet(
            folder="alibaba-gentd26",
            what="the Alibaba GenAI serving trace GenTD26 (qps, base-model load latency, GPU duty cycle)",
            source="github.com/alibaba/clusterdata cluster-trace-v2026-GenAI, the .tar.gz files "
            "unpacked (commit 7a6c496)",
        ),
        DataSet(
            folder="azure-llm-inference-2023",
            what="the Azure LLM inference trace 2023 (code and conv)",
            source="github.com/Azure/AzurePublicDataset data/AzureLLMInferenceTrace_*.csv "
            "(commit b469a11)",
        ),
        DataSet(
            folder="crane-dsp-testdata",
            what="Crane's DSP predictor test series input0..15.csv",
            source="github.com/gocrane/crane pkg/prediction/dsp/test_data (commit 2b0ddae8)",
        ),
        DataSet(
            folder="nab",
            what="three NAB series (nyc_taxi, elb_request_count_8c0756, Twitter_volume_GOOG)",
            source="github.com/numenta/NAB data/realKnownCause, realAWSCloudwatch, realTweets "
            "(commit ea702d7)",
        ),
        DataSet(
            folder="nab-dev",
            what="the NAB dev subset (data/<5 categories>, labels/combined_windows.json, "
            "profiles.json)",
            source="github.com/numenta/NAB data/, labels/, config/profiles.json (commit ea702d7)",
        ),
    )
}


def add_arguments(parser: argparse.ArgumentParser, *needs: str) -> None:
    """`--data` and `--quick`, their help naming the data sets this benchmark reads."""
    names = ", ".join(f"{n}/ ({DATASETS[n].what})" for n in needs)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ["KOPILOT_DATA"]) if os.environ.get("KOPILOT_DATA") else None,
        help=f"folder holding the full data sets, one sub-folder each: {names}; "
        "where to get them: bench/datasets.py (default: $KOPILOT_DATA)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small run on the samples bundled in tests/data/traces (no --data needed)",
    )


def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 2 (a usage error), no traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def root(args: argparse.Namespace, *needs: str) -> Path:
    """The folder to read: the samples with --quick, else --data once each data set is found."""
    if args.quick:
        return SAMPLES
    for name in needs:
        if args.data is None or not (args.data / name).is_dir():
            where = "no --data given" if args.data is None else f"{args.data / name} not found"
            d = DATASETS[name]
            fail(
                f"{where}: this benchmark needs {name}/, {d.what}, from {d.source}; "
                "pass --data DIR (the folder holding it) or --quick to run on the bundled samples"
            )
    assert args.data is not None
    return Path(args.data)


def need_file(path: Path) -> Path:
    """A file the run reads, or one line naming it and exit 2."""
    if not path.is_file():
        fail(f"{path} not found (bench/datasets.py says where each data set comes from)")
    return path


def add_quick(parser: argparse.ArgumentParser, **small: object) -> None:
    """`--quick` for a benchmark without data: the same run with the small values given here."""
    what = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in small.items())
    parser.add_argument(
        "--quick", action="store_true", help=f"a small run: {what} (each unless given)"
    )
    parser.set_defaults(quick_values=small)


def apply_quick(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """With --quick, every option left at its default takes its small value."""
    if args.quick:
        for name, value in args.quick_values.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
