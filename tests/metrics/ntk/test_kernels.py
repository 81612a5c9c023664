"""Tests for the empirical NTK, its evolution, kernel machines and their figures."""

from __future__ import annotations

import copy
from decimal import Decimal, localcontext
from fractions import Fraction

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import load_result, save_result
from qlandscape.core.objective import Objective
from qlandscape.metrics.ntk import kernels
from qlandscape.metrics.ntk.kernel_machines import (
    kernel_machine_curve,
    kernel_regression_accuracy,
    kernel_ridge_predict,
)
from qlandscape.metrics.ntk.kernels import (
    empirical_ntk,
    kernel_alignment,
    kernel_distance,
    kernel_evolution,
    kernel_matrix,
    one_hot,
    trace_form,
)
from qlandscape.metrics.ntk.results import NTK, KernelEvolution, KernelMachineCurve
from qlandscape.models.classical import MLP

N_IN, N_OUT = 4, 3


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(N_IN, 5), nn.Tanh(), nn.Linear(5, N_OUT)).double()


def _data(n: int = 24, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_IN, generator=gen, dtype=torch.float64)
    y = torch.arange(n) % N_OUT
    return x, y


def _trajectory(objective: Objective, steps: int = 5, scale: float = 0.3, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    theta0 = objective.theta0.numpy()
    walk = np.cumsum(rng.normal(scale=scale, size=(steps - 1, objective.n_params)), axis=0)
    return np.vstack([theta0, theta0 + walk])


def _independent_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """J (n*C, P) by a loop over (input, output) with plain autograd on a copy of the model."""
    model = copy.deepcopy(model).double()
    params = list(model.parameters())
    rows = []
    for i in range(x.shape[0]):
        out = model(x[i : i + 1])[0]
        for c in range(out.shape[0]):
            grads = torch.autograd.grad(out[c], params, retain_graph=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


@pytest.mark.parametrize("form", ["trace", "full"])
def test_ntk_symmetric_psd(form: str) -> None:
    x, y = _data()
    ntk = empirical_ntk(Objective(_mlp(), x, y), form=form, chunk_size=7)
    k = ntk.kernel
    size = x.shape[0] * (N_OUT if form == "full" else 1)
    assert k.shape == (size, size) and ntk.n_outputs == N_OUT
    assert np.abs(k - k.T).max() <= 1e-10 * np.abs(k).max()
    assert np.linalg.eigvalsh(k).min() >= -1e-10 * np.abs(k).max()


def test_ntk_matches_independent_jacobian() -> None:
    x, y = _data(10)
    model = _mlp(3)
    objective = Objective(model, x, y)
    jac = _independent_jacobian(model, x)
    full = jac @ jac.T
    got_full = empirical_ntk(objective, form="full", chunk_size=3).kernel
    np.testing.assert_allclose(got_full, full.numpy(), rtol=1e-12, atol=1e-12)
    trace = jac.reshape(10, N_OUT, -1).reshape(10, -1)
    np.testing.assert_allclose(
        empirical_ntk(objective, form="trace", chunk_size=4).kernel, (trace @ trace.T).numpy(), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(trace_form(got_full, N_OUT), (trace @ trace.T).numpy(), rtol=1e-12, atol=1e-12)


def test_ntk_streaming_equals_cached_and_cross_blocks() -> None:
    x, y = _data(11)
    objective = Objective(_mlp(), x, y)
    cached, _ = kernel_matrix(objective, None, x, form="full", chunk_size=4)
    streamed, _ = kernel_matrix(objective, None, x, form="full", chunk_size=4, jacobian_memory_mb=0.0)
    np.testing.assert_allclose(streamed.numpy(), cached.numpy(), rtol=1e-13, atol=1e-13)
    cross, _ = kernel_matrix(objective, None, x[:5], x[5:], form="trace", chunk_size=2, jacobian_memory_mb=0.0)
    whole = empirical_ntk(objective, form="trace").kernel
    np.testing.assert_allclose(cross.numpy(), whole[:5, 5:], rtol=1e-12, atol=1e-12)


def test_distance_properties_and_linear_model_constant_kernel() -> None:
    x, y = _data()
    objective = Objective(_mlp(), x, y)
    traj = _trajectory(objective)
    evo = kernel_evolution(objective, traj, np.arange(5.0), 12, form="trace")
    assert np.allclose(np.diag(evo.distance), 0.0)
    assert np.all((evo.distance >= 0) & (evo.distance <= 1))
    assert evo.distance_from_init[-1] > 1e-6
    np.testing.assert_allclose(evo.distance, evo.distance.T)
    np.testing.assert_allclose(evo.velocity, [evo.distance[i, i + 1] for i in range(4)])
    assert evo.kernels.shape == (5, 12, 12)
    assert kernel_distance(evo.kernels[2], evo.kernels[2]) == pytest.approx(0.0, abs=1e-14)

    linear = Objective(nn.Linear(N_IN, N_OUT).double(), x, y)
    lin_evo = kernel_evolution(
        linear, _trajectory(linear, scale=2.0), [0.0, 1.0, 3.0, 7.0, 8.0], 10, form="full", store_kernels=False
    )
    assert lin_evo.kernels is None
    assert np.abs(lin_evo.distance).max() < 1e-12


def test_pairwise_off_keeps_init_and_velocity() -> None:
    x, y = _data()
    objective = Objective(_mlp(), x, y)
    traj = _trajectory(objective, steps=6)
    full = kernel_evolution(objective, traj, np.arange(6.0), 8)
    light = kernel_evolution(objective, traj, np.arange(6.0), 8, pairwise=False, store_kernels=False)
    np.testing.assert_allclose(light.distance_from_init, full.distance_from_init, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(light.velocity, full.velocity, rtol=1e-12, atol=1e-15)
    assert np.isnan(light.distance[2, 4])


def test_every_and_times_to_use() -> None:
    x, y = _data()
    objective = Objective(_mlp(), x, y)
    traj = _trajectory(objective, steps=6)
    times = np.array([0.0, 1, 2, 4, 8, 16])
    evo = kernel_evolution(objective, traj, times, 6, every=2)
    np.testing.assert_array_equal(evo.indices, [0, 2, 4, 5])  # the last record is always used
    np.testing.assert_allclose(evo.velocity_times, [1.0, 5.0, 12.0])
    picked = kernel_evolution(objective, traj, times, 6, times_to_use=[1.0, 8.0])
    np.testing.assert_array_equal(picked.indices, [1, 4])


def test_kernel_regression_linear_kernel_is_least_squares() -> None:
    rng = np.random.default_rng(0)
    x_tr, x_te = rng.normal(size=(30, 4)), rng.normal(size=(12, 4))
    y_tr = rng.integers(0, 3, 30)
    y_te = rng.integers(0, 3, 12)
    targets = one_hot(y_tr, 3)
    for ridge in (1e-3, 0.5):
        pred = kernel_ridge_predict(x_tr @ x_tr.T, x_te @ x_tr.T, targets, ridge=ridge)
        closed = x_te @ np.linalg.solve(x_tr.T @ x_tr + ridge * np.eye(4), x_tr.T @ targets)
        np.testing.assert_allclose(pred, closed, rtol=1e-9, atol=1e-10)
    # fewer training points than features: K is invertible and ridge 0 gives lstsq's minimum-norm solution
    wide_tr, wide_te = rng.normal(size=(8, 12)), rng.normal(size=(5, 12))
    y_wide, y_wide_te = rng.integers(0, 3, 8), rng.integers(0, 3, 5)
    ols = wide_te @ np.linalg.lstsq(wide_tr, one_hot(y_wide, 3), rcond=None)[0]
    pred = kernel_ridge_predict(wide_tr @ wide_tr.T, wide_te @ wide_tr.T, one_hot(y_wide, 3), ridge=0.0)
    np.testing.assert_allclose(pred, ols, rtol=1e-9, atol=1e-10)
    acc = kernel_regression_accuracy(wide_tr @ wide_tr.T, wide_te @ wide_tr.T, y_wide, y_wide_te, 3, ridge=0.0)
    assert acc == pytest.approx(float((ols.argmax(1) == y_wide_te).mean()))
    closed = x_te @ np.linalg.solve(x_tr.T @ x_tr + 1e-3 * np.eye(4), x_tr.T @ targets)
    acc = kernel_regression_accuracy(x_tr @ x_tr.T, x_te @ x_tr.T, y_tr, y_te, 3, ridge=1e-3)
    assert acc == pytest.approx(float((closed.argmax(1) == y_te).mean()))


def _exact_distance(k1: np.ndarray, k2: np.ndarray) -> float:
    a = [Fraction(float(v)) for v in k1.ravel()]
    b = [Fraction(float(v)) for v in k2.ravel()]
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    n11, n22 = sum(x * x for x in a), sum(x * x for x in b)
    with localcontext() as ctx:
        ctx.prec = 80
        frac = lambda f: Decimal(f.numerator) / Decimal(f.denominator)  # noqa: E731
        return float(1 - frac(dot) / (frac(n11) * frac(n22)).sqrt())


@pytest.mark.parametrize("eps", [1e-4, 1e-6, 1e-8])
def test_kernel_distance_keeps_its_digits_for_nearby_kernels(eps) -> None:
    g = np.random.default_rng(0)
    a = g.standard_normal((6, 6))
    k1 = a @ a.T
    e = g.standard_normal((6, 6))
    k2 = k1 + eps * (e + e.T)
    exact = _exact_distance(k1, k2)
    assert exact > 0
    # 1 − cos lost 7e-8 relative at eps = 1e-4, 0.2 % at 1e-6 and everything (returned 0) at 1e-8
    assert kernel_distance(k1, k2) == pytest.approx(exact, rel=1e-8, abs=0)


def test_alignment() -> None:
    y = np.array([0, 1, 2, 1, 0, 2, 2])
    yy = one_hot(y, 3) @ one_hot(y, 3).T
    assert kernel_alignment(yy, y, 3) == pytest.approx(1.0, abs=1e-12)
    assert kernel_alignment(yy, y, 3, centered=False) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(1)
    a = rng.normal(size=(7, 5))
    assert -1.0 <= kernel_alignment(a @ a.T, y, 3) <= 1.0


def test_bad_inputs_raise_config_error() -> None:
    x, y = _data(12)
    objective = Objective(_mlp(), x, y)
    traj = _trajectory(objective, steps=3)
    with pytest.raises(ConfigError, match="1000"):
        kernel_evolution(objective, traj, [0.0, 1.0, 2.0], 1000)
    with pytest.raises(ConfigError, match="2.5"):
        kernel_evolution(objective, traj, [0.0, 1.0, 2.0], 5, times_to_use=[1.0, 2.5])
    with pytest.raises(ConfigError, match="increasing"):
        kernel_evolution(objective, traj, [0.0, 2.0, 1.0], 5)
    with pytest.raises(ConfigError, match="times"):
        kernel_evolution(objective, traj, [0.0, 1.0], 5)
    with pytest.raises(ConfigError, match="form"):
        empirical_ntk(objective, form="diag")
    with pytest.raises(ConfigError, match="times_to_use"):
        kernel_machine_curve(objective, traj, [0.0, 1.0, 2.0], x[:6], y[:6], x[6:], y[6:], times_to_use=[7.0])


def _image_objective(n: int = 10, labels: torch.Tensor | None = None) -> Objective:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 4, 4, generator=g, dtype=torch.float64)
    y = torch.arange(n) % 3 if labels is None else labels
    return Objective(MLP((4, 4), 3, width=3, depth=1, seed=0), x, y)


def test_kernel_evolution_rejects_one_class_subset_before_any_kernel(monkeypatch) -> None:
    obj = _image_objective(labels=torch.zeros(10, dtype=torch.long))
    traj = np.stack([obj.theta0.numpy()] * 3)
    calls = []
    real = kernels.kernel_matrix
    monkeypatch.setattr(kernels, "kernel_matrix", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.raises(ConfigError, match="two classes"):
        kernels.kernel_evolution(obj, traj, [0.0, 1.0, 2.0], 5)
    assert not calls
    # uncentred alignment is defined for one class
    evo = kernels.kernel_evolution(obj, traj, [0.0, 1.0, 2.0], 5, centered_alignment=False)
    assert np.all(np.isfinite(evo.alignment))


@pytest.mark.parametrize("subset", [4, [0, 2, 5]])
def test_labels_next_to_a_size_or_indices_are_not_silently_dropped(subset) -> None:
    obj = _image_objective()
    traj = np.stack([obj.theta0.numpy()] * 2)
    with pytest.raises(ConfigError, match="y_subset"):
        kernel_evolution(obj, traj, [0.0, 1.0], subset, y_subset=np.zeros(len(np.atleast_1d(subset))))


def test_kernel_machine_curve_and_roundtrip(tmp_path) -> None:
    x, y = _data(30)
    objective = Objective(_mlp(), x, y)
    traj = _trajectory(objective, steps=3, scale=0.1)
    curve = kernel_machine_curve(objective, traj, [0.0, 1.0, 2.0], x[:20], y[:20], x[20:], y[20:], linearised=True)
    assert curve.kernel_accuracy.shape == (3,) and np.all((0 <= curve.kernel_accuracy) & (curve.kernel_accuracy <= 1))
    assert np.all(np.isfinite(curve.linearised_accuracy))
    assert curve.final_network_accuracy == pytest.approx(curve.network_accuracy[-1])
    expected = float((objective.outputs(torch.from_numpy(traj[-1]), x[20:]).argmax(1) == y[20:]).double().mean())
    assert curve.final_network_accuracy == pytest.approx(expected)
    save_result(curve, tmp_path / "curve")
    back = load_result(KernelMachineCurve, tmp_path / "curve")
    np.testing.assert_array_equal(back.kernel_accuracy, curve.kernel_accuracy)
    assert back.linearised is True and back.n_train == 20

    evo = kernel_evolution(objective, traj, [0.0, 1.0, 2.0], 9)
    save_result(evo, tmp_path / "evo")
    loaded = load_result(KernelEvolution, tmp_path / "evo")
    np.testing.assert_array_equal(loaded.distance, evo.distance)
    np.testing.assert_array_equal(loaded.kernels, evo.kernels)
    np.testing.assert_array_equal(loaded.alignment, evo.alignment)
    assert loaded.form == "trace" and loaded.n_inputs == 9
    ntk = empirical_ntk(objective, x=x[:5])
    save_result(ntk, tmp_path / "ntk")
    np.testing.assert_array_equal(load_result(NTK, tmp_path / "ntk").kernel, ntk.kernel)


def test_plots_write_pngs(tmp_path) -> None:
    import matplotlib.pyplot as plt

    from qlandscape.plots.ntk import (
        plot_kernel_alignment,
        plot_kernel_distance_from_init,
        plot_kernel_distance_matrix,
        plot_kernel_machine_accuracy,
        plot_kernel_velocity,
    )

    x, y = _data(20)
    objective = Objective(_mlp(), x, y)
    traj = _trajectory(objective, steps=4, scale=0.2)
    times = [0.0, 1.0, 3.0, 6.0]
    evo = kernel_evolution(objective, traj, times, 8)
    curve = kernel_machine_curve(objective, traj, times, x[:12], y[:12], x[12:], y[12:])
    figures = {
        "distance": plot_kernel_distance_matrix(evo),
        "velocity": plot_kernel_velocity(evo),
        "init": plot_kernel_distance_from_init(evo),
        "alignment": plot_kernel_alignment(evo),
        "machine": plot_kernel_machine_accuracy(curve),
    }
    for name, fig in figures.items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path)
        assert path.stat().st_size > 1000
        assert fig.axes[0].get_xlabel() and fig.axes[0].get_title()
        plt.close(fig)
    fig, ax = plt.subplots()
    assert plot_kernel_velocity(evo, ax=ax) is fig
    plt.close(fig)


class _NoFuncMLP(nn.Module):
    """An MLP that declares it does not compose with torch.func (as PennyLane-backed models do)."""

    supports_torch_func = False

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def test_autograd_path_matches_torch_func() -> None:
    x, y = _data(9)
    inner = _mlp(4)
    func_path = empirical_ntk(Objective(inner, x, y), form="full", chunk_size=4).kernel
    objective = Objective(_NoFuncMLP(inner), x, y)
    assert not objective.functorch
    np.testing.assert_allclose(
        empirical_ntk(objective, form="full", chunk_size=4).kernel, func_path, rtol=1e-12, atol=1e-12
    )


def test_subset_by_indices_and_forms_share_alignment() -> None:
    x, y = _data(15)
    objective = Objective(_mlp(), x, y)
    traj = _trajectory(objective, steps=3)
    idx = [0, 4, 5, 9, 14]
    by_index = kernel_evolution(objective, traj, [0.0, 1.0, 2.0], idx, form="full")
    by_input = kernel_evolution(objective, traj, [0.0, 1.0, 2.0], x[idx], y_subset=y[idx])
    np.testing.assert_allclose(by_index.alignment, by_input.alignment, rtol=1e-12)
    np.testing.assert_allclose(trace_form(by_index.kernels[1], N_OUT), by_input.kernels[1], rtol=1e-12)
    assert np.isnan(kernel_evolution(objective, traj, [0.0, 1.0, 2.0], x[idx]).alignment).all()
    with pytest.raises(ConfigError, match="15"):
        kernel_evolution(objective, traj, [0.0, 1.0, 2.0], [0, 15])


def test_patch_qnn_ntk_engine_equals_default_qubit():
    from qlandscape.models.qnn import PatchQNN

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 6, 6, generator=g, dtype=torch.float64) * np.pi
    y = torch.tensor([0, 1, 1, 0])
    model = PatchQNN((6, 6), 2, n_qubits=3, n_layers=1, patch_size=3, stride=3, aggregation="linear", seed=1)
    ours = empirical_ntk(Objective(model, x, y), form="full")
    theirs = empirical_ntk(Objective(model.with_backend("default.qubit"), x, y), form="full")
    np.testing.assert_allclose(ours.kernel, theirs.kernel, atol=1e-10, rtol=0)
