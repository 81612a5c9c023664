"""Mode connectivity: barriers between pairs of models along the straight line, the straight line after alignment,
and a trained curve to the aligned model (:mod:`qlandscape.merging.curves`), all evaluated at the same points with
batch-norm statistics recomputed at each."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from qlandscape.core.errors import ConfigError, check_choice, check_positive_int
from qlandscape.core.progress import progress_bar
from qlandscape.merging.alignment import align
from qlandscape.merging.curves import DEFAULT_CURVE_POINTS, curve_path, evaluate_path
from qlandscape.merging.parameters import check_models
from qlandscape.merging.results import PathResult
from qlandscape.metrics.modes.results import ConnectivityResult
from qlandscape.models.classical import has_batch_norm

__all__ = ["CURVE_KINDS", "mode_connectivity", "barrier_row"]

CURVE_KINDS = ("bezier", "polychain")


def barrier_row(path: PathResult) -> list[float]:
    """A path's barriers in the order of :data:`qlandscape.metrics.modes.results.BARRIER_FIELDS`."""
    b = path.barriers
    return [b.loss_excess, b.loss_max_minus_mean, b.error_excess, b.error_max_minus_mean]


def _pairs(n: int, pairs: Sequence[tuple[int, int]] | None) -> list[tuple[int, int]]:
    if pairs is None:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    out = []
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(i, int) and 0 <= i < n for i in pair) or pair[0] == pair[1]:
            raise ConfigError("pairs", list(pairs), f"expected pairs of two different model indices in [0, {n})")
        out.append((int(pair[0]), int(pair[1])))
    if not out:
        raise ConfigError("pairs", list(pairs), "expected at least one pair")
    return out


def mode_connectivity(
    models: Sequence[nn.Module],
    x_train: Tensor,
    y_train: Tensor,
    x_eval: Tensor,
    y_eval: Tensor,
    *,
    pairs: Sequence[tuple[int, int]] | None = None,
    curve: str | None = "bezier",
    curve_epochs: int = 20,
    curve_lr: float = 0.01,
    batch_size: int = 32,
    n_points: int = DEFAULT_CURVE_POINTS,
    loss: str = "cross_entropy",
    split: str = "test",
    seed: int = 0,
    progress: bool = False,
) -> ConnectivityResult:
    """Linear, aligned and (unless ``curve`` is None) curved barriers between ``pairs`` of ``models`` (default:
    every pair), evaluated on (x_eval, y_eval); curves are trained on (x_train, y_train), whose inputs also
    recompute batch-norm statistics."""
    models = check_models(models, minimum=2)
    if curve is not None:
        check_choice("curve", curve, CURVE_KINDS)
    n_points = check_positive_int("n_points", n_points, minimum=3)
    curve_epochs = check_positive_int("curve_epochs", curve_epochs)
    chosen = _pairs(len(models), pairs)
    kinds = ("linear", "aligned") + ((curve,) if curve is not None else ())
    x_stats = torch.as_tensor(x_train) if has_batch_norm(models[0]) else None
    rows, losses, errors, distances = [], [], [], []
    with progress_bar(len(chosen), "mode connectivity", enabled=progress, unit="pair") as bar:
        for i, j in chosen:
            a, b = models[i], models[j]
            b_aligned = align(a, b)
            common = {"n_points": n_points, "x_stats": x_stats, "loss": loss, "split": split}
            paths = [
                evaluate_path(a, b, x_eval, y_eval, kind="linear", **common),
                evaluate_path(a, b_aligned, x_eval, y_eval, kind="linear", **common),
            ]
            if curve is not None:
                paths.append(
                    curve_path(
                        a, b_aligned, x_train, y_train, x_eval, y_eval, kind=curve, epochs=curve_epochs,
                        lr=curve_lr, batch_size=batch_size, seed=seed, **common,
                    )
                )  # fmt: skip
            rows.append([barrier_row(p) for p in paths])
            losses.append([p.losses for p in paths])
            errors.append([p.errors for p in paths])
            distances.append([p.distance for p in paths])
            bar.update(1)
    return ConnectivityResult(
        kinds=kinds,
        pairs=np.asarray(chosen, dtype=np.int64),
        ts=np.linspace(0.0, 1.0, n_points),
        losses=np.asarray(losses),
        errors=np.asarray(errors),
        barriers=np.asarray(rows),
        distances=np.asarray(distances),
        split=split,
        loss_name=str(loss),
        bn_reset=x_stats is not None,
        curve_epochs=curve_epochs if curve is not None else 0,
    )
