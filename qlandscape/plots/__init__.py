"""Figures. Each function takes result objects (and optionally an existing ``Axes``) and returns the Figure."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qlandscape.core.io import atomic_write_bytes

__all__ = ["axes_or_new", "save_figure"]


def axes_or_new(ax: Axes | None, size: tuple[float, float] = (5.0, 4.0)) -> Axes:
    """``ax`` itself, or the axes of a new constrained-layout figure of ``size`` inches."""
    if ax is not None:
        return ax
    _, new_ax = plt.subplots(figsize=size, layout="constrained")
    return new_ax


def save_figure(fig: Figure, path_without_suffix: str | Path, *, dpi: int = 150) -> tuple[Path, Path]:
    """Write ``fig`` as ``path.png`` and ``path.pdf`` (each atomically); return both paths."""
    base = Path(path_without_suffix)
    written = []
    for suffix in (".png", ".pdf"):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=suffix[1:], dpi=dpi, bbox_inches="tight")
        target = base.parent / (base.name + suffix)
        atomic_write_bytes(target, buffer.getvalue())
        written.append(target)
    return written[0], written[1]
