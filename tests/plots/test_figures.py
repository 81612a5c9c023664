"""What figures say and how they read: line colours with contrast on white, symlog tick labels that do not overprint,
integer ticks for counts, one seed said as n = 1, fits that need three points, densities labelled exact or SLQ as
computed, the G + R spectra, top-k eigenvalues, and epochs on the curvature's time axis."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from qlandscape.core.operators import matrix_operator
from qlandscape.metrics.curvature.results import DenseSpectrum, EigenResult, StructureSummary, TrajectoryCurvature
from qlandscape.metrics.curvature.spectral_density import density_from_eigenvalues, spectral_density
from qlandscape.metrics.sweeps import ResultGrid, scaling_fit, series, summary_table
from qlandscape.plots import PALETTE, colour, line_style
from qlandscape.plots.hessian import (
    plot_curvature_over_training,
    plot_density,
    plot_spectrum,
    plot_structure,
    plot_top_k,
)
from qlandscape.plots.sweeps import plot_density_grid, plot_scaling, plot_series
from qlandscape.runs.config import RunConfig

FIELDS = RunConfig.fields()


def _contrast_on_white(hex_colour: str) -> float:
    """WCAG 2 contrast ratio of a colour against white, from its definition."""
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 1.05 / (luminance + 0.05)


def test_every_line_colour_has_contrast_on_white_and_lines_beyond_the_palette_change_style():
    assert len(set(PALETTE)) == len(PALETTE) >= 6
    for c in PALETTE:
        assert _contrast_on_white(c) >= 3.0, c  # viridis' yellow end (#fde725) has 1.3, tab10's olive 2.0
    assert colour(len(PALETTE)) == colour(0) and line_style(len(PALETTE)) != line_style(0)


def _label_boxes(fig, axis):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    lo, hi = axis.get_view_interval()
    return [
        t.label1.get_window_extent(renderer)
        for t in axis.get_major_ticks()
        if t.label1.get_visible() and t.label1.get_text() and min(lo, hi) <= t.get_loc() <= max(lo, hi)
    ]


def _overlaps(boxes) -> list:
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]


def test_symlog_tick_labels_of_a_wide_two_sided_spectrum_do_not_collide():
    rng = np.random.default_rng(0)
    magnitudes = 10.0 ** rng.uniform(-7, 4, size=200)
    values = np.sort(np.concatenate([magnitudes, -magnitudes[:80], np.zeros(5)]))
    fig = plot_spectrum(DenseSpectrum(values, None, None, values.size))
    boxes = _label_boxes(fig, fig.axes[0].yaxis)
    assert len(boxes) >= 5 and not _overlaps(boxes)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert (
        "0" in labels and any(lab.startswith("$-10") for lab in labels) and any(lab.startswith("$10") for lab in labels)
    )
    plt.close(fig)


def test_lanczos_eigenvalues_carry_their_residuals_and_top_k_is_drawn():
    result = EigenResult(
        eigenvalues=np.array([0.5, 2.0, 7.0]),
        eigenvectors=np.eye(3),
        residual_norms=np.array([1e-3, 2e-3, 3e-3]),
        n_matvecs=30,
        converged=True,
        tol=1e-8,
        which="largest",
        method="lanczos",
        n_params=50,
    )
    fig = plot_spectrum(result)
    assert "lanczos" in fig.axes[0].get_title() and "residual" in fig.axes[0].get_title()
    plt.close(fig)
    fig = plot_top_k(result)
    ax = fig.axes[0]
    assert ax.get_title().startswith("Top 3 Hessian eigenvalues of 50 (lanczos")
    points, caps, _ = ax.containers[0]  # the error bar's data line and its caps
    np.testing.assert_array_equal(points.get_ydata(), [7.0, 2.0, 0.5])  # largest first
    np.testing.assert_allclose(caps[1].get_ydata(), [7.003, 2.002, 0.501])  # upper caps: λ + residual
    plt.close(fig)
    dense = DenseSpectrum(np.array([-1.0, 0.1, 0.2, 3.0]), None, None, 4)
    fig = plot_top_k(dense, 2)
    assert "Top 2" in fig.axes[0].get_title() and "exact" in fig.axes[0].get_title()
    plt.close(fig)


def test_density_titles_say_exact_or_slq_as_computed():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    matrix = (q * np.linspace(-1, 5, 12)) @ q.T
    exact = density_from_eigenvalues(np.linalg.eigvalsh(matrix))
    slq = spectral_density(matrix_operator((matrix + matrix.T) / 2), n_starts=2, lanczos_steps=6, seed=0)
    assert exact.method == "exact" and slq.method == "slq"
    title = plot_density(exact).axes[0].get_title()
    assert "exact" in title and "dense eigenvalues" in title and "Gaussian broadening" in title and "SLQ" not in title
    title = plot_density(slq).axes[0].get_title()
    assert title.count("SLQ") == 1 and "exact" not in title
    plt.close("all")


def test_the_density_grid_is_titled_by_the_methods_it_draws():
    exact = density_from_eigenvalues(np.array([0.0, 1.0, 2.0]))
    grid = ResultGrid("hessian_density", "", "", ("",), ("",), ((exact,),), (("P = 3, seed 0",),))
    fig = plot_density_grid(grid)
    assert fig.get_suptitle() == "Hessian spectral densities: exact (dense eigenvalues, Gaussian broadening)"
    plt.close(fig)


def test_structure_spectra_are_overlaid_and_labelled_with_their_top_eigenvalues():
    h, g = np.array([-0.2, 0.0, 0.5, 3.0]), np.array([0.0, 0.0, 0.4, 2.5])
    r = np.array([-0.3, -0.1, 0.1, 0.6])
    summary = StructureSummary(h, g, r, 3.0, -0.2, 2.5, 0.6, -0.3, 1, 1, 2, 4, 6.25, 0.48, "structured")
    fig = plot_structure(summary)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == [
        "H (Hessian): λ_max = 3, 1 outliers",
        "G (Gauss-Newton): λ_max = 2.5, 1 outliers",
        "R = H − G (residual): λ_max = 0.6",
    ]
    drawn = [line.get_ydata() for line in ax.get_lines() if not line.get_label().startswith("_")]
    for got, want in zip(drawn, (h, g, r), strict=True):
        np.testing.assert_array_equal(got, np.sort(want))
    assert not _overlaps(_label_boxes(fig, ax.yaxis))
    plt.close(fig)


def test_curvature_over_training_is_against_epochs_and_draws_the_top_k():
    t = np.array([0.0, 0.5, 1.0])
    top = np.array([[0.1, 0.5, 1.0], [0.2, 0.6, 1.5], [0.2, 0.7, 2.0]])
    curvature = TrajectoryCurvature(
        t, top, top[:, -1], -top[:, 0], top.sum(1), np.zeros(3), np.zeros(3), np.ones(3), "dense", 3, 9
    )
    fig = plot_curvature_over_training(curvature)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epoch"
    assert len(ax.get_lines()) == 4  # λ_max, the two other top-k, |λ_min|
    assert "(exact)" in fig.axes[1].get_ylabel()
    plt.close(fig)


def _rows(patches, seeds):
    return [
        {
            "id": f"{n}-{s}",
            "status": "complete",
            "path": "x",
            "patches": n,
            "seed": s,
            "n_patches": n,
            "params_per_circuit": 4,
            "n_params": 4 * n,
            "hessian.lambda_max": 1.0 / n + 0.01 * s,
        }
        for n in patches
        for s in seeds
    ]


def test_patch_count_ticks_are_integers_and_one_seed_is_said():
    s = series(_rows([2, 3], [0]), "hessian.lambda_max", "n_patches", fields=FIELDS)
    fig = plot_series(s)
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert "n = 1" in ax.get_title() and "±" not in ax.get_title()
    plt.close(fig)
    many = series(_rows(list(range(1, 15)), [0, 1]), "hessian.lambda_max", "n_patches", fields=FIELDS)
    fig = plot_series(many)
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks) and "n = 2 seeds" in ax.get_title()
    plt.close(fig)


def test_a_line_with_two_patch_counts_says_it_has_no_fit():
    fit = scaling_fit(_rows([1, 4], [0, 1]), "hessian.lambda_max", fields=FIELDS)
    assert fit.fits == (None,) and fit.reason(0) == "no fit: 2 distinct patch count N values, a power law needs 3"
    fig = plot_scaling(fit)
    (text,) = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "no fit" in text and "[nan" not in text
    plt.close(fig)
    three = scaling_fit(_rows([1, 4, 16], [0, 1]), "hessian.lambda_max", fields=FIELDS)
    assert three.fits[0] is not None and three.fits[0].n_points == 6
    assert np.isfinite(three.fits[0].exponent_low)


@pytest.mark.parametrize("n", [1, 3])
def test_a_summary_cell_says_its_number_of_seeds(n):
    table = summary_table(_rows([2], list(range(n))), ["hessian.lambda_max"], fields=FIELDS)
    assert table[0]["hessian.lambda_max.n"] == n
