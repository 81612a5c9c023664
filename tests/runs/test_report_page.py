"""The report over a folder of mixed runs: a table of metric settings is no axis, the summary table's labels, seeds
and columns, fits that need three patch counts, and spawning experiments in a section of their own."""

from __future__ import annotations

import numpy as np
import pytest

from qlandscape.core import io
from qlandscape.metrics.landscape.results import SpawnResult
from qlandscape.runs.config import RunConfig
from qlandscape.runs.report import find_spawns, write_report

BASE = dict(classes=[0, 1], max_train=30, max_test=20, qubits=2, patch_size=4, epochs=2, batch_size=10)


def _fake_run(root, config: dict, metrics: dict, n_patches: int) -> None:
    # A run directory that passes the checks on read: the id its config gives and the training arrays.
    rid = RunConfig.from_dict(config).run_id()
    (root / rid).mkdir(parents=True)
    io.write_json(
        root / rid / "run.json",
        {
            "id": rid,
            "status": "complete",
            "config": config,
            "model": {"n_params": 4 * n_patches, "n_patches": n_patches, "params_per_circuit": 4},
            "metrics": metrics,
        },
    )
    training = {k: np.zeros(1) for k in ("times", "steps", "epochs", "train_loss", "train_accuracy", "test_loss")}
    trajectory = np.zeros((1, 4 * n_patches))
    io.write_npz(root / rid / "arrays.npz", {"trajectory": trajectory, "test_accuracy": np.zeros(1), **training})


def _spawn(root, name: str, seed: int) -> SpawnResult:
    result = SpawnResult(
        spawn_epochs=np.array([0.0, 0.5, 1.0]),
        spawn_steps=np.array([0, 2, 4]),
        error_barrier=np.array([0.2, 0.1, 0.0]),
        loss_barrier=np.array([0.5, 0.2, 0.01]),
        function_distance=np.array([0.3, 0.1, 0.05]),
        child_test_accuracy=np.array([[0.7, 0.75], [0.8, 0.82], [0.9, 0.9]]),
        child_test_loss=np.full((3, 2), 0.4),
        parameter_distance=np.array([3.0, 2.0, 1.0]),
        parent_child_distance=np.ones((3, 2)),
        ts=np.linspace(0, 1, 3),
        test_losses=np.full((3, 3), 0.4),
        test_errors=np.full((3, 3), 0.2),
        parent_test_accuracy=0.85,
        parent_seed=seed,
        child_seeds=(1, 2),
        n_points=3,
        bn_reset=False,
        model="PatchQNN",
        n_params=8,
        seconds=1.0,
    )
    (root / name).mkdir(parents=True)
    io.save_result(result, root / name / "spawn")
    io.write_json(root / name / "config.json", RunConfig.from_dict({**BASE, "seed": seed}).to_dict())
    return result


def _mixed(root):
    """Runs of one setting (patches 2, layers 1) whose metric tables differ, one seed of two more patch counts."""
    tables = ({}, {"hessian": {"top_k": 3}})
    for seed, table in enumerate(tables * 2):
        config = {**RunConfig.from_dict({**BASE, "patches": 2, "layers": 1, "seed": seed}).to_dict(), "metrics": table}
        _fake_run(root, config, {"hessian.lambda_max": 1.0 + seed, "test_accuracy": 0.5}, 2)
    for patches in (4, 8):
        config = RunConfig.from_dict({**BASE, "patches": patches, "layers": 1}).to_dict()
        _fake_run(root, config, {"hessian.lambda_max": 4.0 / patches, "test_accuracy": 0.6}, patches)
    return root


@pytest.fixture(scope="module")
def mixed_report(tmp_path_factory):
    return write_report(_mixed(tmp_path_factory.mktemp("mixed") / "runs"), pdf=False)


@pytest.fixture
def mixed(tmp_path):
    return _mixed(tmp_path / "runs")


def test_runs_that_computed_different_metrics_are_one_group(mixed_report):
    files = mixed_report
    page = files.markdown.read_text()
    assert "varying: patches;" in page  # 'metrics' (a table of settings) is no axis
    with open(files.summary_csv) as handle:
        assert handle.read().count("\n") == 1 + 3  # three groups: patches 2 (four runs), 4 and 8
    assert "| patches | parameter count | runs (complete/all) | test accuracy | λ_max |" in page
    # n_patches repeats patches: one column (the table's header above has no "patch count N")
    assert "2.5 ± 1.291 (n = 4)" in page  # λ_max of seeds 0-3: mean 2.5, sample std 1.291
    assert "| 4 | 16 | 1/1 | 0.6 (n = 1) | 1 (n = 1) |" in page  # one seed: its value, no "± 0"
    assert "0.5 ± 0 (n = 4)" in page  # four seeds that agree do have a spread of 0
    assert "λ_max = hessian.lambda_max" in page  # the legend names the CSV key of every relabelled column


def test_fits_need_three_patch_counts_and_say_so(mixed_report, tmp_path):
    page = mixed_report.markdown.read_text()
    ns, values = np.array([2, 2, 2, 2, 4, 8.0]), np.array([1.0, 2.0, 3.0, 4.0, 1.0, 0.5])
    slope = np.polyfit(np.log(ns), np.log(values), 1)[0]  # every run is a point of the log-log fit
    assert f"exponent {slope:.3f} [" in page and "6 points" in page
    two = tmp_path / "two"
    for patches in (2, 4):
        _fake_run(
            two, RunConfig.from_dict({**BASE, "patches": patches}).to_dict(), {"hessian.lambda_max": 1.0}, patches
        )
    page = write_report(two, pdf=False).markdown.read_text()
    assert "no fit: 2 distinct patch count N values, a power law needs 3" in page and "nan" not in page


def test_the_html_table_scrolls_inside_the_page_with_readable_headers(mixed_report):
    text = mixed_report.html.read_text()
    assert "<div class='table'>" in text and ".table{overflow-x:auto" in text
    assert "<th title='hessian.lambda_max'>λ_max</th>" in text


def test_spawning_experiments_get_a_section_and_a_figure(mixed):
    first = _spawn(mixed, "spawn-aaa", seed=0)
    _spawn(mixed / "more", "spawn-bbb", seed=1)
    found = find_spawns(mixed)
    assert [name for name, _, _ in found] == ["more/spawn-bbb", "spawn-aaa"]
    assert [label for _, _, label in found] == [
        "PatchQNN (8 params), parent seed 1",
        "PatchQNN (8 params), parent seed 0",
    ]
    np.testing.assert_array_equal(found[1][1].child_test_accuracy, first.child_test_accuracy)
    files = write_report(mixed, pdf=False)
    assert "spawn_barriers.png" in {p.name for p in files.figures} and files.n_spawns == 2
    page = files.markdown.read_text()
    assert "## Spawning experiments (qlandscape spawn)" in page
    assert "`spawn-aaa`: PatchQNN (8 params), parent seed 0; parent test accuracy 0.850." in page
    assert "t_s = 0.5: error barrier 0.100, loss barrier 0.200, children's test accuracy 0.800 / 0.820" in page
