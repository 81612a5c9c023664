"""Directions, slices and landscape plots: analytic quadratics, normalisation rules, PCA against numpy's SVD."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import load_result, save_result
from qlandscape.core.objective import Objective
from qlandscape.metrics.landscape.directions import (
    hessian_directions,
    normalize_direction,
    orthogonalize,
    pca_directions,
    random_direction,
)
from qlandscape.metrics.landscape.results import Slice1D, Slice2D
from qlandscape.metrics.landscape.slices import (
    grid_from_range,
    pca_plane_grid,
    project_onto_plane,
    slice_1d,
    slice_2d,
    slice_pca,
)
from qlandscape.models.classical import MLP
from qlandscape.plots import save_figure
from qlandscape.plots.landscape import describe_directions, plot_contour, plot_slice_1d, plot_surface, plot_trajectory

P_QUAD = 8


class Vector(nn.Module):
    """A model whose output is its own parameter vector (repeated per sample), for analytic losses."""

    def __init__(self, p: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, p, dtype=torch.float64))

    def forward(self, x):
        return self.w.expand(x.shape[0], -1)


def _quadratic():
    g = np.random.default_rng(3)
    q, _ = np.linalg.qr(g.standard_normal((P_QUAD, P_QUAD)))
    eigs = np.array([5.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.2, -0.3])
    a = (q * eigs) @ q.T
    a = (a + a.T) / 2
    star = g.standard_normal(P_QUAD)
    c = 0.7
    a_t, star_t = torch.as_tensor(a), torch.as_tensor(star)

    def quad_loss(out, y):
        r = out[0] - star_t
        return 0.5 * r @ a_t @ r + c

    obj = Objective(Vector(P_QUAD), torch.zeros(3, 1), torch.zeros(3), loss=quad_loss)
    value = lambda th: 0.5 * (th - star) @ a @ (th - star) + c  # noqa: E731
    return obj, a, star, value


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x.unsqueeze(1))).flatten(1))


@pytest.fixture
def mlp_objective():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    return Objective(model, x, y)


@pytest.fixture
def conv_objective(tiny_images):
    x, y = tiny_images
    return Objective(ConvNet(), x, y)


def _blocks(obj, vec):
    return {n: vec[s].reshape(shape) for (n, s), shape in zip(obj.parameter_blocks().items(), obj.shapes, strict=True)}


# ------------------------------------------------------------------------------------------- directions
@pytest.mark.parametrize("which", ["conv", "mlp"])
def test_filter_normalisation_matches_centre_filter_norms(which, conv_objective, mlp_objective):
    obj = conv_objective if which == "conv" else mlp_objective
    theta = obj.theta0.numpy()
    d = random_direction(obj, normalization="filter", seed=4)
    assert d.shape == (obj.n_params,)
    dirs, cent = _blocks(obj, d), _blocks(obj, theta)
    for name, shape in zip(obj.names, obj.shapes, strict=True):
        if len(shape) >= 2:
            got = np.linalg.norm(dirs[name].reshape(shape[0], -1), axis=1)
            want = np.linalg.norm(cent[name].reshape(shape[0], -1), axis=1)
            np.testing.assert_allclose(got, want, rtol=1e-12)
        else:
            assert not np.any(dirs[name]), f"{name} (1-D) must be zeroed"
    # "patch" is the same rule
    np.testing.assert_array_equal(random_direction(obj, normalization="patch", seed=4), d)


def test_filter_normalisation_keep_1d_and_layer_and_none(mlp_objective):
    obj = mlp_objective
    theta = _blocks(obj, obj.theta0.numpy())
    kept = _blocks(obj, random_direction(obj, normalization="filter", seed=1, zero_1d=False))
    layer = _blocks(obj, random_direction(obj, normalization="layer", seed=1, zero_1d=False))
    for name, shape in zip(obj.names, obj.shapes, strict=True):
        np.testing.assert_allclose(np.linalg.norm(layer[name]), np.linalg.norm(theta[name]), rtol=1e-12)
        if len(shape) == 1:
            np.testing.assert_allclose(np.linalg.norm(kept[name]), np.linalg.norm(theta[name]), rtol=1e-12)
    layer_default = _blocks(obj, random_direction(obj, normalization="layer", seed=1))
    assert not np.any(layer_default["0.bias"])
    raw = random_direction(obj, normalization="none", seed=1)
    np.testing.assert_array_equal(raw, np.random.default_rng(1).standard_normal(obj.n_params))
    # seeded and reproducible; different seeds differ
    np.testing.assert_array_equal(random_direction(obj, seed=7), random_direction(obj, seed=7))
    assert not np.allclose(random_direction(obj, seed=7), random_direction(obj, seed=8))


def test_patch_normalisation_on_patch_qnn():
    from qlandscape.models.qnn import PatchQNN

    model = PatchQNN((6, 6), 2, n_qubits=2, n_layers=1, patch_size=3, stride=3)
    x = torch.rand(4, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    obj = Objective(model, x, torch.tensor([0, 1, 1, 0]))
    d = random_direction(obj, normalization="patch", seed=0)
    block = d[obj.parameter_blocks()["circuit_params"]].reshape(model.circuit_params.shape)
    np.testing.assert_allclose(
        np.linalg.norm(block, axis=1), np.linalg.norm(model.circuit_params.detach().numpy(), axis=1), rtol=1e-12
    )
    s = slice_1d(obj, d, alphas=[-0.5, 0.0, 0.5], normalization="patch", direction_kind="random")
    assert s.losses[0, 1] == pytest.approx(float(obj.loss()), abs=1e-12)


def test_patch_alias_needs_a_2d_tensor_and_zero_direction_is_refused():
    obj, *_ = _quadratic()
    with pytest.raises(ConfigError, match="'patch'"):
        random_direction(obj, normalization="patch")
    with pytest.raises(ConfigError, match="all-zero"):
        random_direction(obj, normalization="filter")  # the only tensor is 1-D and zeroed
    d = random_direction(obj, normalization="filter", zero_1d=False)
    np.testing.assert_allclose(np.linalg.norm(d), np.linalg.norm(obj.theta0.numpy()), rtol=1e-12)


def test_orthogonalize_keeps_norm():
    g = np.random.default_rng(0)
    d1, d2 = g.standard_normal(10), g.standard_normal(10)
    e1, e2 = orthogonalize(d1, d2)
    assert abs(e1 @ e2) < 1e-12
    np.testing.assert_allclose(np.linalg.norm(e2), np.linalg.norm(d2), rtol=1e-12)
    with pytest.raises(ConfigError, match="parallel"):
        orthogonalize(d1, 2 * d1)


def test_hessian_directions_are_top_eigenvectors():
    obj, a, star, value = _quadratic()
    vals, vecs = np.linalg.eigh(a)
    for which, idx in (("largest", [-1, -2]), ("smallest", [0, 1])):
        res = hessian_directions(obj, k=2, which=which)
        assert res.method == "lanczos"
        np.testing.assert_allclose(res.eigenvalues, vals[idx], atol=1e-10)
        for row, j in zip(res.directions, idx, strict=True):
            assert abs(abs(row @ vecs[:, j]) - 1) < 1e-10
    dense = hessian_directions(obj, k=P_QUAD - 1)
    assert dense.method == "dense"
    np.testing.assert_allclose(dense.eigenvalues, vals[::-1][: P_QUAD - 1], atol=1e-12)
    # along an eigenvector from the minimum, L = c + λ α² / 2
    top = hessian_directions(obj, star, k=1)
    s = slice_1d(obj, top.directions[0], center=star, alphas=grid_from_range(2.0, 9), direction_kind="hessian")
    np.testing.assert_allclose(s.loss(), 0.7 + 0.5 * top.eigenvalues[0] * s.alphas**2, atol=1e-12)


def test_pca_matches_numpy_svd():
    g = np.random.default_rng(5)
    traj = np.cumsum(g.standard_normal((12, 30)) * np.linspace(3, 0.1, 30), axis=0)
    pca = pca_directions(traj)
    diffs = traj - traj[-1]
    _, s, vt = np.linalg.svd(diffs - diffs.mean(axis=0), full_matrices=False)  # a PCA centres the rows
    for i in range(2):
        assert abs(abs(pca.directions[i] @ vt[i]) - 1) < 1e-12
    np.testing.assert_allclose(pca.singular_values, s[:2], rtol=1e-12)
    np.testing.assert_allclose(pca.explained_variance_ratio, s[:2] ** 2 / np.sum(s**2), rtol=1e-12)
    np.testing.assert_allclose(pca.directions @ pca.directions.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(pca.coordinates, diffs @ pca.directions.T, atol=1e-12)
    np.testing.assert_allclose(pca.coordinates[-1], 0.0, atol=1e-15)
    np.testing.assert_allclose(project_onto_plane(traj, traj[-1], *pca.directions), pca.coordinates, atol=1e-10)
    # an explicit final point not among the rows: the same PCA as of those rows' differences to it
    other = pca_directions(traj[:-1], final=traj[-1])
    rest = diffs[:-1] - diffs[:-1].mean(axis=0)
    _, _, vt_rest = np.linalg.svd(rest, full_matrices=False)
    assert abs(abs(other.directions[0] @ vt_rest[0]) - 1) < 1e-12
    np.testing.assert_allclose(other.coordinates, diffs[:-1] @ other.directions.T, atol=1e-12)
    alphas, betas = pca_plane_grid(pca, resolution=7, padding=5.0)
    assert len(alphas) == 7 and len(betas) == 7
    assert alphas[0] == pytest.approx(pca.coordinates[:, 0].min() - 5.0)
    assert betas[-1] == pytest.approx(max(pca.coordinates[:, 1].max(), 0.0) + 5.0)


def test_pca_directions_are_principal_components_like_sklearn():
    g = np.random.default_rng(5)
    traj = np.cumsum(g.standard_normal((12, 30)) * np.linspace(3, 0.1, 30), axis=0)
    pca = pca_directions(traj)
    diffs = traj - traj[-1]
    ref = PCA(n_components=2, svd_solver="full").fit(diffs)
    for i in range(2):
        assert abs(abs(pca.directions[i] @ ref.components_[i]) - 1) < 1e-12
    np.testing.assert_allclose(pca.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-12)
    np.testing.assert_allclose(pca.singular_values, ref.singular_values_, rtol=1e-12)
    # the trajectory itself is projected uncentred, so the final point is the plane's origin
    np.testing.assert_allclose(pca.coordinates, diffs @ pca.directions.T, atol=1e-12)
    np.testing.assert_allclose(pca.coordinates[-1], 0.0, atol=1e-15)


# ------------------------------------------------------------------------------------------------ slices
def test_slice_2d_equals_analytic_quadratic():
    obj, a, star, value = _quadratic()
    theta = obj.theta0.numpy()
    d1 = random_direction(obj, normalization="none", seed=0)
    d2 = random_direction(obj, normalization="none", seed=1)
    alphas, betas = grid_from_range(1.0, 5), grid_from_range((-0.5, 1.5), 4)
    s = slice_2d(obj, d1, d2, alphas=alphas, betas=betas, batch=7)
    assert s.losses.shape == (1, 4, 5)
    want = np.array([[value(theta + al * d1 + be * d2) for al in alphas] for be in betas])
    np.testing.assert_allclose(s.loss(), want, atol=1e-12)
    np.testing.assert_allclose(s.center_losses, [float(obj.loss())], atol=1e-12)


def test_slice_centres_equal_objective_loss(mlp_objective):
    obj = mlp_objective
    test = obj.with_data(obj.x[:5] + 0.1, obj.y[:5])
    d1 = random_direction(obj, seed=0)
    d2 = random_direction(obj, seed=1)
    s1 = slice_1d(obj, d1, eval_objectives={"test": test}, direction_kind="random", normalization="filter")
    assert s1.splits == ("train", "test") and s1.alphas[25] == 0.0
    assert s1.loss("train")[25] == pytest.approx(float(obj.loss()), abs=1e-12)
    assert s1.loss("test")[25] == pytest.approx(float(test.loss()), abs=1e-12)
    assert s1.error("test")[25] == pytest.approx(test.error(), abs=1e-12)
    np.testing.assert_allclose(s1.accuracies, 1 - s1.errors)
    grid = grid_from_range(1.0, 5)
    s2 = slice_2d(obj, d1, d2, alphas=grid, betas=grid, eval_objectives={"test": test}, orthogonal=True)
    assert abs(s2.direction_cosine) < 1e-12
    assert s2.loss()[2, 2] == pytest.approx(float(obj.loss()), abs=1e-12)
    assert s2.loss("test")[2, 2] == pytest.approx(float(test.loss()), abs=1e-12)


def test_batched_grid_equals_point_by_point(conv_objective):
    obj = conv_objective
    theta = obj.theta0.numpy()
    d1, d2 = random_direction(obj, seed=0), random_direction(obj, seed=1, normalization="layer")
    alphas, betas = grid_from_range(2.0, 5), grid_from_range(1.0, 3)
    s = slice_2d(obj, d1, d2, alphas=alphas, betas=betas, batch=4)
    for i, be in enumerate(betas):
        for j, al in enumerate(alphas):
            point = torch.as_tensor(theta + al * d1 + be * d2)
            assert abs(s.loss()[i, j] - float(obj.loss(point))) < 1e-12
            assert abs(s.error()[i, j] - obj.error(point)) < 1e-12


def test_results_round_trip(tmp_path, mlp_objective):
    obj = mlp_objective
    traj = obj.theta0.numpy() + np.random.default_rng(0).standard_normal((6, obj.n_params)) * 0.1
    pca = pca_directions(traj)
    s = slice_pca(obj, pca, resolution=4, padding=0.5)
    assert s.has_trajectory and s.direction_kind == "pca"
    save_result(s, tmp_path / "pca")
    back = load_result(Slice2D, tmp_path / "pca")
    np.testing.assert_array_equal(back.losses, s.losses)
    assert back.splits == s.splits and back.direction_kind == "pca"
    s1 = slice_1d(obj, random_direction(obj), alphas=[-1, 0, 1])
    save_result(s1, tmp_path / "one")
    assert load_result(Slice1D, tmp_path / "one").splits == ("train",)


def test_bad_inputs_raise_config_error(mlp_objective):
    obj = mlp_objective
    d = random_direction(obj)
    with pytest.raises(ConfigError, match=r"\(3,\)"):
        slice_1d(obj, np.ones(3))
    bad = obj.theta0.numpy().copy()
    bad[2] = np.nan
    with pytest.raises(ConfigError, match="nan"):
        slice_1d(obj, d, center=bad)
    with pytest.raises(ConfigError, match="resolution = 1"):
        grid_from_range(1.0, 1)
    with pytest.raises(ConfigError, match="'diagonal'"):
        random_direction(obj, normalization="diagonal")
    with pytest.raises(ConfigError, match="all zeros"):
        slice_2d(obj, d, np.zeros_like(d))
    with pytest.raises(ConfigError, match="alphas"):
        slice_1d(obj, d, alphas=[0.0, np.inf])
    with pytest.raises(ConfigError, match="eval_objectives"):
        slice_1d(obj, d, eval_objectives={"test": Objective(nn.Linear(4, 3), obj.x, obj.y)})
    with pytest.raises(ConfigError, match="trajectory"):
        slice_2d(obj, d, random_direction(obj, seed=1), trajectory=np.zeros((3, 5)))
    with pytest.raises(ConfigError, match="constant"):
        pca_directions(np.ones((4, 6)))
    with pytest.raises(ConfigError, match="k = 0"):
        hessian_directions(obj, k=0)
    with pytest.raises(ConfigError, match="'unit'"):
        normalize_direction(obj, d, normalization="unit")
    with pytest.raises(ConfigError, match="no trajectory"):
        plot_trajectory(slice_2d(obj, d, random_direction(obj, seed=1), alphas=[-1, 1], betas=[-1, 1]))


def test_slice_2d_rejects_an_explained_variance_that_is_not_two_fractions():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 4, 4, generator=g, dtype=torch.float64)
    obj = Objective(MLP((4, 4), 3, width=3, depth=1, seed=0), x, torch.arange(6) % 3)
    d1, d2 = random_direction(obj, seed=1), random_direction(obj, seed=2)
    with pytest.raises(ConfigError, match="explained_variance_ratio"):
        slice_2d(obj, d1, d2, alphas=[-1, 1], betas=[-1, 1], direction_kind="pca", explained_variance_ratio=[0.6])


# ------------------------------------------------------------------------------------------------- plots
def test_plots_write_png(tmp_path, mlp_objective):
    obj = mlp_objective
    test = obj.with_data(obj.x[:6] + 0.2, obj.y[:6])
    d1 = random_direction(obj, seed=0)
    s1 = slice_1d(obj, d1, eval_objectives={"test": test}, direction_kind="random", normalization="filter")
    traj = obj.theta0.numpy() + np.cumsum(np.random.default_rng(1).standard_normal((8, obj.n_params)) * 0.3, 0)
    s2 = slice_pca(
        obj.with_data(obj.x, obj.y), pca_directions(traj), resolution=9, padding=1.0, eval_objectives={"test": test}
    )
    figures = {
        "slice1d": plot_slice_1d(s1),
        "contour": plot_contour(s2, log_scale=True),
        "contour_error": plot_contour(s2, split="test", quantity="error"),
        "surface": plot_surface(s2),
        "trajectory": plot_trajectory(s2),
    }
    for name, fig in figures.items():
        png, pdf = save_figure(fig, tmp_path / name)
        assert png.stat().st_size > 1000 and pdf.exists()
        plt.close(fig)
    title = figures["slice1d"].axes[0].get_title()
    assert "random direction, filter-normalised" in title and "train, test" in title
    assert "PC1" in figures["contour"].axes[0].get_xlabel()
    assert "train split" in figures["contour"].axes[0].get_title()
    fig, ax = plt.subplots()
    with pytest.raises(ConfigError, match="3-D"):
        plot_surface(s2, ax)
    plt.close(fig)
    assert describe_directions("random", "none") == "random directions, unnormalised"
