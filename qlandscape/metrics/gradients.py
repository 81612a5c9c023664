"""Barren plateaus: the variance over random initialisations of each gradient component of a cost.

Costs of a bare circuit (all diagonal in the computational basis, so they come from the final state's
probabilities; :func:`simulate_state` gives the state):

* ``"global"`` -- ``<Z⊗Z⊗...⊗Z>``, the product of Z on every qubit (a global observable; its gradient variance
  decays as ~2^-n for deep circuits, McClean et al. 2018);
* ``"projector"`` -- ``1 - p(0...0)``, Cerezo et al. 2021's global cost (decays as ~4^-n);
* ``"local"`` -- ``(1/n) sum_i <Z_i>``, the mean single-qubit Z (Cerezo et al.'s local cost up to the affine
  map ``1 - mean_i p_i(0) = (1 - local)/2``, which scales every variance by 1/4).

On one qubit ``"global"`` and ``"local"`` coincide (``<Z>``). Data inputs of a bare circuit are fixed at zero
(``inputs="zero"``) or at one fixed uniform draw in [0, pi) (``inputs="random"``). For a :class:`PatchQNN` the cost
is its training loss on a small fixed batch, and only the circuit parameters are re-drawn (a linear head or a
positional bias stay at the model's values); the reported components are the circuit parameters.

Initialisations: ``"uniform"`` (every angle uniform in [0, 2 pi)) or ``"ansatz"`` (the spec's own init).
All draws go through the engine as one batch along its parameter-point axis K: since each point only affects its
own cost, the gradient of the sum of the K costs holds the K per-sample gradients. Batches larger than
``max_batch`` (by default chosen to keep the autograd tape under ~0.5 GB) are split.

Standard errors: with ``d_sk = (g_sk - mean_s g_sk)^2 * K/(K-1)`` the unbiased variance of component k is
``mean_s d_sk``; its standard error is ``std_s(d_sk)/sqrt(K)`` (delta method; the error of the estimated mean is
O(1/K) and ignored). The mean over components is the mean over s of ``d_s = mean_k d_sk``, whose standard error
``std_s(d_s)/sqrt(K)`` accounts for the correlation between components.

Decay rates: ``log Var = a - b n`` fitted by weighted least squares with weights ``(Var/SE)^2`` (delta method for
the log); the covariance is scaled by ``max(1, chi^2/(m-2))`` and the interval uses Student's t with ``m - 2``
degrees of freedom (the normal quantile when only two points are fitted).

The result classes (:class:`GradientVariance`, :class:`VarianceCurve`, :class:`PatchVarianceCurve`) live in
:mod:`qlandscape.metrics.gradient_results` and are re-exported here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call
from tqdm.auto import tqdm

from qlandscape.core.errors import ConfigError, check_choice, check_positive_int
from qlandscape.core.memory import check_fits
from qlandscape.core.objective import Objective
from qlandscape.metrics.fits import fit_decay
from qlandscape.metrics.gradient_results import GradientVariance, PatchVarianceCurve, VarianceCurve
from qlandscape.models.qnn import PatchQNN
from qlandscape.sim.circuits import Circuit, CircuitSpec, load_spec
from qlandscape.sim.engine import simulate_state
from qlandscape.sim.lowering import bit as _bit
from qlandscape.sim.lowering import lower

__all__ = [
    "COSTS",
    "INITS",
    "INPUTS",
    "DIGITS_GRIDS",
    "cost_diagonal",
    "check_sample_memory",
    "sample_parameters",
    "circuit_features",
    "circuit_gradients",
    "variance_statistics",
    "gradient_variance",
    "qnn_gradient_variance",
    "variance_curve",
    "patch_variance",
]

COSTS = ("global", "local", "projector")
INITS = ("uniform", "ansatz")
INPUTS = ("zero", "random")
_TAPE_BYTES = 512 * 2**20


# ---------------------------------------------------------------------------------------------- simulation
def cost_diagonal(cost: str, n_qubits: int) -> Tensor:
    """The cost as a diagonal observable: a vector ``(2**n,)`` with cost = sum_j p_j * diag_j."""
    check_choice("cost", cost, COSTS)
    basis = np.arange(2**n_qubits)
    ones = sum(_bit(basis, w, n_qubits) for w in range(n_qubits))
    if cost == "global":
        diag = 1.0 - 2.0 * (ones % 2)
    elif cost == "local":
        diag = 1.0 - 2.0 * ones / n_qubits
    else:
        diag = (basis != 0).astype(float)
    return torch.as_tensor(diag, dtype=torch.float64)


def _check_samples(samples: int) -> int:
    return check_positive_int("samples", samples, minimum=2)


def check_sample_memory(samples: int, n_params: int) -> None:
    """Refuse, before drawing them, ``samples`` initialisations whose parameters and gradients (float64, held at
    once) exceed the memory budget."""
    check_fits(
        2 * 8.0 * samples * n_params,
        f"the parameters and gradients of {samples:,} initialisations of {n_params:,} parameters (float64)",
        "use fewer samples",
        field="samples",
        value=samples,
    )


def _check_max_batch(max_batch: int | None) -> int | None:
    # 0 would silently mean "automatic" and a negative size would return no gradients at all
    return None if max_batch is None else check_positive_int("max_batch", max_batch)


def sample_parameters(
    circuit: Circuit, samples: int, *, init: str = "uniform", seed: int = 0, n_patches: int = 1
) -> Tensor:
    """``samples`` random initialisations ``(samples, n_patches, n_params)`` (float64), reproducible by seed."""
    check_choice("init", init, INITS)
    generator = torch.Generator().manual_seed(int(seed))
    if init == "ansatz":
        return circuit.init_params((samples, n_patches), generator)
    return 2 * math.pi * torch.rand(samples, n_patches, circuit.n_params, generator=generator, dtype=torch.float64)


def circuit_features(circuit: Circuit, inputs: str = "zero", seed: int = 0) -> Tensor:
    """The fixed data input ``(1, 1, n_features)`` of a bare circuit: zeros or one uniform draw in [0, pi)."""
    check_choice("inputs", inputs, INPUTS)
    if inputs == "zero":
        return torch.zeros(1, 1, circuit.n_features, dtype=torch.float64)
    generator = torch.Generator().manual_seed(int(seed) + 1)
    return math.pi * torch.rand(1, 1, circuit.n_features, generator=generator, dtype=torch.float64)


def _auto_batch(circuit: Circuit, per_point: int = 1) -> int:
    steps = len(lower(circuit)) + 2
    bytes_per_point = 16 * 2**circuit.n_qubits * 3 * steps * per_point
    return max(1, _TAPE_BYTES // bytes_per_point)


def circuit_gradients(
    circuit: Circuit,
    params: Tensor,
    *,
    cost: str = "global",
    features: Tensor | None = None,
    max_batch: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-sample costs ``(K,)`` and gradients ``(K, n_params)`` for params ``(K, n_params)`` (one patch)."""
    diag = cost_diagonal(cost, circuit.n_qubits)
    max_batch = _check_max_batch(max_batch)
    features = circuit_features(circuit) if features is None else features
    params = torch.as_tensor(params, dtype=torch.float64).reshape(-1, 1, circuit.n_params)
    size = max_batch or _auto_batch(circuit)
    costs, grads = [], []
    for start in range(0, params.shape[0], size):
        chunk = params[start : start + size].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            state = simulate_state(circuit, chunk, features)  # (k, 1, 1, 2**n)
            value = (state.real**2 + state.imag**2) @ diag
            (g,) = torch.autograd.grad(value.sum(), chunk)  # points are independent: sum -> per-point grads
        costs.append(value.detach().reshape(-1))
        grads.append(g.reshape(-1, circuit.n_params))
    return torch.cat(costs), torch.cat(grads)


