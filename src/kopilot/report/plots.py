"""Plots as inline SVG text, byte-identical for identical inputs (no dates, fixed hash salt)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE: dict[str, Any] = {
    "svg.hashsalt": "kopilot",
    "svg.fonttype": "none",
    "font.size": 10,
    "legend.fontsize": 10,
    "axes.titlesize": 11,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@contextmanager
def figure(width: float = 9.0, height: float = 3.2, rows: int = 1) -> Iterator[tuple[Any, Any]]:
    with matplotlib.rc_context(cast(Any, STYLE)):
        fig, axes = plt.subplots(
            rows, 1, figsize=(width, height * rows), squeeze=False, sharex=True
        )
        try:
            yield fig, axes[:, 0]
        finally:
            plt.close(fig)


def to_svg(fig: Any, *, layout: bool = True) -> str:
    """The figure as SVG text; `layout=False` when the caller has laid it out already."""
    buf = io.StringIO()
    with matplotlib.rc_context(cast(Any, STYLE)):
        if layout:
            fig.tight_layout()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]
