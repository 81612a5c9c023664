"""The evaluation set of a run metric with the shared ``adversarial`` setting
(:mod:`qlandscape.runs.adversarial_data`): the run's clean split, or that split attacked once at the evaluated
point and then held fixed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from qlandscape.core.objective import Objective
from qlandscape.metrics.robustness.evaluation import adversarial_objective
from qlandscape.runs.adversarial_data import attack_of, describe_data
from qlandscape.runs.metric_spec import MetricRun

__all__ = ["evaluation_objective", "titled"]


def evaluation_objective(
    run: MetricRun,
    split: str,
    table: Mapping[str, Any] | None,
    theta: np.ndarray | None,
    metric: str,
    *,
    chunk_size: int | None = None,
    progress: bool = False,
    n_samples: int | None = None,
    memory_budget: int | str | None = None,
) -> Objective:
    """The run's Objective on ``split`` (its first ``n_samples`` samples; None: all): clean when ``table`` is None,
    else on those inputs attacked at ``theta`` (the evaluated point) by the attack ``table`` describes, clipped to
    the data's input range. ``chunk_size`` and ``memory_budget`` size its chunks (see :meth:`Objective.chunk_plan`)."""
    obj = run.objective(split, chunk_size=chunk_size, progress=progress, memory_budget=memory_budget)
    if n_samples is not None and n_samples < obj.n_samples:
        obj = obj.with_data(obj.x[:n_samples], obj.y[:n_samples])
    attack = attack_of(table, metric)
    if attack is None:
        return obj
    point = None if theta is None else obj.as_theta(np.asarray(theta, dtype=np.float64))
    return adversarial_objective(obj, attack, theta=point, bounds=run.dataset.input_range)


def titled(pairs: Iterator[tuple[str, Figure]], table: Mapping[str, Any] | None) -> Iterator[tuple[str, Figure]]:
    """The figures with a line under their titles naming the adversarial inputs (unchanged for clean data)."""
    for name, fig in pairs:
        if table is not None:
            fig.suptitle(f"on {describe_data(table)}", fontsize="small")
        yield name, fig