# ---------------------------------------------------------------------------------------------- statistics
def variance_statistics(grads: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(variance (P,), its SE (P,), mean variance, its SE) from per-sample gradients ``(K, P)``."""
    grads = np.asarray(grads, dtype=np.float64)
    k = grads.shape[0]
    if k < 2:
        raise ConfigError("samples", k, "expected at least 2 samples to estimate a variance")
    sq = (grads - grads.mean(axis=0)) ** 2 * (k / (k - 1))
    per_sample = sq.mean(axis=1)
    return (
        sq.mean(axis=0),
        sq.std(axis=0, ddof=1) / math.sqrt(k),
        float(per_sample.mean()),
        float(per_sample.std(ddof=1) / math.sqrt(k)),
    )


def _resolve_circuit(
    circuit: Circuit | CircuitSpec | str | Path, n_qubits: int | None, n_layers: int | None
) -> Circuit:
    if isinstance(circuit, Circuit):
        return circuit
    spec = circuit if isinstance(circuit, CircuitSpec) else load_spec(circuit)
    if n_qubits is None or n_layers is None:
        raise ConfigError("qubits/layers", (n_qubits, n_layers), "both are required with an ansatz name or spec")
    return _bare_circuit(spec, n_qubits, n_layers)


def _bare_circuit(spec: CircuitSpec, n_qubits: int, n_layers: int) -> Circuit:
    # The costs read the final state, not the spec's readout, so a readout on qubits beyond n_qubits (kawase
    # measures qubits 0..4) must not stop a sweep over small circuits.
    n_qubits = check_positive_int("qubits", n_qubits)
    return spec.build(n_qubits, n_layers, measure_qubits=range(n_qubits))


def gradient_variance(
    circuit: Circuit | CircuitSpec | str | Path,
    n_qubits: int | None = None,
    n_layers: int | None = None,
    *,
    samples: int = 200,
    cost: str = "global",
    init: str = "uniform",
    inputs: str = "zero",
    seed: int = 0,
    max_batch: int | None = None,
) -> GradientVariance:
    """Gradient variance of a bare circuit's ``cost`` over ``samples`` random initialisations.

    ``circuit`` is a compiled :class:`Circuit`, or an ansatz name / spec path / :class:`CircuitSpec` together
    with ``n_qubits`` and ``n_layers``.
    """
    samples = _check_samples(samples)
    max_batch = _check_max_batch(max_batch)
    check_choice("cost", cost, COSTS)
    check_choice("init", init, INITS)
    check_choice("inputs", inputs, INPUTS)
    circuit = _resolve_circuit(circuit, n_qubits, n_layers)
    if circuit.n_params == 0:
        raise ConfigError("layers", circuit.n_layers, f"{circuit.name} has no trainable parameters at this size")
    check_sample_memory(samples, circuit.n_params)
    start = time.perf_counter()
    params = sample_parameters(circuit, samples, init=init, seed=seed)
    costs, grads = circuit_gradients(
        circuit, params, cost=cost, features=circuit_features(circuit, inputs, seed), max_batch=max_batch
    )
    var, var_se, mean_var, mean_se = variance_statistics(grads.numpy())
    return GradientVariance(
        variance=var,
        variance_se=var_se,
        mean_gradient=grads.mean(0).numpy(),
        mean_variance=mean_var,
        standard_error=mean_se,
        mean_cost=float(costs.mean()),
        n_samples=samples,
        n_params=circuit.n_params,
        ansatz=circuit.name,
        n_qubits=circuit.n_qubits,
        n_layers=circuit.n_layers,
        cost=cost,
        init=init,
        inputs=inputs,
        seed=int(seed),
        seconds=time.perf_counter() - start,
    )


def qnn_gradient_variance(
    model: PatchQNN,
    x: Tensor,
    y: Tensor,
    *,
    samples: int = 100,
    init: str = "uniform",
    loss: str = "cross_entropy",
    seed: int = 0,
    max_batch: int = 32,
) -> GradientVariance:
    """Gradient variance of a PatchQNN's training loss on the fixed batch ``(x, y)`` over random circuit
    parameters (every patch re-drawn; other parameters kept). Components: the circuit parameters, flattened."""
    samples = _check_samples(samples)
    max_batch = check_positive_int("max_batch", max_batch)
    check_choice("init", init, INITS)
    if not isinstance(model, PatchQNN):
        raise ConfigError("model", type(model).__name__, "expected a PatchQNN (its circuit parameters are re-drawn)")
    circuit = model.circuit
    start = time.perf_counter()
    objective = Objective(model, x, y, loss)
    block = objective.parameter_blocks()["circuit_params"]
    n_patches = int(model.circuit_params.shape[0])
    thetas = objective.theta0.expand(samples, -1).clone()
    thetas[:, block] = sample_parameters(circuit, samples, init=init, seed=seed, n_patches=n_patches).reshape(
        samples, -1
    )

    def loss_at(theta: Tensor) -> Tensor:
        out = functional_call(objective.model, (objective.unflatten(theta), objective.buffers), (objective.x,))
        return objective.loss_fn(out, objective.y)

    values, grads = [], []
    for lo in range(0, samples, max_batch):
        group = thetas[lo : lo + max_batch]
        if objective.functorch:
            g, v = torch.func.vmap(torch.func.grad_and_value(loss_at))(group)
        else:  # PennyLane QNodes do not compose with torch.func: one point at a time
            pairs = [objective.value_and_grad(t) for t in group]
            v, g = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        values.append(v.detach())
        grads.append(g.detach()[:, block])
    grads_np = torch.cat(grads).numpy()
    var, var_se, mean_var, mean_se = variance_statistics(grads_np)
    return GradientVariance(
        variance=var,
        variance_se=var_se,
        mean_gradient=grads_np.mean(0),
        mean_variance=mean_var,
        standard_error=mean_se,
        mean_cost=float(torch.cat(values).mean()),
        n_samples=samples,
        n_params=int(grads_np.shape[1]),
        ansatz=circuit.name,
        n_qubits=circuit.n_qubits,
        n_layers=circuit.n_layers,
        cost=f"loss:{objective.loss_name}",
        init=init,
        inputs="data",
        seed=int(seed),
        n_patches=n_patches,
        seconds=time.perf_counter() - start,
    )


# ---------------------------------------------------------------------------------------------- curves
def _int_list(field: str, values: Iterable[int], minimum: int) -> list[int]:
    out = [
        check_positive_int(field, v, minimum=minimum) for v in (values if isinstance(values, Iterable) else [values])
    ]
    if not out:
        raise ConfigError(field, values, "expected at least one value")
    return sorted(set(out))


def variance_curve(
    ansatz: str | Path | CircuitSpec = "hea",
    qubits: Iterable[int] = range(2, 13),
    layers: Iterable[int] = (1, 5, 20),
    samples: int = 200,
    cost: str = "global",
    *,
    init: str = "uniform",
    inputs: str = "zero",
    seed: int = 0,
    fit_from: int | None = None,
    confidence: float = 0.95,
    max_batch: int | None = None,
    progress: bool = False,
) -> VarianceCurve:
    """Mean gradient variance against qubits for each layer count, with fitted exponential decay rates.

    Cell (layer i, qubit count j) draws its initialisations with seed ``seed + 7919 * (i * len(qubits) + j)``:
    the same call reproduces every number, but a cell's samples depend on its place in the grid, so the same
    (qubits, layers) in a different grid gets other draws (agreeing within the standard error)."""
    qubit_list = _int_list("qubits", qubits, 1)
    layer_list = _int_list("layers", layers, 1)
    samples = _check_samples(samples)
    max_batch = _check_max_batch(max_batch)
    check_choice("cost", cost, COSTS)
    check_choice("init", init, INITS)
    check_choice("inputs", inputs, INPUTS)
    if not 0 < confidence < 1:
        raise ConfigError("confidence", confidence, "expected a number in (0, 1)")
    spec = ansatz if isinstance(ansatz, CircuitSpec) else load_spec(ansatz)
    # every cell's size before the first one runs: a grid must not fail at its last, largest cell
    for n in qubit_list:
        for n_layers in layer_list:
            spec.check_size(n, n_layers)
    check_sample_memory(samples, _bare_circuit(spec, qubit_list[-1], layer_list[-1]).n_params)
    fit_from = qubit_list[0] if fit_from is None else int(fit_from)
    shape = (len(layer_list), len(qubit_list))
    mean_var, se, n_params, seconds = (np.zeros(shape) for _ in range(4))
    cells = [(i, j) for i in range(shape[0]) for j in range(shape[1])]
    for i, j in tqdm(cells, desc=f"gradvar {spec.name} {cost}", disable=not progress):
        result = gradient_variance(
            _bare_circuit(spec, qubit_list[j], layer_list[i]),
            samples=samples,
            cost=cost,
            init=init,
            inputs=inputs,
            seed=seed + 7919 * (i * shape[1] + j),
            max_batch=max_batch,
        )
        mean_var[i, j], se[i, j] = result.mean_variance, result.standard_error
        n_params[i, j], seconds[i, j] = result.n_params, result.seconds
    q = np.asarray(qubit_list)
    fits = [
        fit_decay(q[q >= fit_from], mean_var[i, q >= fit_from], se[i, q >= fit_from], confidence=confidence)
        for i in range(shape[0])
    ]
    column = lambda name: np.array([getattr(f, name) for f in fits])  # noqa: E731
    return VarianceCurve(
        ansatz=spec.name,
        cost=cost,
        init=init,
        inputs=inputs,
        samples=samples,
        seed=int(seed),
        confidence=float(confidence),
        fit_from=int(fit_from),
        qubits=q,
        layers=np.asarray(layer_list),
        mean_variance=mean_var,
        standard_error=se,
        n_params=n_params.astype(int),
        seconds=seconds,
        rate=column("rate"),
        rate_se=column("rate_se"),
        rate_low=column("rate_low"),
        rate_high=column("rate_high"),
        intercept=column("intercept"),
        chi2_reduced=column("chi2_reduced"),
    )


DIGITS_GRIDS = ((8, 8), (7, 1), (6, 1), (5, 1), (4, 1))  # (patch size, stride) on 8x8: N = 1, 4, 9, 16, 25


def patch_variance(
    x: Tensor,
    y: Tensor,
    *,
    grids: Sequence[tuple[int, int]] = DIGITS_GRIDS,
    ansatz: str = "hea",
    n_qubits: int = 4,
    n_layers: int = 2,
    samples: int = 100,
    init: str = "uniform",
    loss: str = "cross_entropy",
    aggregation: str = "mean",
    seed: int = 0,
    confidence: float = 0.95,
    progress: bool = False,
    **model_kwargs,
) -> PatchVarianceCurve:
    """Gradient variance of a PatchQNN loss on images ``x (B, H, W)`` for each (patch size, stride) in ``grids``."""
    samples = _check_samples(samples)
    check_choice("init", init, INITS)
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y).long()
    if x.ndim != 3:
        raise ConfigError("images", tuple(x.shape), "expected (B, H, W)")
    n_classes = max(2, int(y.max()) + 1)
    models = [
        PatchQNN(
            tuple(x.shape[1:]),
            n_classes,
            ansatz=ansatz,
            n_qubits=n_qubits,
            n_layers=n_layers,
            patch_size=int(p),
            stride=int(s),
            aggregation=aggregation,
            seed=seed,
            **model_kwargs,
        )
        for p, s in grids
    ]  # built first: a bad grid fails before any expensive work
    rows = []
    for model in tqdm(models, desc="gradvar patches", disable=not progress):
        r = qnn_gradient_variance(model, x, y, samples=samples, init=init, loss=loss, seed=seed)
        rows.append((model.n_patches, r.mean_variance, r.standard_error, r.n_params, r.seconds))
    n_p, mv, se, npar, secs = (np.array(col) for col in zip(*rows, strict=True))
    fit = fit_decay(np.log(n_p), mv, se, confidence=confidence)
    return PatchVarianceCurve(
        ansatz=ansatz,
        n_qubits=n_qubits,
        n_layers=n_layers,
        loss=str(loss),
        init=init,
        samples=samples,
        seed=int(seed),
        aggregation=aggregation,
        image_shape=tuple(int(s) for s in x.shape[1:]),
        n_images=int(x.shape[0]),
        patch_size=np.array([g[0] for g in grids]),
        stride=np.array([g[1] for g in grids]),
        n_patches=n_p.astype(int),
        mean_variance=mv,
        standard_error=se,
        n_params=npar.astype(int),
        seconds=secs,
        exponent=fit.rate,
        exponent_low=fit.rate_low,
        exponent_high=fit.rate_high,
        intercept=fit.intercept,
    )
