"""Figures. Each function takes result objects (and optionally an existing ``Axes``) and returns the Figure.

Lines are drawn in :data:`PALETTE`, a colour-blind-safe set (Okabe & Ito 2008, with Tol's indigo, olive and wine)
whose every colour has a contrast of at least 3:1 against white, the WCAG level for graphics, so that no line is a
pale yellow on a white page; beyond its eight colours the line style changes (:func:`line_style`). Filled contours
keep viridis.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from qlandscape.core.io import atomic_write_bytes

__all__ = [
    "LINE_STYLES",
    "PALETTE",
    "axes_or_new",
    "colour",
    "integer_ticks",
    "line_style",
    "save_figure",
    "symlog_ticks",
    "thin_tick_labels",
]

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#332288", "#999933", "#882255", "#000000")
LINE_STYLES = ("-", "--", "-.", ":")


def colour(i: int) -> str:
    """The ``i``-th line colour of :data:`PALETTE` (cycling)."""
    return PALETTE[i % len(PALETTE)]


def line_style(i: int) -> str:
    """The line style of the ``i``-th line: solid for the first eight, then dashed, and so on, so that lines that
    share a colour differ."""
    return LINE_STYLES[(i // len(PALETTE)) % len(LINE_STYLES)]


def axes_or_new(ax: Axes | None, size: tuple[float, float] = (5.0, 4.0)) -> Axes:
    """``ax`` itself, or the axes of a new constrained-layout figure of ``size`` inches."""
    if ax is not None:
        return ax
    _, new_ax = plt.subplots(figsize=size, layout="constrained")
    return new_ax


def integer_ticks(axis: Axis) -> None:
    """Ticks at integers only on a linear axis of counts (a patch count of 2.25 means nothing)."""
    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_minor_locator(NullLocator())


def _axis_fraction(axis: Axis, values: np.ndarray) -> np.ndarray:
    """Where ``values`` sit along ``axis`` as a fraction of its length (through its scale, e.g. symlog)."""
    ax = axis.axes
    limits = ax.get_xlim() if axis is ax.xaxis else ax.get_ylim()
    scale = axis.get_transform()
    lo, hi = scale.transform(np.asarray(limits, dtype=float))
    return (scale.transform(np.asarray(values, dtype=float)) - lo) / (hi - lo)


def thin_tick_labels(axis: Axis, ticks: Sequence[float], labels: Sequence[str], min_gap: float = 0.07) -> None:
    """Set ``ticks`` with ``labels`` on ``axis``, leaving out the label of any tick closer than ``min_gap`` (a
    fraction of the axis length) to the last labelled one, so labels never overprint each other; 0 keeps its label
    first, then the ticks are walked outwards from it."""
    ticks = np.asarray(ticks, dtype=float)
    where = _axis_fraction(axis, ticks)
    keep = np.zeros(ticks.size, dtype=bool)
    order = np.argsort(np.abs(ticks), kind="stable")  # 0 first, then outwards on both sides
    kept: list[float] = []
    for i in order:
        if all(abs(where[i] - w) >= min_gap for w in kept):
            keep[i] = True
            kept.append(where[i])
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_ticklabels([lab if k else "" for lab, k in zip(labels, keep, strict=True)])
    axis.set_minor_locator(NullLocator())


def _decade_label(sign: int, power: int) -> str:
    return f"${'-' if sign < 0 else ''}10^{{{power}}}$"


def symlog_ticks(axis: Axis, values: np.ndarray, linthresh: float, *, min_gap: float = 0.07) -> None:
    """Ticks of a symlog axis: 0 and the powers of ten at or above ``linthresh`` on each side that ``values``
    reach, labelled ``-10^k`` / ``0`` / ``10^k`` and thinned so that no two labels collide (the default locator
    labels every decade, which overprints near 0 when the values span many)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    low_power = math.ceil(math.log10(linthresh) - 1e-9)
    ticks, labels = [0.0], ["0"]
    for sign in (-1, 1):
        side = values[values * sign > 0] * sign
        if side.size == 0 or side.max() < linthresh:
            continue
        for power in range(low_power, math.ceil(math.log10(side.max()) - 1e-9) + 1):
            ticks.append(sign * 10.0**power)
            labels.append(_decade_label(sign, power))
    order = np.argsort(ticks)
    thin_tick_labels(axis, [ticks[i] for i in order], [labels[i] for i in order], min_gap)


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
