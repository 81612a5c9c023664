"""Kernel machines built from the empirical NTK of time t (Fort et al. 2020, section on kernel machines).

* Kernel ridge regression on one-hot targets: α = (Θ_train + λI)⁻¹ Y, predictions Θ(x_test, x_train) α, class
  = argmax. Targets are not centred and there is no intercept: this is exactly the infinite-time solution of
  the model linearised around a network whose outputs are zero, the setting of NTK regression, and with the
  linear kernel XXᵀ it reduces to ridge regression (OLS as λ → 0) without intercept.
* NTK regression on residuals (``linearised=True``), in the full (n·C) form: the linearised model
  f_lin(x; θ) = f(x; θ_t) + J(x)(θ − θ_t) trained to convergence on the squared error to the one-hot targets
  (with ridge λ), whose test predictions are f_t(x_test) + Θ(x_test, x_train)(Θ_train + λI)⁻¹ vec(Y − f_t(x_train)).
  This is the exact gradient-flow limit for the MSE loss only; for cross-entropy it is a proxy.

The ridge is absolute by default in :func:`kernel_regression_accuracy`; :func:`kernel_machine_curve` uses a
ridge relative to the kernel scale (λ · mean of the kernel diagonal) because the NTK's magnitude drifts by orders
of magnitude during training, and a fixed λ would regularise different times differently.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import torch
from torch import Tensor
from tqdm.auto import tqdm

from qlandscape.core.errors import ConfigError, check_positive_int, require
from qlandscape.core.objective import Objective
from qlandscape.metrics.ntk.kernels import (
    as_inputs,
    check_trajectory,
    kernel_matrix,
    one_hot,
    select_times,
    trace_form,
)
from qlandscape.metrics.ntk.results import KernelMachineCurve

__all__ = ["kernel_ridge_predict", "kernel_regression_accuracy", "kernel_machine_curve"]


def _solve_ridge(kernel: np.ndarray, lam: float, rhs: np.ndarray) -> np.ndarray:
    """Solve (K + λI) a = rhs for a symmetric PSD K (Cholesky), falling back to least squares when singular."""
    matrix = np.array(kernel, dtype=np.float64, copy=True)
    matrix[np.diag_indices_from(matrix)] += lam
    try:
        return scipy.linalg.solve(matrix, rhs, assume_a="pos", check_finite=False)
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        return scipy.linalg.lstsq(matrix, rhs)[0]


def _ridge_value(k_train: np.ndarray, ridge: float, relative: bool) -> float:
    if ridge < 0 or not np.isfinite(ridge):
        raise ConfigError("ridge", ridge, "expected a finite non-negative number")
    return float(ridge * np.mean(np.diag(k_train))) if relative else float(ridge)


def kernel_ridge_predict(
    k_train_train: np.ndarray,
    k_test_train: np.ndarray,
    targets: np.ndarray,
    *,
    ridge: float = 1e-6,
    ridge_relative: bool = False,
) -> np.ndarray:
    """Kernel ridge regression predictions K_test,train (K_train,train + λI)⁻¹ targets, in float64."""
    k_tt = np.asarray(k_train_train, dtype=np.float64)
    k_st = np.asarray(k_test_train, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    n = k_tt.shape[0]
    require(k_tt.ndim == 2 and k_tt.shape == (n, n), "K_train_train", k_tt.shape, "expected a square kernel")
    require(k_st.ndim == 2 and k_st.shape[1] == n, "K_test_train", k_st.shape, f"expected shape (n_test, {n})")
    require(targets.shape[0] == n, "targets", targets.shape, f"expected {n} rows, one per training input")
    lam = _ridge_value(k_tt, ridge, ridge_relative)
    return k_st @ _solve_ridge(k_tt, lam, targets)


def kernel_regression_accuracy(
    k_train_train: np.ndarray,
    k_test_train: np.ndarray,
    y_train: np.ndarray | Tensor,
    y_test: np.ndarray | Tensor,
    n_classes: int,
    *,
    ridge: float = 1e-6,
    ridge_relative: bool = False,
) -> float:
    """Test accuracy of kernel ridge regression on one-hot (uncentred) targets, predicting the argmax class."""
    n_classes = check_positive_int("n_classes", n_classes)
    y_test = np.asarray(y_test).astype(np.int64).reshape(-1)
    k_st = np.asarray(k_test_train)
    require(y_test.shape[0] == k_st.shape[0], "y_test", y_test.shape, f"expected {k_st.shape[0]} labels")
    pred = kernel_ridge_predict(
        k_train_train, k_st, one_hot(y_train, n_classes), ridge=ridge, ridge_relative=ridge_relative
    )
    return float((pred.argmax(1) == y_test).mean())


def _labels(y: np.ndarray | Tensor, n: int, field: str) -> np.ndarray:
    y = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y).astype(np.int64).reshape(-1)
    require(y.shape[0] == n, field, y.shape, f"expected {n} labels, one per input")
    return y


def _accuracy(outputs: Tensor, y: np.ndarray) -> float:
    return float((outputs.argmax(-1).numpy() == y).mean())


def kernel_machine_curve(
    objective: Objective,
    trajectory: np.ndarray | Tensor,
    times: np.ndarray | Sequence[float],
    x_train: Tensor | np.ndarray,
    y_train: Tensor | np.ndarray,
    x_test: Tensor | np.ndarray,
    y_test: Tensor | np.ndarray,
    *,
    every: int = 1,
    times_to_use: Sequence[float] | None = None,
    ridge: float = 1e-6,
    ridge_relative: bool = True,
    linearised: bool = False,
    n_classes: int | None = None,
    chunk_size: int = 64,
    jacobian_memory_mb: float = 1024.0,
    progress: bool = False,
) -> KernelMachineCurve:
    """Test accuracy of the kernel machine built from the trace-form NTK Θ_t at each used time, the network's
    accuracy at the same θ_t, and the final recorded network's accuracy for comparison.

    ``linearised=True`` adds the residual NTK regression in full form (see the module docs); it solves an
    (n_train·C)² system per time. Outputs must have at least as many entries as there are classes.
    """
    traj, t_all = check_trajectory(objective, trajectory, times)
    idx = select_times(t_all, every, times_to_use)
    x_tr, x_te = as_inputs(x_train), as_inputs(x_test)
    require(x_tr.shape[0] > 0, "x_train", tuple(x_tr.shape), "expected at least one training input")
    require(x_te.shape[0] > 0, "x_test", tuple(x_te.shape), "expected at least one test input")
    y_tr = _labels(y_train, x_tr.shape[0], "y_train")
    y_te = _labels(y_test, x_te.shape[0], "y_test")
    _ridge_value(np.ones((1, 1)), ridge, ridge_relative)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    final_out = objective.outputs(torch.from_numpy(traj[-1]), x_te)
    require(final_out.ndim == 2, "model outputs", tuple(final_out.shape), "expected class logits (n, C)")
    n_outputs = int(final_out.shape[-1])
    n_classes = n_outputs if n_classes is None else check_positive_int("n_classes", n_classes)
    top = int(max(y_tr.max(), y_te.max()))
    require(top < n_classes, "label", top, f"expected labels in 0..{n_classes - 1}")
    require(
        not linearised or n_classes == n_outputs,
        "n_classes",
        n_classes,
        f"the residual regression needs one output per class ({n_outputs} outputs)",
    )

    m = len(idx)
    k_acc, k_train_acc, net_acc, net_train_acc = (np.zeros(m) for _ in range(4))
    lin_acc, lams = np.full(m, np.nan), np.zeros(m)
    targets = one_hot(y_tr, n_classes)
    for k, i in enumerate(tqdm(idx, desc="kernel machine", disable=not progress)):
        theta = torch.from_numpy(traj[i])
        both = torch.cat([x_tr, x_te])
        # one symmetric kernel over train ∪ test reuses each Jacobian chunk for both blocks; with the residual
        # regression the full form is computed once and reduced to the trace form
        kern, _ = kernel_matrix(
            objective,
            theta,
            both,
            form="full" if linearised else "trace",
            chunk_size=chunk_size,
            jacobian_memory_mb=jacobian_memory_mb,
        )
        full = kern.numpy() if linearised else None
        kern_np = trace_form(full, n_outputs) if linearised else kern.numpy()
        n_tr = x_tr.shape[0]
        k_tt, k_st = kern_np[:n_tr, :n_tr], kern_np[n_tr:, :n_tr]
        lams[k] = _ridge_value(k_tt, ridge, ridge_relative)
        alpha = _solve_ridge(k_tt, lams[k], targets)
        k_acc[k] = float(((k_st @ alpha).argmax(1) == y_te).mean())
        k_train_acc[k] = float(((k_tt @ alpha).argmax(1) == y_tr).mean())
        out_tr, out_te = objective.outputs(theta, x_tr), objective.outputs(theta, x_te)
        net_acc[k], net_train_acc[k] = _accuracy(out_te, y_te), _accuracy(out_tr, y_tr)
        if linearised:
            lin_acc[k] = _residual_accuracy(full, n_tr, out_tr, out_te, targets, y_te, ridge, ridge_relative)

    return KernelMachineCurve(
        times=t_all[idx].copy(),
        indices=idx,
        kernel_accuracy=k_acc,
        kernel_train_accuracy=k_train_acc,
        network_accuracy=net_acc,
        network_train_accuracy=net_train_acc,
        linearised_accuracy=lin_acc,
        effective_ridge=lams,
        final_network_accuracy=_accuracy(final_out, y_te),
        final_time=float(t_all[-1]),
        ridge=float(ridge),
        ridge_relative=bool(ridge_relative),
        linearised=bool(linearised),
        n_train=int(x_tr.shape[0]),
        n_test=int(x_te.shape[0]),
        n_outputs=n_outputs,
        n_classes=n_classes,
        n_params=objective.n_params,
        every=int(every),
    )


def _residual_accuracy(
    full: np.ndarray,
    n_tr: int,
    out_tr: Tensor,
    out_te: Tensor,
    targets: np.ndarray,
    y_te: np.ndarray,
    ridge: float,
    relative: bool,
) -> float:
    """Accuracy of f_t(x_test) + Θ(x_test, x_train)(Θ_train + λI)⁻¹ vec(Y − f_t(x_train)), full form."""
    c = targets.shape[1]
    k_tt, k_st = full[: n_tr * c, : n_tr * c], full[n_tr * c :, : n_tr * c]
    residual = (targets - out_tr.numpy().reshape(n_tr, c)).reshape(-1)  # row-major (i, c), as the kernel
    step = kernel_ridge_predict(k_tt, k_st, residual, ridge=ridge, ridge_relative=relative)
    pred = out_te.numpy().reshape(-1, c) + step.reshape(-1, c)
    return float((pred.argmax(1) == y_te).mean())
