"""Sweep reports: aggregation over seeds, power-law fits, and the CSV, figures and page of a tiny sweep."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from qlandscape import cli
from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.metrics.sweeps import scaling_fit, series, split_axes, summary_table
from qlandscape.runs.config import RunConfig
from qlandscape.runs.report import run_summary, write_report
from qlandscape.runs.run import execute_run
from qlandscape.runs.sweep import run_sweep
from qlandscape.runs.tables import load_runs

BASE = dict(classes=[0, 1], max_train=30, max_test=20, qubits=2, patch_size=4, epochs=2, batch_size=10)
FIELDS = RunConfig.fields()


@pytest.fixture
def no_run_figures(monkeypatch):
    # Per-run figures (drawn by the metric hooks) are not what this file tests, and cost ~1 s each.
    monkeypatch.setattr("qlandscape.runs.run.save_metric_figures", lambda *args, **kwargs: None)


def fake_rows():
    rows = []
    for layers in (1, 2):
        for patches in (1, 4):
            for seed in (0, 1, 2):
                p = 4 * layers
                rows.append(
                    {
                        "id": f"{layers}{patches}{seed}",
                        "status": "complete",
                        "path": "x",
                        "layers": layers,
                        "patches": patches,
                        "seed": seed,
                        "lr": 0.05,
                        "n_params": p * patches,
                        "n_patches": patches,
                        "params_per_circuit": p,
                        "hessian.lambda_max": 3.0 * layers * patches**-0.5 * (1 + 0.1 * seed),
                    }
                )
    rows.append({**rows[0], "id": "bad", "status": "failed", "hessian.lambda_max": None})
    return rows


def test_series_aggregates_seeds_and_absorbs_size_axes():
    rows = fake_rows()
    s = series(rows, "hessian.lambda_max", "n_params", "n_patches", fields=FIELDS)
    assert s.line_labels == ("N = 1", "N = 4") and s.x.tolist() == [4, 8, 16, 32]
    first = 3.0 * np.array([1.0, 1.1, 1.2])
    assert s.mean[0] == pytest.approx(first.mean()) and s.std[0] == pytest.approx(first.std(ddof=1))
    assert (s.low[0], s.high[0]) == pytest.approx((3.0, 3.6)) and s.n.tolist() == [3, 3, 3, 3]
    by_n = series(rows, "hessian.lambda_max", "n_patches", "params_per_circuit", fields=FIELDS)
    assert by_n.line_labels == ("L = 1 (4 params/circuit)", "L = 2 (8 params/circuit)")
    # a varying field that is not a size axis splits lines
    rows += [{**r, "id": r["id"] + "b", "lr": 0.1} for r in rows if r["status"] == "complete"]
    assert split_axes(rows, "n_params", "n_patches", fields=FIELDS) == ["lr"]
    assert series(rows, "hessian.lambda_max", "n_params", "n_patches", fields=FIELDS).line_labels == (
        "N = 1, lr = 0.05",
        "N = 1, lr = 0.1",
        "N = 4, lr = 0.05",
        "N = 4, lr = 0.1",
    )
    with pytest.raises(ConfigError, match="test_accuracy"):
        series(rows, "test_accuracy", "n_params", fields=FIELDS)


def test_scaling_fit_and_summary_table():
    rows = fake_rows()
    # two patch counts: any power law passes through two points, so no fit, and the reason instead
    two = scaling_fit(rows, "hessian.lambda_max", fields=FIELDS)
    assert two.fits == (None, None) and all("2 distinct patch count N values" in r for r in two.reasons)
    third = [
        {
            **r,
            "id": r["id"] + "c",
            "patches": 16,
            "n_patches": 16,
            "n_params": r["params_per_circuit"] * 16,
            "hessian.lambda_max": r["hessian.lambda_max"] / 2,
        }
        for r in rows
        if r["patches"] == 4
    ]
    fit = scaling_fit(rows + third, "hessian.lambda_max", fields=FIELDS)
    assert [f.exponent for f in fit.fits] == pytest.approx([-0.5, -0.5]) and fit.reasons == ("", "")
    table = summary_table(rows, ["hessian.lambda_max"], fields=FIELDS)
    assert [(t["layers"], t["patches"], t["n_runs"], t["n_complete"]) for t in table] == [
        (1, 1, 4, 3),
        (1, 4, 3, 3),
        (2, 1, 3, 3),
        (2, 4, 3, 3),
    ]
    assert table[0]["hessian.lambda_max.max"] == pytest.approx(3.6)


def test_report_of_a_tiny_sweep(tmp_path, no_run_figures, capsys):
    sweep = {
        "base": {
            **BASE,
            "metrics": {
                "hessian": {"structure": True, "point": "best", "top_k": 2},
                "landscape": {"grid": 5, "directions": "pca"},
            },
        },
        "grid": {"layers": [1, 2], "patches": [1, 2], "seed": [0, 1]},
    }
    rows = run_sweep(sweep, tmp_path / "runs", workers=1, progress=False)
    assert all(r["status"] == "complete" for r in rows) and len(rows) == 8
    broken = RunConfig.from_dict({**BASE, "dataset": str(tmp_path / "missing.npz")})
    with pytest.raises(ConfigError):
        execute_run(broken, tmp_path / "runs")

    files = write_report(tmp_path / "runs", tmp_path / "report")
    assert files.n_runs == 9 and files.n_complete == 8
    with open(files.runs_csv) as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 9 and {"hessian.lambda_max", "n_params", "n_patches", "layers", "seed"} <= set(table[0])
    assert sum(r["status"] == "failed" for r in table) == 1
    names = {p.name for p in files.figures}
    assert names == {
        "metrics_vs_n_params.png",
        "metrics_vs_n_patches.png",
        "lambda_max_vs_patches_fit.png",
        "landscape_grid.png",
        "spectral_densities.png",
    }
    for png in files.figures:
        assert png.stat().st_size > 10_000 and png.with_suffix(".pdf").exists()
    page = files.markdown.read_text()
    assert "figures/landscape_grid.png" in page and "| layers | patches |" in page and "missing.npz" in page
    assert files.html.read_text().count("data:image/png;base64,") == 5
    fits = json.loads((tmp_path / "report" / "fits.json").read_text())
    assert set(fits) == {"hessian.lambda_max", "hessian.structure.lambda_max_normalised"}
    with open(files.summary_csv) as handle:
        assert len(list(csv.DictReader(handle))) == 5  # four grid cells and the failed run's own group

    assert cli.main(["report", str(tmp_path / "runs"), "--no-pdf"]) == 0
    assert "9 runs (8 complete); 5 figures" in capsys.readouterr().out
    assert not list((tmp_path / "runs" / "report" / "figures").glob("*.pdf"))


def test_report_of_classical_ntk_runs(tmp_path, no_run_figures):
    sweep = {
        "base": {**BASE, "model": "mlp", "width": 8, "depth": 1, "metrics": {"ntk": {"subset": 10}}},
        "grid": {"lr": [0.01, 0.1], "seed": [0, 1]},
    }
    run_sweep(sweep, tmp_path, workers=1, progress=False)
    files = write_report(tmp_path)
    assert {p.name for p in files.figures} == {"metrics_vs_lr.png", "ntk_curves.png"}
    assert "ntk.final_distance_from_init" in files.markdown.read_text()
    assert io.read_json(tmp_path / "sweep.json")["counts"] == {"complete": 4}


def test_report_of_an_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no run directories"):
        write_report(tmp_path)


def _fake_run(root, name: str, config: dict, lambda_max: float) -> None:
    # A run directory that passes the checks on read: the id its config gives and the training arrays.
    rid = RunConfig.from_dict(config).run_id()
    (root / name).mkdir(parents=True)
    io.write_json(
        root / name / "run.json",
        {
            "id": rid,
            "status": "complete",
            "config": config,
            "model": {"n_params": 8, "n_patches": 2, "params_per_circuit": 4},
            "metrics": {"hessian.lambda_max": lambda_max},
        },
    )
    training = {k: np.zeros(1) for k in ("times", "steps", "epochs", "train_loss", "train_accuracy", "test_loss")}
    io.write_npz(root / name / "arrays.npz", {"trajectory": np.zeros((1, 8)), "test_accuracy": np.zeros(1), **training})


def test_report_groups_seeds_across_runs_written_before_later_fields(tmp_path):
    # A run written before 'device' and 'schedule_unit' existed keeps its id, so a resumed sweep mixes both kinds.
    new = RunConfig.from_dict({**BASE, "patches": 2, "layers": 1}).to_dict()
    old = {k: v for k, v in new.items() if k not in ("device", "schedule_unit")}
    for layers in (1, 2):
        _fake_run(tmp_path, f"a{layers}", {**old, "layers": layers, "seed": 0}, 1.0 * layers)
        _fake_run(tmp_path, f"b{layers}", {**new, "layers": layers, "seed": 1}, 2.0 * layers)
        _fake_run(tmp_path, f"c{layers}", {**new, "layers": layers, "seed": 2}, 6.0 * layers)
    table = run_summary(load_runs(tmp_path))
    assert [(e["layers"], e["n_runs"]) for e in table] == [(1, 3), (2, 3)]
    assert [e["hessian.lambda_max.mean"] for e in table] == pytest.approx([3.0, 6.0])
