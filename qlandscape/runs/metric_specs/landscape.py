"""The ``landscape`` run metric: a 2D slice of the loss around one point of the trajectory, on a random,
Hessian-eigenvector or PCA-of-the-trajectory plane (with the trajectory projected onto it), or a full-period scan of
a QNN with its 2-D Fourier spectrum.

Defaults that resolve the landscape: on a model with circuit angles (a PatchQNN) random directions stay in radians
(normalisation ``auto`` = ``none``) and the grid spans ±π/2 on 21 points, a step of about 0.157 rad per angle (the
RMS angle entry of an unnormalised direction is about 1): a quarter period on each side of the centre, fine enough
that a landscape whose angles enter through cos/sin is drawn without jagged under-sampling. Filter normalisation
of angles would scale a direction by the norm of the angles, which depends on which multiple of 2π each angle sits
at (the demo's slice spanned ±29 rad per axis). Classical nets keep Li et al.'s filter normalisation and a
half-width of 1. A slice whose step exceeds 0.3 rad on a QNN is still computed, with a warning and a note in the
result and in ``run.json`` (``landscape.note``). ``directions = "periodic"`` scans one full period [-π, π)² of a
plane of integer directions (32 points per axis by default) and adds its Fourier spectrum (``landscape.fourier_*``).

Results accumulate by variant (:mod:`qlandscape.runs.variants`): each plane kind is kept under its own name
(``landscape_random_none``, ``landscape_random_filter``, ``landscape_pca``, ``landscape_hessian``,
``landscape_periodic``; ``_init`` / ``_best`` for another point, ``_seed<n>`` for other random directions), with
figures ``<variant>_contour``, ``_surface``, ``_trajectory``, ``_loss_and_error`` (loss and error contours side by
side), ``_contour_<split>`` and ``_loss_and_error_<split>`` for every further split, and ``_fourier``.

This module declares the metric (settings, variants, headline scalars) and imports nothing of the computation: the
slices, the figures and the report's grids are :mod:`qlandscape.runs.metric_hooks.landscape`, loaded when first
used. The choices it offers that the computation defines (:data:`NORMALIZATION_CHOICES`,
:data:`PERIOD_RESOLUTION`) are restated here; a test checks that they are the computation's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from qlandscape.core.errors import ConfigError, is_finite_number, is_integer
from qlandscape.runs.adversarial_data import adversarial_setting, variant_suffix
from qlandscape.runs.metric_spec import (
    POINTS,
    SPLITS,
    Headline,
    MetricSpec,
    budget_setting,
    choice,
    flag,
    hook,
    integer,
    number,
    value,
)

__all__ = [
    "DIRECTIONS",
    "NORMALIZATION_CHOICES",
    "PERIOD_RESOLUTION",
    "LOCAL_RESOLUTION",
    "QNN_HALF_WIDTH",
    "CLASSICAL_HALF_WIDTH",
    "LandscapeSettings",
    "resolved_grid",
    "variant_name",
    "check_combination",
    "SPEC",
]

DIRECTIONS = ("random", "hessian", "pca", "periodic")
# As qlandscape.metrics.landscape.directions.NORMALIZATION_CHOICES and qlandscape.metrics.landscape.slices.
# PERIOD_RESOLUTION define them (restated so that declaring the metric loads no torch; a test checks they agree).
NORMALIZATION_CHOICES = ("auto", "filter", "patch", "layer", "none")
PERIOD_RESOLUTION = 32  # points per axis of a full-period scan
LOCAL_RESOLUTION = 21  # points per axis of a local slice
QNN_HALF_WIDTH = math.pi / 2  # radians: with 21 points, 0.157 rad per step
CLASSICAL_HALF_WIDTH = 1.0  # Li et al. 2018, in units of the filter-normalised direction
_HOOKS = "qlandscape.runs.metric_hooks.landscape"


def _is_range(span: Any) -> bool:
    if span == "auto":
        return True
    if isinstance(span, (list, tuple)):
        return len(span) == 2 and all(map(is_finite_number, span)) and span[0] < span[1]
    return is_finite_number(span) and span > 0


def _is_grid(points: Any) -> bool:
    return points == "auto" or (is_integer(points) and points >= 2)


def _is_splits(splits: Any) -> bool:
    return isinstance(splits, (list, tuple)) and bool(splits) and all(sp in SPLITS for sp in splits)


@dataclass(frozen=True)
class LandscapeSettings:
    """Settings of the ``landscape`` metric."""

    directions: str = choice(
        "random",
        DIRECTIONS,
        "the plane: random directions, the top and bottom Hessian eigenvectors, the trajectory's principal "
        "components, or a full-period scan of a QNN's circuit angles with its Fourier spectrum",
    )
    normalization: str = choice(
        "auto",
        NORMALIZATION_CHOICES,
        "for random directions; auto: none (radians) for a QNN, Li et al. 2018 filter normalisation otherwise",
    )
    grid: Any = value(
        "auto",
        _is_grid,
        "expected an integer >= 2 or 'auto'",
        f"points per axis; auto: {LOCAL_RESOLUTION}, or {PERIOD_RESOLUTION} for the periodic scan",
    )
    range: Any = value(
        "auto",
        _is_range,
        "expected a positive half-width, [low, high] with low < high, or 'auto'",
        "half-width of the grid, or [low, high] (random and hessian directions); auto: π/2 for a QNN's "
        "directions in radians, 1 otherwise",
    )
    point: str = choice("final", POINTS, "the centre: final parameters, lowest-training-loss epoch, or initialisation")
    splits: tuple[str, ...] = value(
        ("train",),
        _is_splits,
        "expected a non-empty list of 'train' and/or 'test'",
        "evaluation sets, each drawn (comma-separated: train,test)",
    )
    seed: int = integer(0, 0, "seed of the random (or periodic) directions")
    chunk_size: int | None = integer(
        None, 1, "at most this many samples per chunk (none: as many as the memory budget allows)"
    )
    memory_budget: int | str | None = budget_setting()
    padding: float = number(5.0, 0, "radians beyond the trajectory (pca)")
    low_frequencies: int = integer(
        2, 0, "periodic scan: the spectrum's low frequencies, max(|k_α|, |k_β|) <= this many cycles per 2π"
    )
    log_scale: bool = flag(False, "log-scale contour levels")
    batch: int | None = integer(None, 1, "grid points evaluated at once (none: as many as fit)")
    figures: bool = flag(True, "draw the figures")
    progress: bool = flag(False, "progress bar", cli=False)
    adversarial: dict[str, Any] | None = adversarial_setting()


def resolved_grid(s: LandscapeSettings) -> int:
    """Points per axis: the setting, or 21 (32 for the periodic scan)."""
    if s.grid != "auto":
        return int(s.grid)
    return PERIOD_RESOLUTION if s.directions == "periodic" else LOCAL_RESOLUTION


def variant_name(
    directions: str, normalization: str, point: str, seed: int, adversarial: dict[str, Any] | None = None
) -> str:
    """The variant a slice is kept under: ``landscape_<directions>`` (+ ``_<normalisation>`` for random directions,
    ``_<point>`` off the final point, ``_seed<n>`` for other random or periodic directions,
    ``_adv_<attack>_<norm>_eps<eps>`` on a fixed adversarial set, :mod:`qlandscape.runs.adversarial_data`)."""
    parts = ["landscape", directions]
    if directions == "random":
        parts.append(normalization)
    if point != "final":
        parts.append(point)
    if directions in ("random", "periodic") and seed != 0:
        parts.append(f"seed{seed}")
    return "_".join(parts) + variant_suffix(adversarial)


def check_combination(s: LandscapeSettings) -> None:
    """Settings that exclude each other: the periodic scan has no range to set."""
    if s.directions == "periodic" and s.range != "auto":
        raise ConfigError(
            "metrics.landscape.range",
            s.range,
            "the periodic scan always spans one period [-π, π); leave range at 'auto'",
        )


SPEC = MetricSpec(
    name="landscape",
    help="2D loss-landscape slice of a run (added to its run directory; each kind of plane is kept)",
    settings=LandscapeSettings,
    compute=hook(f"{_HOOKS}:compute"),
    figures=hook(f"{_HOOKS}:figures"),
    headline=(
        Headline("landscape.variant", "kept as (its files start with this name)", "variant", summary=False),
        Headline("landscape.center_loss", "loss at the centre of the slice", "centre loss"),
        Headline("landscape.min_loss", "lowest loss on the slice", "min loss", summary=False),
        Headline("landscape.max_loss", "highest loss on the slice", "max loss", summary=False),
        Headline(
            "landscape.radians_per_step",
            "grid step in radians (RMS circuit-angle change)",
            "rad/step",
            summary=False,
        ),
        Headline(
            "landscape.fourier_low_fraction",
            "low-frequency share of the variance (periodic)",
            "low-frequency share",
            summary=False,
        ),
        Headline("landscape.note", "note", "note", summary=False),
    ),
    check_against_run=hook(f"{_HOOKS}:check_against_run"),
    sweep_figures=hook(f"{_HOOKS}:sweep_figures"),
)
