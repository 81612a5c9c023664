"""Loss and error at many parameter points, on one or more data splits: the evaluation behind slices and
interpolations.

Points are independent, so they are evaluated in batches through :meth:`Objective.losses` (a PatchQNN takes a
whole group of points in one engine call that encodes the data once; other ``torch.func`` models go through
``vmap`` over points), a chunk of points at a time so memory stays flat. Each split is an Objective over the same
parameters with its own data; the first split is the objective's own data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from qlandscape.core.errors import ConfigError, check_positive_int
from qlandscape.core.objective import Objective

__all__ = ["evaluate_points", "split_objectives"]


def split_objectives(
    objective: Objective, eval_objectives: Mapping[str, Objective] | None, split: str
) -> dict[str, Objective]:
    """``{split: objective, **eval_objectives}`` after checking that every entry is an Objective over the same
    parameters and that no name repeats ``split``."""
    if not isinstance(objective, Objective):
        raise ConfigError("objective", objective, "expected an Objective")
    out = {split: objective}
    for name, obj in (eval_objectives or {}).items():
        if name in out:
            raise ConfigError("eval_objectives", name, f"split names must be unique and differ from {split!r}")
        if not isinstance(obj, Objective) or obj.n_params != objective.n_params:
            raise ConfigError(
                f"eval_objectives[{name!r}]",
                obj,
                f"expected an Objective over the same {objective.n_params} parameters",
            )
        out[name] = obj
    return out


def evaluate_points(
    objectives: Mapping[str, Objective],
    make_points: Callable[[int, int], np.ndarray],
    n_points: int,
    batch: int | None,
    progress: bool,
    desc: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and error (n_splits, n_points) at points built ``batch`` at a time by ``make_points(start, stop)``
    (default: as many as the first objective evaluates per model call, :meth:`Objective.points_per_call`)."""
    first = next(iter(objectives.values()))
    batch = first.points_per_call() if batch is None else check_positive_int("batch", batch)
    losses = np.zeros((len(objectives), n_points))
    errors = np.zeros((len(objectives), n_points))
    starts = range(0, n_points, batch)
    for start in tqdm(starts, desc=desc, disable=not progress, total=len(starts)):
        stop = min(n_points, start + batch)
        thetas = torch.as_tensor(make_points(start, stop))
        for s, obj in enumerate(objectives.values()):
            loss, err = obj.losses(thetas, batch=batch)
            losses[s, start:stop] = loss.numpy()
            errors[s, start:stop] = err.numpy()
    return losses, errors
