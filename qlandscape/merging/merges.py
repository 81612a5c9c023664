"""Merges of models of one architecture into one model: averages, soups, SWA, task arithmetic, TIES, Fisher.

Every merge works on flat parameter vectors (:mod:`qlandscape.merging.parameters`) and returns a new model; the
inputs are never changed. Circuit angles are averaged circularly (:func:`qlandscape.merging.periodic.circular_mean`)
and their task vectors are periodic differences, wrapped into half a period either side.

Batch norm: the merged model's running statistics are the (weighted) average of the inputs' by default; given
``x_stats`` they are recomputed at the merged parameters on those inputs
(:func:`qlandscape.models.classical.recompute_bn_statistics`), which is what a merged network needs.

* ``average``: weighted average (weights normalised, default equal).
* ``uniform_soup``: the equal-weight average (Wortsman et al. 2022).
* ``greedy_soup``: ingredients sorted by held-out accuracy; each joins the soup only if the held-out accuracy of
  the soup rises (on equal accuracy, if the held-out loss falls).
* ``swa``: :class:`torch.optim.swa_utils.AveragedModel` over the models in order, and
  :func:`torch.optim.swa_utils.update_bn` on ``x_stats`` when given (Izmailov et al. 2018). Circuit angles are first
  moved to the periodic images nearest the first model's, so the running mean is the circular one for close angles.
* ``task_arithmetic``: θ = θ_base + λ Σ_i (θ_i − θ_base) (Ilharco et al. 2023), λ in (0, 1] given, or chosen on a
  held-out split from ``lambdas``.
* ``ties``: trim each task vector to its top-k% magnitudes, elect each entry's sign by the sign of the summed
  trimmed values (mass), average the entries that agree with it (disjoint mean), θ = θ_base + λ·merged (Yadav et
  al. 2023).
* ``fisher``: θ_j = Σ_i F_ij θ_ij / Σ_i F_ij with the diagonal of each model's Fisher information on inputs ``x``
  (Matena & Raffel 2022): for class logits z, ``F = E_x Σ_c p_c (∂ log p_c / ∂θ)²``, the expected Fisher of the
  softmax, from the output Jacobian of the :class:`~qlandscape.core.objective.Objective`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, update_bn

from qlandscape.core.errors import ConfigError, check_choice, check_positive_int, is_finite_number
from qlandscape.core.objective import Objective
from qlandscape.merging.alignment import align
from qlandscape.merging.parameters import check_models, flat_parameters, floating_buffers, with_parameters
from qlandscape.merging.periodic import angle_periods, circular_mean, periodic_align, periodic_difference
from qlandscape.models.classical import has_batch_norm, recompute_bn_statistics

__all__ = [
    "MERGE_METHODS",
    "GreedySoup",
    "TaskArithmetic",
    "merge",
    "average",
    "greedy_soup",
    "swa",
    "task_vectors",
    "task_arithmetic",
    "ties_vector",
    "ties",
    "diagonal_fisher",
    "fisher_merge",
]

MERGE_METHODS = ("average", "uniform_soup", "greedy_soup", "swa", "task_arithmetic", "ties", "fisher")
_OPTIONS = {
    "average": ("weights", "x_stats"),
    "uniform_soup": ("x_stats",),
    "greedy_soup": ("x_val", "y_val", "loss", "x_stats"),
    "swa": ("x_stats", "batch_size"),
    "task_arithmetic": ("base", "lam", "lambdas", "x_val", "y_val", "loss", "x_stats"),
    "ties": ("base", "top_k", "lam", "x_stats"),
    "fisher": ("x", "fisher_floor", "x_stats"),
}
DEFAULT_LAMBDAS = tuple(round(0.05 * i, 2) for i in range(1, 21))


def _check_split(x: Tensor | None, y: Tensor | None, what: str) -> tuple[Tensor, Tensor]:
    if x is None or y is None:
        raise ConfigError(what, None, "expected held-out inputs and labels (x_val, y_val)")
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ConfigError(what, tuple(x.shape), "expected a non-empty held-out split")
    if y.shape[0] != x.shape[0]:
        raise ConfigError(what, (tuple(x.shape), tuple(y.shape)), "expected one label per held-out input")
    return x, y


def _check_stats(x_stats: Tensor | None) -> Tensor | None:
    if x_stats is not None and (torch.as_tensor(x_stats).ndim == 0 or torch.as_tensor(x_stats).shape[0] == 0):
        raise ConfigError("x_stats", tuple(torch.as_tensor(x_stats).shape), "expected a non-empty batch of inputs")
    return None if x_stats is None else torch.as_tensor(x_stats)


def _check_lambda(name: str, value: float) -> float:
    if not is_finite_number(value) or not 0 < value <= 1:
        raise ConfigError(name, value, "expected a scaling coefficient in (0, 1]")
    return float(value)


def _finish(model: nn.Module, theta: Tensor, buffers: dict[str, Tensor] | None, x_stats: Tensor | None) -> nn.Module:
    """The merged model: parameters θ, averaged buffers, statistics recomputed on ``x_stats`` when given."""
    out = with_parameters(model, theta, buffers)
    if x_stats is not None and has_batch_norm(out):
        out = recompute_bn_statistics(out, None, x_stats)
    return out


def _mean_buffers(models: Sequence[nn.Module], weights: Tensor) -> dict[str, Tensor]:
    stacks = [floating_buffers(m) for m in models]
    return {
        name: sum(w * s[name].to(torch.float64) for w, s in zip(weights, stacks, strict=True)) for name in stacks[0]
    }


def _stack(models: Sequence[nn.Module]) -> Tensor:
    return torch.stack([flat_parameters(m) for m in models])


def _scalar_weights(weights: Sequence[float] | None, k: int) -> Tensor:
    if weights is None:
        return torch.full((k,), 1.0 / k, dtype=torch.float64)
    values = (
        list(np.asarray(weights, dtype=object).reshape(-1)) if not isinstance(weights, Tensor) else weights.tolist()
    )
    if len(values) != k or not all(is_finite_number(w) and w >= 0 for w in values) or sum(values) <= 0:
        raise ConfigError("weights", list(values), f"expected {k} finite weights >= 0 with a positive sum")
    w = torch.tensor([float(v) for v in values], dtype=torch.float64)
    return w / w.sum()


def average(
    models: Sequence[nn.Module], *, weights: Sequence[float] | None = None, x_stats: Tensor | None = None
) -> nn.Module:
    """The weighted average of ``models`` (circular on circuit angles); see the module docstring for buffers."""
    models = check_models(models)
    x_stats = _check_stats(x_stats)
    w = _scalar_weights(weights, len(models))
    theta = circular_mean(_stack(models), angle_periods(models[0]), w)
    return _finish(models[0], theta, _mean_buffers(models, w), x_stats)


@dataclass(frozen=True)
class GreedySoup:
    """A greedy soup's recipe: the ingredients in the order tried (best held-out accuracy first), which joined,
    each ingredient's held-out accuracy and the soup's held-out accuracy and loss after each try."""

    order: tuple[int, ...]
    chosen: tuple[int, ...]
    ingredient_accuracy: np.ndarray
    soup_accuracy: np.ndarray
    soup_loss: np.ndarray


def _held_out(model: nn.Module, x: Tensor, y: Tensor, loss: str) -> tuple[float, float]:
    objective = Objective(model, x, y, loss)
    return objective.accuracy(), float(objective.loss())


def greedy_soup(
    models: Sequence[nn.Module],
    x_val: Tensor,
    y_val: Tensor,
    *,
    loss: str = "cross_entropy",
    x_stats: Tensor | None = None,
) -> tuple[nn.Module, GreedySoup]:
    """The greedy soup of ``models`` on the held-out split (x_val, y_val), and its recipe."""
    models = check_models(models)
    x_val, y_val = _check_split(x_val, y_val, "held-out split")
    x_stats = _check_stats(x_stats)
    scores = [_held_out(_finish(m, flat_parameters(m), None, x_stats), x_val, y_val, loss) for m in models]
    order = sorted(range(len(models)), key=lambda i: (-scores[i][0], scores[i][1], i))
    chosen = [order[0]]
    best = scores[order[0]]
    soup_acc, soup_loss = [best[0]], [best[1]]
    for i in order[1:]:
        candidate = average([models[j] for j in [*chosen, i]], x_stats=x_stats)
        acc, value = _held_out(candidate, x_val, y_val, loss)
        if acc > best[0] or (acc == best[0] and value < best[1]):
            chosen.append(i)
            best = (acc, value)
        soup_acc.append(best[0])
        soup_loss.append(best[1])
    soup = average([models[j] for j in chosen], x_stats=x_stats)
    return soup, GreedySoup(
        order=tuple(order),
        chosen=tuple(chosen),
        ingredient_accuracy=np.array([s[0] for s in scores]),
        soup_accuracy=np.array(soup_acc),
        soup_loss=np.array(soup_loss),
    )


def swa(models: Sequence[nn.Module], *, x_stats: Tensor | None = None, batch_size: int | None = None) -> nn.Module:
    """Stochastic weight averaging of ``models`` through ``torch.optim.swa_utils`` (see the module docstring)."""
    models = check_models(models)
    x_stats = _check_stats(x_stats)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    periods = angle_periods(models[0])
    first = flat_parameters(models[0])
    averaged = AveragedModel(with_parameters(models[0], first))
    for model in models:
        averaged.update_parameters(with_parameters(model, periodic_align(first, flat_parameters(model), periods)))
    out = with_parameters(averaged.module, flat_parameters(averaged.module))
    if x_stats is not None and has_batch_norm(out):
        size = x_stats.shape[0] if batch_size is None else batch_size
        update_bn([x_stats[i : i + size].to(torch.float64) for i in range(0, x_stats.shape[0], size)], out)
        out.eval()
    return out


def task_vectors(models: Sequence[nn.Module], base: nn.Module) -> Tensor:
    """(K, P) task vectors θ_i − θ_base, periodic differences on circuit angles."""
    models = check_models([base, *models], minimum=2, field="base and models")[1:]
    return periodic_difference(_stack(models), flat_parameters(base), angle_periods(base))


@dataclass(frozen=True)
class TaskArithmetic:
    """The λ used and, when it was chosen on a held-out split, the λ tried with their held-out accuracy and loss."""

    lam: float
    lambdas: np.ndarray
    accuracy: np.ndarray
    loss: np.ndarray


def task_arithmetic(
    models: Sequence[nn.Module],
    base: nn.Module,
    *,
    lam: float | None = None,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    x_val: Tensor | None = None,
    y_val: Tensor | None = None,
    loss: str = "cross_entropy",
    x_stats: Tensor | None = None,
) -> tuple[nn.Module, TaskArithmetic]:
    """θ_base + λ Σ task vectors; λ given, or the one of ``lambdas`` with the best held-out accuracy (then loss)."""
    tau = task_vectors(models, base).sum(0)
    x_stats = _check_stats(x_stats)
    theta0 = flat_parameters(base)
    if lam is not None:
        lam = _check_lambda("lam", lam)
        model = _finish(base, theta0 + lam * tau, None, x_stats)
        return model, TaskArithmetic(lam, np.array([lam]), np.array([np.nan]), np.array([np.nan]))
    grid = [_check_lambda("lambdas", v) for v in lambdas]
    if not grid:
        raise ConfigError("lambdas", list(lambdas), "expected at least one scaling coefficient in (0, 1]")
    x_val, y_val = _check_split(x_val, y_val, "held-out split")
    scores = [_held_out(_finish(base, theta0 + v * tau, None, x_stats), x_val, y_val, loss) for v in grid]
    best = min(range(len(grid)), key=lambda i: (-scores[i][0], scores[i][1]))
    model = _finish(base, theta0 + grid[best] * tau, None, x_stats)
    return model, TaskArithmetic(
        grid[best], np.array(grid), np.array([s[0] for s in scores]), np.array([s[1] for s in scores])
    )


def ties_vector(tau: Tensor, top_k: float) -> Tensor:
    """The TIES merge of task vectors ``tau`` (K, P): trim to the top ``top_k`` % magnitudes of each row (ties at
    the threshold kept), elect signs by mass, disjoint mean of the entries agreeing with the elected sign."""
    if not is_finite_number(top_k) or not 0 < top_k <= 100:
        raise ConfigError("top_k", top_k, "expected a percentage in (0, 100]")
    tau = torch.as_tensor(tau, dtype=torch.float64)
    if tau.ndim != 2 or tau.shape[0] == 0:
        raise ConfigError("tau", tuple(tau.shape), "expected a non-empty (K, P) stack of task vectors")
    k = max(1, int(np.ceil(tau.shape[1] * top_k / 100)))
    magnitude = tau.abs()
    threshold = torch.topk(magnitude, k, dim=1).values[:, -1:]
    trimmed = torch.where(magnitude >= threshold, tau, torch.zeros_like(tau))
    sign = torch.sign(trimmed.sum(0))
    agree = (torch.sign(trimmed) == sign) & (trimmed != 0)
    count = agree.sum(0)
    total = torch.where(agree, trimmed, torch.zeros_like(trimmed)).sum(0)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))


def ties(
    models: Sequence[nn.Module],
    base: nn.Module,
    *,
    top_k: float = 20.0,
    lam: float = 1.0,
    x_stats: Tensor | None = None,
) -> nn.Module:
    """θ_base + λ · TIES(task vectors) (see :func:`ties_vector`)."""
    if not is_finite_number(top_k) or not 0 < top_k <= 100:
        raise ConfigError("top_k", top_k, "expected a percentage in (0, 100]")
    lam = _check_lambda("lam", lam)
    x_stats = _check_stats(x_stats)
    merged = ties_vector(task_vectors(models, base), top_k)
    return _finish(base, flat_parameters(base) + lam * merged, None, x_stats)


def diagonal_fisher(model: nn.Module, x: Tensor, *, chunk_size: int = 64) -> Tensor:
    """The diagonal of the expected Fisher information of a softmax classifier on inputs ``x`` (P,)."""
    x = torch.as_tensor(x)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ConfigError("x", tuple(x.shape), "expected a non-empty batch of inputs for the Fisher information")
    chunk_size = check_positive_int("chunk_size", chunk_size)
    objective = Objective(model, x, torch.zeros(x.shape[0], dtype=torch.long))
    theta = objective.as_theta(None)
    total = torch.zeros_like(theta)
    for start in range(0, x.shape[0], chunk_size):
        xc = objective.x[start : start + chunk_size]
        jac = objective.jacobian(theta, xc, chunk_size=chunk_size)  # (B, C, P) of the logits
        p = torch.softmax(objective.outputs(theta, xc), dim=-1)  # (B, C)
        score = jac - torch.einsum("bc,bcp->bp", p, jac)[:, None, :]  # ∂ log p_c / ∂θ
        total += torch.einsum("bc,bcp->p", p, score**2)
    return total / x.shape[0]


def fisher_merge(
    models: Sequence[nn.Module], x: Tensor, *, fisher_floor: float = 1e-8, x_stats: Tensor | None = None
) -> nn.Module:
    """The diagonal-Fisher weighted merge (circular on circuit angles); ``fisher_floor`` is added to every Fisher
    entry so that a direction no model's outputs depend on is averaged equally."""
    models = check_models(models)
    if not is_finite_number(fisher_floor) or fisher_floor <= 0:
        raise ConfigError("fisher_floor", fisher_floor, "expected a finite number > 0")
    x_stats = _check_stats(x_stats)
    fishers = torch.stack([diagonal_fisher(m, x) for m in models]) + float(fisher_floor)
    theta = circular_mean(_stack(models), angle_periods(models[0]), fishers)
    w = torch.full((len(models),), 1.0 / len(models), dtype=torch.float64)
    return _finish(models[0], theta, _mean_buffers(models, w), x_stats)


