"""The ``robustness`` run metric: a config table and the subcommand, its numbers against the library computed here,
its variants, and bad settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qlandscape import cli
from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.metrics.robustness.evaluation import robustness_curve
from qlandscape.metrics.robustness.input_curvature import input_curvature
from qlandscape.metrics.robustness.results import RobustnessCurve
from qlandscape.runs.config import RunConfig
from qlandscape.runs.run import execute_run, load_run, run_metric

TINY = dict(classes=[0, 1], max_train=24, max_test=16, model="mlp", width=6, depth=1, epochs=2, batch_size=8)
TABLE = {"eps": [0.0, 0.1, 0.3], "steps": 3, "curvature_samples": 5, "curvature_iterations": 8}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    config = RunConfig.from_dict({**TINY, "metrics": {"robustness": TABLE}})
    return execute_run(config, tmp_path_factory.mktemp("runs"))


def test_the_config_table_records_per_eps_numbers_that_the_library_reproduces(run_dir):
    info = json.loads((run_dir / "run.json").read_text())
    metrics = info["metrics"]
    run = load_run(run_dir)
    obj = run.objective("test")
    curve = robustness_curve(obj, [0.0, 0.1, 0.3], steps=3, bounds=run.dataset.input_range)
    assert metrics["robustness.variant"] == "robustness_linf"
    assert metrics["robustness.clean_accuracy"] == pytest.approx(curve.clean_accuracy)
    assert metrics["robustness.clean_accuracy"] == pytest.approx(info["metrics"]["test_accuracy"])
    for i, eps in enumerate(("0", "0.1", "0.3")):
        assert metrics[f"robustness.pgd_accuracy_eps{eps}"] == pytest.approx(curve.pgd_accuracy[i], abs=1e-12)
        assert metrics[f"robustness.fgsm_loss_eps{eps}"] == pytest.approx(curve.fgsm_loss[i], abs=1e-12)
    assert metrics["robustness.pgd_accuracy"] == metrics["robustness.pgd_accuracy_eps0.3"]
    assert metrics["robustness.pgd_accuracy"] <= metrics["robustness.clean_accuracy"]
    curvature = input_curvature(obj, iterations=8, n_samples=5)
    assert metrics["robustness.input_curvature"] == pytest.approx(curvature.mean_top_eigenvalue, rel=1e-9)
    for name in ("robustness_linf_accuracy.png", "robustness_linf_input_curvature.png"):
        assert (run_dir / "figures" / name).exists()
    saved = io.read_json(run_dir / "results" / "robustness_linf_curve.json")
    assert saved["norm"] == "linf"


def test_the_subcommand_adds_an_l2_variant_beside_the_linf_one(run_dir, capsys):
    assert (
        cli.main(["robustness", str(run_dir), "--norm", "l2", "--eps", "0,0.5", "--no-curvature", "--no-figures"]) == 0
    )
    out = capsys.readouterr().out
    assert "PGD accuracy at the largest eps" in out
    info = json.loads((run_dir / "run.json").read_text())
    assert info["metrics"]["robustness.variant"] == "robustness_l2"
    assert (run_dir / "results" / "robustness_l2_curve.json").exists()
    assert (run_dir / "results" / "robustness_linf_curve.json").exists()  # kept beside it
    curve = io.load_result(RobustnessCurve, run_dir / "results" / "robustness_l2_curve")
    assert np.array_equal(curve.eps, [0.0, 0.5])


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"eps": [0.2, 0.1]}, "metrics.robustness.eps"),
        ({"eps": []}, "metrics.robustness.eps"),
        ({"alpha_fraction": 0}, "metrics.robustness.alpha_fraction"),
        ({"norm": "l1"}, "metrics.robustness.norm"),
        ({"steps": 0}, "metrics.robustness.steps"),
    ],
)
def test_bad_settings_fail_before_any_work(run_dir, table, field):
    with pytest.raises(ConfigError) as info:
        run_metric(run_dir, "robustness", table)
    assert info.value.field == field
