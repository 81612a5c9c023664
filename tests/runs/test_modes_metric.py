"""The ``modes`` run metric: computed with a run from its config table, added to a run later by ``run_metric``,
its subcommand, and its settings checked."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from qlandscape.cli.app import main
from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.metrics.modes.results import ConnectivityResult, ConvexityResult
from qlandscape.runs.config import RunConfig
from qlandscape.runs.report import write_report
from qlandscape.runs.run import execute_run, run_metric

TINY_MLP = dict(
    model="mlp", width=6, depth=1, classes=[0, 1], max_train=30, max_test=16, pool=2, epochs=2, batch_size=10
)
FAST = {"seeds": 2, "children": 2, "curve_epochs": 1, "points": 5, "figures": False}


def test_modes_from_a_config_table(tmp_path):
    config = RunConfig.from_dict({**TINY_MLP, "metrics": {"modes": {**FAST, "figures": True}}})
    path = execute_run(config, tmp_path)
    info = json.loads((path / "run.json").read_text())
    metrics = info["metrics"]
    variant = "modes_seeds2_children2_bezier"
    assert metrics["modes.variant"] == variant
    for key in ("linear_barrier", "aligned_barrier", "curve_barrier", "jensen_gap", "soup_minus_best", "mean_cosine",
                "determinism_order_barrier", "determinism_init_barrier"):  # fmt: skip
        assert math.isfinite(metrics[f"modes.{key}"]), key
    connectivity = io.load_result(ConnectivityResult, path / "results" / f"{variant}_connectivity")
    assert connectivity.kinds == ("linear", "aligned", "bezier") and connectivity.losses.shape == (1, 3, 5)
    assert metrics["modes.linear_barrier"] == pytest.approx(float(connectivity.barrier("linear")[0]))
    convexity = io.load_result(ConvexityResult, path / "results" / f"{variant}_convexity")
    assert convexity.k == 2 and convexity.selection_split == "held-out"
    assert (path / "figures" / f"{variant}_properties.png").exists()
    assert (path / "figures" / f"{variant}_paths.png").exists()


def test_modes_added_later_accumulates_variants_and_the_subcommand_runs(tmp_path):
    path = execute_run(RunConfig.from_dict(TINY_MLP), tmp_path)
    scalars = run_metric(path, "modes", {**FAST, "curve": "none", "determinism": False})
    assert scalars["modes.variant"] == "modes_seeds2_children2_none" and math.isnan(scalars["modes.curve_barrier"])
    assert main(["modes", str(path), "--seeds", "2", "--children", "2", "--curve-epochs", "1", "--points", "3",
                 "--no-determinism", "--no-figures", "-q"]) == 0  # fmt: skip
    info = json.loads((path / "run.json").read_text())
    assert info["metrics"]["modes.variant"] == "modes_seeds2_children2_bezier"
    files = {p.name for p in (path / "results").iterdir()}
    assert "modes_seeds2_children2_none_connectivity.json" in files
    assert "modes_seeds2_children2_bezier_connectivity.json" in files
    assert not np.isnan(info["metrics"]["modes.curve_barrier"])


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"seeds": 1}, "seeds"),
        ({"curve": "spline"}, "curve"),
        ({"points": 2}, "points"),
        ({"spawn_fraction": 1.0}, "spawn_fraction"),
    ],
)
def test_bad_settings_are_config_errors(bad, field):
    with pytest.raises(ConfigError, match=field):
        RunConfig.from_dict({**TINY_MLP, "metrics": {"modes": bad}}).validate()


def test_the_report_tabulates_the_scalars_and_draws_the_barriers_of_every_run(tmp_path):
    for width in (4, 6):
        config = RunConfig.from_dict({**TINY_MLP, "width": width, "metrics": {"modes": {**FAST, "determinism": False}}})
        execute_run(config, tmp_path / "runs")
    files = write_report(tmp_path / "runs", tmp_path / "report", pdf=False)
    assert "modes_connectivity.png" in {p.name for p in files.figures}
    with open(files.summary_csv) as handle:
        header = handle.readline()
    assert "modes.aligned_barrier" in header and "modes.jensen_gap" in header