def merge(models: Sequence[nn.Module], method: str = "average", **options: object) -> nn.Module:
    """A new model merged from ``models`` (one architecture) by ``method``, one of :data:`MERGE_METHODS`.

    Options by method: ``average`` (``weights``, ``x_stats``); ``uniform_soup`` (``x_stats``); ``greedy_soup``
    (``x_val``, ``y_val``, ``loss``, ``x_stats``); ``swa`` (``x_stats``, ``batch_size``); ``task_arithmetic``
    (``base``, ``lam`` or ``lambdas`` with ``x_val``, ``y_val``); ``ties`` (``base``, ``top_k``, ``lam``);
    ``fisher`` (``x``, ``fisher_floor``). ``align_first=True`` aligns every model to the first
    (:func:`qlandscape.merging.alignment.align`) before merging. The inputs are not changed.
    """
    check_choice("method", method, MERGE_METHODS)
    opts = dict(options)
    unknown = sorted(set(opts) - set(_OPTIONS[method]) - {"align_first"})
    if unknown:
        raise ConfigError(
            "options", unknown, f"merge(method={method!r}) takes {', '.join(_OPTIONS[method])}, align_first"
        )
    models = check_models(models)
    if opts.pop("align_first", False):
        models = [models[0]] + [align(models[0], m) for m in models[1:]]
    if method in ("average", "uniform_soup"):
        return average(models, **opts)  # type: ignore[arg-type]
    if method == "greedy_soup":
        return greedy_soup(models, **opts)[0]  # type: ignore[arg-type]
    if method == "swa":
        return swa(models, **opts)  # type: ignore[arg-type]
    if method in ("task_arithmetic", "ties"):
        base = opts.pop("base", None)
        if not isinstance(base, nn.Module):
            raise ConfigError("base", type(base).__name__, f"{method} needs the shared parent model as base=")
        if method == "ties":
            return ties(models, base, **opts)  # type: ignore[arg-type]
        return task_arithmetic(models, base, **opts)[0]  # type: ignore[arg-type]
    x = opts.pop("x", None)
    if x is None:
        raise ConfigError("x", None, "the Fisher merge needs inputs x= to estimate the Fisher information on")
    return fisher_merge(models, x, **opts)  # type: ignore[arg-type]
