from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from qlandscape.core.errors import ConfigError
from qlandscape.metrics.modes.directedness import directedness_of_vectors
from qlandscape.metrics.modes.results import ConnectivityResult, ConvexityResult, DeterminismResult
from qlandscape.plots.modes import plot_connectivity_barriers, plot_mode_paths, plot_mode_properties


def _connectivity():
    ts = np.linspace(0, 1, 5)
    curve = np.sin(np.pi * ts)
    losses = np.stack([np.stack([curve, 0.2 * curve, 0.1 * curve])] * 2)
    barriers = np.tile(np.array([1.0, 0.2, 0.1])[None, :, None], (2, 1, 4))
    return ConnectivityResult(
        kinds=("linear", "aligned", "bezier"), pairs=np.array([[0, 1], [0, 2]]), ts=ts, losses=losses,
        errors=losses / 2, barriers=barriers, distances=np.ones((2, 3)), split="test", loss_name="cross_entropy",
        bn_reset=True, curve_epochs=5,
    )  # fmt: skip


def test_mode_figures_draw_from_results():
    connectivity = _connectivity()
    fig = plot_mode_paths(connectivity, pair=1, quantity="error")
    assert "models 0 and 2" in fig.axes[0].get_title() and "BN statistics" in fig.axes[0].get_title()
    assert len(fig.axes[0].lines) == 3
    fig = plot_connectivity_barriers(connectivity, "loss_max_minus_mean")
    assert "max − mean" in fig.axes[0].get_ylabel()
    convexity = ConvexityResult(
        k=3, member_loss=np.ones(3), member_error=np.full(3, 0.1), mean_model_loss=0.9, mean_model_error=0.08,
        jensen_gap_loss=-0.1, jensen_gap_error=-0.02, ingredient_accuracy=np.full(3, 0.9), uniform_soup_accuracy=0.92,
        greedy_soup_accuracy=0.93, greedy_chosen=(0, 2), best_ingredient_accuracy=0.9, soup_minus_best=0.03,
        aligned=False, split="test", loss_name="cross_entropy",
    )  # fmt: skip
    determinism = DeterminismResult(
        sources=("init", "order", "both"), reference_seeds=(0, 0), other_seeds=(1, 1), barriers=np.zeros((3, 2, 4)),
        parameter_distance=np.ones(3), function_distance=np.zeros(3), accuracies=np.ones(4), split="test",
        loss_name="cross_entropy",
    )  # fmt: skip
    directedness = directedness_of_vectors(np.eye(3))
    fig = plot_mode_properties(connectivity, convexity, determinism, directedness, title="MLP")
    assert len(fig.axes) == 5  # four panels and the colour bar
    assert "Jensen gap" in fig.axes[1].get_title()
    plt.close("all")
    with pytest.raises(ConfigError, match="pair"):
        plot_mode_paths(connectivity, pair=5)
