"""Empirical neural tangent kernel and its evolution during training (Fort et al. 2020).

The empirical NTK of the model outputs (logits) on n inputs at θ is Θ = J Jᵀ, with J the output Jacobian
∂f_c(x_i)/∂θ. Two forms:

* ``"full"``: the (n·C, n·C) kernel over (input, output) pairs, indexed row-major: row ``i*C + c`` is output c
  of input i.
* ``"trace"``: the (n, n) kernel Θ_ij = Σ_c J_ic · J_jc, the sum of the full kernel's diagonal output blocks
  (its partial trace over outputs). C² times smaller, and the form Fort et al. use for distances.

Jacobians come from ``torch.func.jacrev`` per sample under ``vmap`` (our engine and plain torch models in eval
mode) or from :meth:`Objective.jacobian` (autograd on PennyLane QNodes, train-mode models), so nothing here assumes
a classical model. Inputs are processed in chunks and the kernel is accumulated block by block; the Jacobian
chunks are kept while they fit ``jacobian_memory_mb`` and recomputed otherwise, so memory stays bounded.

Kernel evolution: the distance S(t, t′) = 1 − ⟨Θ_t, Θ_t′⟩_F / (‖Θ_t‖_F ‖Θ_t′‖_F) between recorded times, the
distance from the first recorded time used, the velocity S(t_i, t_{i+1}) / (t_{i+1} − t_i) at midpoints, and the
kernel–label alignment. Kernel machines built from Θ_t live in :mod:`qlandscape.metrics.ntk.kernel_machines`;
the result classes (:class:`NTK`, :class:`KernelEvolution`) in :mod:`qlandscape.metrics.ntk.results`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from qlandscape.core.errors import ConfigError, check_choice, check_positive_int, require
from qlandscape.core.memory import check_fits
from qlandscape.core.objective import Objective
from qlandscape.metrics.ntk.results import NTK, KernelEvolution

__all__ = [
    "FORMS",
    "Form",
    "as_inputs",
    "kernel_matrix",
    "check_kernel_memory",
    "empirical_ntk",
    "trace_form",
    "kernel_distance",
    "one_hot",
    "kernel_alignment",
    "check_trajectory",
    "select_times",
    "resolve_subset",
    "kernel_evolution",
]

FORMS = ("trace", "full")
Form = Literal["trace", "full"]


# ---------------------------------------------------------------------------------------------- the kernel
def _jacobian_chunks(objective: Objective, theta: Tensor, x: Tensor, chunk_size: int) -> Iterator[Tensor]:
    """Yield output Jacobians (m, C, P) of consecutive chunks of ``x``, in float64."""
    for start in range(0, x.shape[0], chunk_size):
        xc = x[start : start + chunk_size]
        jac = objective.jacobian(theta, xc, chunk_size=xc.shape[0]).to(torch.float64)
        if jac.ndim == 2:  # a model with one scalar output per input
            jac = jac.unsqueeze(1)
        yield jac.reshape(jac.shape[0], -1, objective.n_params)


def _rows(jac: Tensor, form: str) -> Tensor:
    # trace form: contracting over (c, p) at once is the Gram matrix of J reshaped to (m, C*P)
    return jac.reshape(jac.shape[0], -1) if form == "trace" else jac.reshape(-1, jac.shape[-1])


def as_inputs(x: Tensor | np.ndarray) -> Tensor:
    """Kernel inputs as a tensor: floating point in float64 (the kernels' precision), integer inputs unchanged."""
    x = torch.as_tensor(x)
    return x.to(torch.float64) if x.is_floating_point() else x


def kernel_matrix(
    objective: Objective,
    theta: Tensor | None,
    x_rows: Tensor,
    x_cols: Tensor | None = None,
    *,
    form: Form = "trace",
    chunk_size: int = 64,
    jacobian_memory_mb: float = 1024.0,
) -> tuple[Tensor, int]:
    """NTK block Θ(x_rows, x_cols) = J_rows J_colsᵀ at θ (x_cols None: the symmetric kernel of x_rows).

    Returns (kernel, n_outputs). The Jacobian chunks are kept while they fit ``jacobian_memory_mb``; beyond that
    the column chunks are recomputed for every row chunk (more time, flat memory).
    """
    check_choice("form", form, FORMS)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    theta = objective.as_theta(theta)
    x_rows = as_inputs(x_rows)
    symmetric = x_cols is None
    x_cols = x_rows if symmetric else as_inputs(x_cols)
    require(
        x_rows.shape[0] > 0 and x_cols.shape[0] > 0,
        "inputs",
        (x_rows.shape[0], x_cols.shape[0]),
        "expected at least one input on each side of the kernel",
    )

    row_iter = _jacobian_chunks(objective, theta, x_rows, chunk_size)
    first = next(row_iter)
    n_outputs = int(first.shape[1])
    per_input = n_outputs * objective.n_params * 8 / 2**20
    n_total = x_rows.shape[0] + (0 if symmetric else x_cols.shape[0])
    cache = per_input * n_total <= jacobian_memory_mb

    rows: Iterable[Tensor] = itertools.chain([first], row_iter)
    cols: list[Tensor] | None = None
    if cache:
        rows = list(rows)
        cols = rows if symmetric else list(_jacobian_chunks(objective, theta, x_cols, chunk_size))

    width = 1 if form == "trace" else n_outputs
    # the kernel, and for a symmetric one its symmetrised copy
    check_kernel_memory(x_rows.shape[0] * width, x_cols.shape[0] * width, copies=2 if symmetric else 1, form=form)
    kernel = torch.zeros(x_rows.shape[0] * width, x_cols.shape[0] * width, dtype=torch.float64)
    r0 = 0
    for jr in rows:
        a = _rows(jr, form)
        c0 = 0
        for jc in cols if cols is not None else _jacobian_chunks(objective, theta, x_cols, chunk_size):
            if symmetric and c0 > r0:
                break  # the upper blocks are the transposes of the lower ones
            b = _rows(jc, form)
            block = a @ b.T
            kernel[r0 : r0 + a.shape[0], c0 : c0 + b.shape[0]] = block
            if symmetric and c0 < r0:
                kernel[c0 : c0 + b.shape[0], r0 : r0 + a.shape[0]] = block.T
            c0 += b.shape[0]
        r0 += a.shape[0]
    if symmetric:  # the diagonal blocks carry round-off asymmetry; make the kernel exactly symmetric
        kernel = (kernel + kernel.T).mul_(0.5)
    return kernel, n_outputs


def check_kernel_memory(n_rows: int, n_cols: int, *, copies: int = 1, form: str = "trace") -> None:
    """Refuse, before it is allocated, ``copies`` float64 kernels of ``n_rows x n_cols`` over the memory budget
    (the full form has one row and column per input and output: n·C)."""
    check_fits(
        8.0 * n_rows * n_cols * copies,
        f"{copies} {form}-form kernel(s) of {n_rows:,} x {n_cols:,} (float64)",
        "use fewer inputs (subset), the trace form, or pairwise=False to keep fewer kernels",
        field="inputs",
        value=(n_rows, n_cols),
    )


def empirical_ntk(
    objective: Objective,
    theta: Tensor | np.ndarray | None = None,
    x: Tensor | np.ndarray | None = None,
    *,
    form: Form = "trace",
    chunk_size: int = 64,
    jacobian_memory_mb: float = 1024.0,
) -> NTK:
    """Empirical NTK Θ = J Jᵀ of the model outputs at θ (default: the model's own parameters) on inputs ``x``
    (default: the Objective's evaluation set), in the ``"trace"`` (n, n) or ``"full"`` (n·C, n·C) form."""
    check_choice("form", form, FORMS)
    theta_t = objective.as_theta(None if theta is None else torch.as_tensor(theta, dtype=torch.float64))
    x_t = objective.x if x is None else as_inputs(x)
    kernel, n_outputs = kernel_matrix(
        objective, theta_t, x_t, form=form, chunk_size=chunk_size, jacobian_memory_mb=jacobian_memory_mb
    )
    k = kernel.numpy()
    return NTK(
        kernel=k,
        form=form,
        n_inputs=int(x_t.shape[0]),
        n_outputs=n_outputs,
        n_params=objective.n_params,
        theta_norm=float(theta_t.norm()),
        kernel_trace=float(np.trace(k)),
        kernel_frobenius_norm=float(np.linalg.norm(k)),
        chunk_size=chunk_size,
    )


def trace_form(kernel: np.ndarray, n_outputs: int) -> np.ndarray:
    """Reduce a full-form kernel (n·C, n·C) to the trace form (n, n): Σ_c Θ[(i, c), (j, c)]."""
    kernel = np.asarray(kernel, dtype=np.float64)
    m = kernel.shape[0]
    require(
        kernel.ndim == 2 and kernel.shape[1] == m and m % n_outputs == 0,
        "kernel",
        kernel.shape,
        f"expected a square full-form kernel whose size is a multiple of n_outputs = {n_outputs}",
    )
    n = m // n_outputs
    return np.einsum("icjc->ij", kernel.reshape(n, n_outputs, n, n_outputs))


# ------------------------------------------------------------------------------------ pure kernel metrics
def kernel_distance(k1: np.ndarray, k2: np.ndarray) -> float:
    """S = 1 − ⟨K1, K2⟩_F / (‖K1‖_F ‖K2‖_F), in [0, 1] for PSD kernels (round-off clipped)."""
    k1, k2 = np.asarray(k1, dtype=np.float64), np.asarray(k2, dtype=np.float64)
    require(k1.shape == k2.shape, "kernel shapes", (k1.shape, k2.shape), "expected two kernels of the same shape")
    n1, n2 = np.linalg.norm(k1), np.linalg.norm(k2)
    require(n1 > 0 and n2 > 0, "kernel norms", (float(n1), float(n2)), "expected non-zero kernels")
    # 1 − ⟨u, v⟩ = ½‖u − v‖² for unit u, v: the subtraction 1 − cos cancels catastrophically for nearby kernels
    # (all digits lost below S ≈ 1e-16, which the velocity between close recorded times reaches)
    return float(np.clip(0.5 * np.sum((k1 / n1 - k2 / n2) ** 2), 0.0, 1.0))


def one_hot(y: np.ndarray | Tensor, n_classes: int) -> np.ndarray:
    """One-hot float64 matrix (n, n_classes) of integer labels, checking the label range."""
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = int(y[(y < 0) | (y >= n_classes)][0])
        raise ConfigError("label", bad, f"expected labels in 0..{n_classes - 1}")
    return np.eye(n_classes, dtype=np.float64)[y]


def kernel_alignment(kernel: np.ndarray, y: np.ndarray | Tensor, n_classes: int, *, centered: bool = True) -> float:
    """Kernel–label alignment A = ⟨K, YYᵀ⟩_F / (‖K‖_F ‖YYᵀ‖_F) of an (n, n) kernel with one-hot labels Y.

    ``centered=True`` (default) is the centred alignment of Cortes, Mohri & Rostamizadeh (2012): both K and YYᵀ
    are replaced by HKH and HYYᵀH with H = I − 11ᵀ/n. Without centring every positive kernel is partly aligned
    with the constant part of YYᵀ, which hides changes during training; centring removes that offset.
    ``centered=False`` is the raw formula. Either way A(YYᵀ, Y) = 1.
    """
    k = np.asarray(kernel, dtype=np.float64)
    labels = one_hot(y, n_classes)
    n = labels.shape[0]
    require(
        k.shape == (n, n),
        "kernel",
        k.shape,
        f"expected an (n, n) kernel matching {n} labels (reduce a full-form kernel with trace_form first)",
    )
    target = labels @ labels.T
    if centered:
        k = k - k.mean(0, keepdims=True) - k.mean(1, keepdims=True) + k.mean()
        target = target - target.mean(0, keepdims=True) - target.mean(1, keepdims=True) + target.mean()
    nk, nt = np.linalg.norm(k), np.linalg.norm(target)
    require(
        nk > 0 and nt > 0,
        "alignment norms",
        (float(nk), float(nt)),
        "expected a non-zero (centred) kernel and at least two classes among the labels when centred",
    )
    return float(np.vdot(k, target) / (nk * nt))


# ----------------------------------------------------------------------------- trajectories and selection
def check_trajectory(
    objective: Objective, trajectory: np.ndarray | Tensor, times: np.ndarray | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a trajectory (T, P) of flat parameter vectors and its strictly increasing times (T,)."""
    traj = np.asarray(trajectory.detach().cpu() if isinstance(trajectory, Tensor) else trajectory, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    require(
        traj.ndim == 2 and traj.shape[1] == objective.n_params and traj.shape[0] >= 1,
        "trajectory",
        traj.shape,
        f"expected a (T, {objective.n_params}) array of flat parameter vectors",
    )
    require(
        t.ndim == 1 and t.shape[0] == traj.shape[0],
        "times",
        t.shape,
        f"expected one time per trajectory point, shape ({traj.shape[0]},)",
    )
    require(bool(np.isfinite(t).all()), "times", t.tolist(), "expected finite times")
    if t.shape[0] > 1 and not (np.diff(t) > 0).all():
        i = int(np.nonzero(np.diff(t) <= 0)[0][0])
        raise ConfigError("times", (float(t[i]), float(t[i + 1])), "expected strictly increasing times")
    if not np.isfinite(traj).all():
        i = int(np.nonzero(~np.isfinite(traj).all(1))[0][0])
        raise ConfigError(f"trajectory[{i}]", "non-finite values", "expected finite parameter vectors")
    return traj, t


def select_times(times: np.ndarray, every: int = 1, times_to_use: Sequence[float] | None = None) -> np.ndarray:
    """Indices of the recorded times to use: ``times_to_use`` (each must be recorded), else every ``every``-th
    point, always including the last one (so the final network is part of every curve)."""
    every = check_positive_int("every", every)
    if times_to_use is None:
        idx = list(range(0, len(times), every))
        if idx[-1] != len(times) - 1:
            idx.append(len(times) - 1)
        return np.asarray(idx, dtype=np.int64)
    require(every == 1, "every", every, "expected every = 1 when times_to_use is given")
    wanted = np.asarray(times_to_use, dtype=np.float64).reshape(-1)
    require(wanted.size > 0, "times_to_use", list(wanted), "expected at least one time")
    idx = []
    for value in wanted:
        hits = np.nonzero(np.isclose(times, value, rtol=1e-12, atol=1e-12))[0]
        if hits.size == 0:
            shown = ", ".join(f"{v:g}" for v in times[:20]) + (", ..." if len(times) > 20 else "")
            raise ConfigError("times_to_use", float(value), f"expected recorded times ({shown})")
        idx.append(int(hits[0]))
    idx_arr = np.asarray(idx, dtype=np.int64)
    require(
        bool((np.diff(idx_arr) > 0).all()),
        "times_to_use",
        wanted.tolist(),
        "expected distinct times in increasing order",
    )
    return idx_arr


def resolve_subset(
    objective: Objective, x_subset: Tensor | np.ndarray | int | Sequence[int], y_subset: Tensor | np.ndarray | None
) -> tuple[Tensor, np.ndarray | None]:
    """The kernel inputs: an int n (the first n samples of the Objective's evaluation set), a sequence of indices
    into it (labels come with them), or an explicit input tensor (labels from ``y_subset``, optional)."""
    n_data = objective.n_samples
    if isinstance(x_subset, (int, np.integer)) and not isinstance(x_subset, bool):
        require(
            1 <= int(x_subset) <= n_data,
            "x_subset",
            int(x_subset),
            f"expected a subset size between 1 and the {n_data} samples of the evaluation set",
        )
        idx = np.arange(int(x_subset))
    elif (
        not isinstance(x_subset, Tensor)
        and np.issubdtype((arr := np.asarray(x_subset)).dtype, np.integer)
        and arr.ndim == 1
    ):
        idx = arr.astype(np.int64)
        require(
            0 < idx.size <= n_data,
            "x_subset",
            f"{idx.size} indices",
            f"expected between 1 and the {n_data} samples of the evaluation set",
        )
        bad = idx[(idx < 0) | (idx >= n_data)]
        require(bad.size == 0, "x_subset index", int(bad[0]) if bad.size else 0, f"expected 0..{n_data - 1}")
    else:
        x = as_inputs(x_subset)
        require(x.ndim >= 1 and x.shape[0] > 0, "x_subset", tuple(x.shape), "expected at least one input")
        y = None if y_subset is None else np.asarray(y_subset).astype(np.int64).reshape(-1)
        require(
            y is None or y.shape[0] == x.shape[0],
            "y_subset",
            getattr(y, "shape", None),
            f"expected {x.shape[0]} labels",
        )
        require(y is None or y.min() >= 0, "y_subset", "negative label", "expected labels >= 0")
        return x, y
    # labels passed next to a size or indices would otherwise be silently replaced by the evaluation set's
    require(
        y_subset is None,
        "y_subset",
        "given",
        "labels come from the Objective's evaluation set when x_subset "
        "is a size or indices; pass y_subset only with explicit inputs",
    )
    return objective.x[torch.as_tensor(idx)], objective.y.numpy()[idx]


# ------------------------------------------------------------------------------------------ the evolution
def kernel_evolution(
    objective: Objective,
    trajectory: np.ndarray | Tensor,
    times: np.ndarray | Sequence[float],
    x_subset: Tensor | np.ndarray | int | Sequence[int],
    *,
    y_subset: Tensor | np.ndarray | None = None,
    every: int = 1,
    times_to_use: Sequence[float] | None = None,
    form: Form = "trace",
    store_kernels: bool | None = None,
    pairwise: bool = True,
    centered_alignment: bool = True,
    chunk_size: int = 64,
    jacobian_memory_mb: float = 1024.0,
    progress: bool = False,
) -> KernelEvolution:
    """NTK at each used recorded time on a fixed input subset, and its distances, velocity and label alignment.

    ``x_subset``: see :func:`resolve_subset`. ``store_kernels`` defaults to ``pairwise``. ``pairwise=False`` keeps
    only three kernels in memory and fills the distance matrix on its diagonal, first row/column and first
    off-diagonals (enough for S(t_0, t) and the velocity). Alignment (NaN without labels) uses the trace form;
    full kernels are reduced first.
    """
    check_choice("form", form, FORMS)
    traj, t_all = check_trajectory(objective, trajectory, times)
    idx = select_times(t_all, every, times_to_use)
    x, y = resolve_subset(objective, x_subset, y_subset)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    store_kernels = pairwise if store_kernels is None else bool(store_kernels)
    # checked here, not at the first kernel: centring leaves nothing of YYᵀ when all labels are equal
    require(
        y is None or not centered_alignment or np.unique(y).size >= 2,
        "labels of x_subset",
        None if y is None else np.unique(y).tolist(),
        "the centred alignment needs at least two classes among the subset's labels; use a subset with "
        "several classes or centered_alignment=False",
    )
    require(
        pairwise or not store_kernels,
        "store_kernels",
        store_kernels,
        "expected store_kernels=False with pairwise=False (storing kernels keeps them all anyway)",
    )

    m = len(idx)
    distance = np.full((m, m), np.nan)
    np.fill_diagonal(distance, 0.0)
    norms, traces, alignment = np.zeros(m), np.zeros(m), np.full(m, np.nan)
    kept: list[np.ndarray] = []
    first = prev = None
    n_outputs = 0
    # YYᵀ_ij = [y_i = y_j] whatever the one-hot width, so the classes seen are enough for the alignment
    n_classes = int(y.max()) + 1 if y is not None else 0
    for k, i in enumerate(tqdm(idx, desc="NTK", disable=not progress)):
        kernel_t, n_outputs = kernel_matrix(
            objective,
            torch.from_numpy(traj[i]),
            x,
            form=form,
            chunk_size=chunk_size,
            jacobian_memory_mb=jacobian_memory_mb,
        )
        kern = kernel_t.numpy()
        if k == 0 and store_kernels:  # the kernels kept for the distances, before the second is computed
            check_kernel_memory(kern.shape[0], kern.shape[1], copies=2 * m, form=form)
        norms[k], traces[k] = np.linalg.norm(kern), np.trace(kern)
        if y is not None:
            reduced = kern if form == "trace" else trace_form(kern, n_outputs)
            alignment[k] = kernel_alignment(reduced, y, n_classes, centered=centered_alignment)
        partners = list(enumerate(kept)) if pairwise else [(0, first), (k - 1, prev)][: min(k, 2)]
        for j, other in partners:
            if other is not None and j != k:
                distance[k, j] = distance[j, k] = kernel_distance(kern, other)
        if pairwise:
            kept.append(kern)
        if k == 0:
            first = kern
        prev = kern

    dt = np.diff(t_all[idx])
    steps = np.array([distance[k, k + 1] for k in range(m - 1)])
    return KernelEvolution(
        times=t_all[idx].copy(),
        indices=idx,
        distance=distance,
        distance_from_init=distance[0].copy(),
        velocity=steps / dt,
        velocity_times=(t_all[idx][:-1] + t_all[idx][1:]) / 2,
        alignment=alignment,
        kernel_norms=norms,
        kernel_traces=traces,
        param_distance_from_init=np.linalg.norm(traj[idx] - traj[idx[0]], axis=1),
        kernels=np.stack(kept) if store_kernels else None,
        form=form,
        n_inputs=int(x.shape[0]),
        n_outputs=n_outputs,
        n_params=objective.n_params,
        n_classes=n_classes,
        every=every,
        pairwise=pairwise,
        centered_alignment=centered_alignment,
    )
