"""The robustness figures draw from small results: labels, one colour scale for two slices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.metrics.landscape.slices import slice_1d, slice_2d
from qlandscape.metrics.robustness.evaluation import robustness_curve
from qlandscape.metrics.robustness.input_curvature import input_curvature
from qlandscape.models.classical import MLP
from qlandscape.plots.robustness import plot_input_curvature, plot_landscape_comparison, plot_robustness


def _objective(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(10, 4, 4, generator=g, dtype=torch.float64) * math.pi
    return Objective(MLP((4, 4), 2, width=4, depth=1, seed=seed), x, torch.arange(10) % 2)


def test_robustness_and_curvature_figures_label_method_units_and_errors():
    objective = _objective()
    curve = robustness_curve(objective, [0.0, 0.1, 0.2], steps=3, bounds=(0.0, math.pi), pixels_per_input_unit=5.0)
    ax = plot_robustness(curve).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("clean") and labels[1] == "FGSM" and labels[2].startswith("PGD (3 steps")
    assert "pixel levels" in ax.get_xlabel() and "binomial" in ax.get_ylabel()
    fig = plot_input_curvature(input_curvature(objective, iterations=4))
    assert "Lanczos, 4 of 16" in fig.axes[0].get_xlabel()


def test_two_slices_share_axes_and_one_colour_scale():
    a, b = _objective(0), _objective(1)
    rng = np.random.default_rng(0)
    d1, d2 = rng.normal(size=a.n_params), rng.normal(size=a.n_params)
    line = np.linspace(-1, 1, 5)
    s1 = [slice_1d(o, d1, alphas=line, normalization="filter", direction_kind="random") for o in (a, b)]
    fig = plot_landscape_comparison(*s1)
    assert len(fig.axes[0].get_lines()) == 3 and "filter-normalised" in fig.axes[0].get_title()
    grid = np.linspace(-1, 1, 4)
    s2 = [slice_2d(o, d1, d2, alphas=grid, betas=grid, normalization="filter", direction_kind="random") for o in (a, b)]
    fig = plot_landscape_comparison(*s2, labels=("standard", "PGD mix 1.0"))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 2 and panels[0].get_xlim() == panels[1].get_xlim()
    low = min(float(s.losses.min()) for s in s2)
    high = max(float(s.losses.max()) for s in s2)
    colour_bar = fig.axes[-1]
    assert colour_bar.get_ylim() == pytest.approx((low, high))
    with pytest.raises(ConfigError):
        plot_landscape_comparison(s1[0], s2[0])
