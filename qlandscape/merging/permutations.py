"""Weight matching (Ainsworth et al. 2023, git re-basin) for the MLP and the CNN, batch norm included.

Hidden units (MLP) and channels (CNN) can be permuted without changing the function: a permutation of a layer's
outputs permutes its weight rows and bias, the batch-norm scale, shift and running statistics of that layer, and the
input columns of the next layer (for the CNN's last block, the channel axis of the head's weight viewed as
``(classes, channels, height·width)``, the order in which ``Flatten`` lays out the feature map).

Weight matching looks for the permutations of B that maximise ``Σ_layers <W_a, P W_b>`` (the inner product of the
weights, so the squared distance ``||θ_a − π(θ_b)||²`` is smallest): coordinate descent over the layers in a
random order, each step a linear assignment (:func:`scipy.optimize.linear_sum_assignment`) for one permutation with
the others fixed, until a full sweep changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from qlandscape.core.errors import ConfigError, check_positive_int
from qlandscape.models.classical import CNN, MLP

__all__ = ["PermutationSpec", "permutation_spec", "apply_permutations", "weight_matching", "WeightMatching"]

# (name of a parameter or buffer, axis it is permuted along, shape to view it in first or None)
Axis = tuple[str, int, tuple[int, ...] | None]


@dataclass(frozen=True)
class PermutationSpec:
    """For each permutation (a hidden layer's units or a conv block's channels), its size and the axes of the
    parameters and buffers it permutes."""

    sizes: dict[str, int]
    axes: dict[str, tuple[Axis, ...]]


def _linear_layers(seq: nn.Sequential, prefix: str, kind: type[nn.Module]) -> list[str]:
    return [f"{prefix}.{i}" for i, m in enumerate(seq) if isinstance(m, kind)]


def permutation_spec(model: nn.Module) -> PermutationSpec:
    """The permutation symmetries of an :class:`~qlandscape.models.classical.MLP` or
    :class:`~qlandscape.models.classical.CNN`; ConfigError for any other model."""
    sizes: dict[str, int] = {}
    axes: dict[str, tuple[Axis, ...]] = {}
    if isinstance(model, MLP):
        layers = _linear_layers(model.net, "net", nn.Linear)
        for i, (name, nxt) in enumerate(zip(layers[:-1], layers[1:], strict=True)):
            sizes[f"hidden{i}"] = model.width
            axes[f"hidden{i}"] = ((f"{name}.weight", 0, None), (f"{name}.bias", 0, None), (f"{nxt}.weight", 1, None))
        return PermutationSpec(sizes, axes)
    if isinstance(model, CNN):
        modules = list(model.features)
        convs = [i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
        head = _linear_layers(model.head, "head", nn.Linear)[0]
        c_last, h, w = model.feature_shape
        for k, i in enumerate(convs):
            entries: list[Axis] = [(f"features.{i}.weight", 0, None), (f"features.{i}.bias", 0, None)]
            if i + 1 < len(modules) and isinstance(modules[i + 1], nn.BatchNorm2d):
                bn = f"features.{i + 1}"
                entries += [(f"{bn}.{field}", 0, None) for field in ("weight", "bias", "running_mean", "running_var")]
            if k + 1 < len(convs):
                entries.append((f"features.{convs[k + 1]}.weight", 1, None))
            else:
                entries.append((f"{head}.weight", 1, (model.head[-1].out_features, c_last, h * w)))
            sizes[f"channels{k}"] = modules[i].out_channels
            axes[f"channels{k}"] = tuple(entries)
        return PermutationSpec(sizes, axes)
    raise ConfigError(
        "model", type(model).__name__, "weight matching knows the permutation symmetries of MLP and CNN only"
    )


def _state(model: nn.Module) -> dict[str, Tensor]:
    return {name: t.detach().to(torch.float64).clone() for name, t in model.state_dict().items()}


def _permute(tensor: Tensor, axis: int, view: tuple[int, ...] | None, perm: Tensor) -> Tensor:
    shape = tensor.shape
    t = tensor.reshape(view) if view is not None else tensor
    return torch.index_select(t, axis, perm).reshape(shape)


def apply_permutations(spec: PermutationSpec, state: dict[str, Tensor], perms: dict[str, Tensor]) -> dict[str, Tensor]:
    """A new state dict with ``perms`` applied: the permuted tensor's entry i along an axis is the old entry
    ``perm[i]``."""
    out = dict(state)
    for key, perm in perms.items():
        for name, axis, view in spec.axes[key]:
            out[name] = _permute(out[name], axis, view, perm)
    return out


@dataclass(frozen=True)
class WeightMatching:
    """What weight matching found: the permutations (each maps a unit of the aligned B to a unit of B), the number
    of coordinate-descent sweeps, and the inner product ``Σ <W_a, π(W_b)>`` before and after."""

    permutations: dict[str, np.ndarray]
    sweeps: int
    converged: bool
    objective_before: float
    objective_after: float


def _weight_axes(spec: PermutationSpec, params: set[str]) -> dict[str, tuple[Axis, ...]]:
    # the matching objective counts parameters only: running statistics follow the permutation but are not matched
    return {key: tuple(a for a in entries if a[0] in params) for key, entries in spec.axes.items()}


def _match_objective(state_a: dict[str, Tensor], state_b: dict[str, Tensor], names: set[str]) -> float:
    return float(sum((state_a[n] * state_b[n]).sum() for n in names))


def weight_matching(
    model_a: nn.Module, model_b: nn.Module, *, max_sweeps: int = 100, seed: int = 0
) -> tuple[dict[str, Tensor], WeightMatching]:
    """B's state dict permuted to match A's weights, and what the search found (see the module docstring)."""
    max_sweeps = check_positive_int("max_sweeps", max_sweeps)
    spec = permutation_spec(model_a)
    state_a, state_b = _state(model_a), _state(model_b)
    params = {name for name, _ in model_a.named_parameters()}
    axes = _weight_axes(spec, params)
    perms = {key: torch.arange(n) for key, n in spec.sizes.items()}
    rng = np.random.default_rng(int(seed))
    before = _match_objective(state_a, state_b, params)
    converged, sweeps = False, 0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007 (the count is reported)
        changed = False
        for key in rng.permutation(sorted(spec.sizes)):
            n = spec.sizes[key]
            # B permuted by every permutation except this one: the cost of this one is then a linear assignment
            others = {k: v for k, v in perms.items() if k != key}
            current = apply_permutations(spec, state_b, others)
            cost = torch.zeros(n, n, dtype=torch.float64)
            for name, axis, view in axes[key]:
                wa = state_a[name].reshape(view) if view is not None else state_a[name]
                wb = current[name].reshape(view) if view is not None else current[name]
                cost += torch.movedim(wa, axis, 0).reshape(n, -1) @ torch.movedim(wb, axis, 0).reshape(n, -1).T
            rows, cols = linear_sum_assignment(cost.numpy(), maximize=True)
            new = torch.as_tensor(cols[np.argsort(rows)], dtype=torch.long)
            old_score = float(cost[torch.arange(n), perms[key]].sum())
            new_score = float(cost[torch.arange(n), new].sum())
            if new_score > old_score + 1e-12 * max(1.0, abs(old_score)):
                perms[key] = new
                changed = True
        if not changed:
            converged = True
            break
    aligned = apply_permutations(spec, state_b, perms)
    return aligned, WeightMatching(
        permutations={k: v.numpy() for k, v in perms.items()},
        sweeps=sweeps,
        converged=converged,
        objective_before=before,
        objective_after=_match_objective(state_a, aligned, params),
    )
