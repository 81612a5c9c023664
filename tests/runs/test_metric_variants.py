"""Hessian and NTK results accumulate by variant, as landscapes do: named by the settings that say what was computed,
the same variant computed again replaced as a whole, the latest variant's scalars in run.json, every variant listed
by ``qlandscape show`` and the report showing each run's default variant; results written before variants (0.1,
0.2.0) read as one variant named like the metric."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from qlandscape import cli
from qlandscape.core import io
from qlandscape.metrics.curvature.results import DenseSpectrum, SpectralDensity
from qlandscape.metrics.ntk.results import KernelEvolution
from qlandscape.runs.config import RunConfig
from qlandscape.runs.layout import check_run
from qlandscape.runs.metric_spec import SweepView
from qlandscape.runs.metric_specs import hessian, ntk
from qlandscape.runs.report import default_variants, write_report
from qlandscape.runs.run import execute_run, load_run, run_metric
from qlandscape.runs.sweep import run_sweep
from qlandscape.runs.tables import load_runs
from qlandscape.runs.variants import default, latest, variants

TINY = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=2, batch_size=10
)
RUN_0_1 = Path(__file__).parent / "data" / "v0_1_run" / "0307e95d34d7"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return execute_run(RunConfig.from_dict(TINY), tmp_path_factory.mktemp("runs"))


@pytest.fixture
def run_dir(base_run, tmp_path):
    return Path(shutil.copytree(base_run, tmp_path / base_run.name))


def _files(path: Path, folder: str) -> set[str]:
    return {p.name for p in (path / folder).glob("*")}


def test_hessian_variants_are_named_by_what_is_computed():
    s = hessian.HessianSettings
    assert hessian.variant_name(s(), "dense") == "hessian_dense"
    assert (
        hessian.variant_name(s(point="init", split="test", structure=True, trajectory=True), "dense")
        == "hessian_dense_init_test_structure_trajectory"
    )
    assert hessian.variant_name(s(point="best", seed=3), "lanczos") == "hessian_lanczos_best_seed3"
    assert hessian.variant_name(s(seed=3), "dense") == "hessian_dense"  # a dense Hessian draws nothing
    # how much is computed does not name a variant: computing it again with these replaces it
    assert hessian.variant_name(s(top_k=9, density=False, n_probes=7, summary=False), "dense") == "hessian_dense"
    assert hessian.resolved_method(s(), 3000) == "dense" and hessian.resolved_method(s(), 3001) == "lanczos"
    assert hessian.resolved_method(s(method="lanczos"), 5) == "lanczos"
    assert hessian.resolved_method(s(method="dense", max_params=2), 5) == "dense"


def test_ntk_variants_are_named_by_the_kernel():
    s = ntk.NTKSettings
    assert ntk.variant_name(s()) == "ntk_trace_subset100"
    assert ntk.variant_name(s(form="full", subset=8, every=2)) == "ntk_full_subset8_every2"
    assert ntk.variant_name(s(ridge=0.1)) == ntk.variant_name(s())  # the ridge says how the kernel is used


def test_hessians_at_two_points_and_on_two_splits_coexist_each_the_hessian_it_names(run_dir):
    run_metric(run_dir, "hessian", {"density": False, "figures": False})
    run_metric(run_dir, "hessian", {"point": "init", "density": False})
    test = run_metric(run_dir, "hessian", {"split": "test", "density": False, "figures": False})
    info = io.read_json(run_dir / "run.json")
    found = variants(info, "hessian")
    assert [v.name for v in found] == ["hessian_dense", "hessian_dense_init", "hessian_dense_test"]
    assert found[-1].latest and latest(info, "hessian").name == "hessian_dense_test"
    run = load_run(run_dir)
    trajectory = run.result.trajectory
    for variant, split, theta in (
        (found[0], "train", trajectory[-1]),
        (found[1], "train", trajectory[0]),
        (found[2], "test", trajectory[-1]),
    ):
        # each variant's spectrum is the Hessian of its own point and split, by autograd here
        h = run.objective(split).hessian(torch.as_tensor(theta)).detach().numpy()
        exact = np.linalg.eigvalsh(h)
        spectrum = io.load_result(DenseSpectrum, run_dir / variant.result_file("_spectrum"))
        np.testing.assert_allclose(spectrum.eigenvalues, exact, rtol=1e-9, atol=1e-12)
        assert variant.scalars["hessian.lambda_max"] == pytest.approx(exact[-1], rel=1e-9)
        assert variant.scalars["hessian.variant"] == variant.name
    # run.json and arrays.npz hold the latest variant's numbers alone
    assert {k: v for k, v in info["metrics"].items() if k.startswith("hessian.")} == test
    arrays = io.read_npz(run_dir / "arrays.npz")
    np.testing.assert_array_equal(
        arrays["hessian.spectrum.eigenvalues"],
        io.load_result(DenseSpectrum, run_dir / "results" / "hessian_dense_test_spectrum").eigenvalues,
    )
    figures = _files(run_dir, "figures")
    assert "hessian_dense_init_spectrum.png" in figures and not any(
        f.startswith("hessian_dense_spectrum") for f in figures
    )
    assert check_run(run_dir).status == "complete"


def _finite_difference_kernel(run, theta: np.ndarray, n: int, form: str, h: float = 1e-5) -> np.ndarray:
    """Θ = J Jᵀ on the first ``n`` training inputs, J by central differences of the outputs (not autograd)."""
    obj = run.objective("train")
    x = obj.x[:n]
    columns = []
    for i in range(theta.shape[0]):
        step = np.zeros_like(theta)
        step[i] = h
        plus = obj.outputs(torch.as_tensor(theta + step), x).numpy()
        minus = obj.outputs(torch.as_tensor(theta - step), x).numpy()
        columns.append((plus - minus) / (2 * h))
    jac = np.stack(columns, axis=-1)  # (n, C, P)
    if form == "trace":
        return np.einsum("acp,bcp->ab", jac, jac)
    flat = jac.reshape(-1, jac.shape[-1])
    return flat @ flat.T


def test_ntk_kernels_of_two_subsets_and_forms_coexist_and_the_same_one_is_replaced(run_dir):
    run_metric(run_dir, "ntk", {"subset": 8, "figures": False})
    run_metric(run_dir, "ntk", {"subset": 12, "form": "full", "every": 2})
    info = io.read_json(run_dir / "run.json")
    assert [v.name for v in variants(info, "ntk")] == ["ntk_trace_subset8", "ntk_full_subset12_every2"]
    assert {"ntk_trace_subset8_evolution.json", "ntk_full_subset12_every2_kernel_machine.json"} <= _files(
        run_dir, "results"
    )
    assert "ntk_full_subset12_every2_velocity.png" in _files(run_dir, "figures")
    run = load_run(run_dir)
    for name, n, form in (("ntk_trace_subset8", 8, "trace"), ("ntk_full_subset12_every2", 12, "full")):
        evo = io.load_result(KernelEvolution, run_dir / "results" / f"{name}_evolution")
        first, last = (run.result.trajectory[int(i)] for i in evo.indices[[0, -1]])
        k0, k1 = (_finite_difference_kernel(run, theta, n, form) for theta in (first, last))
        assert evo.form == form and evo.n_inputs == n
        assert evo.kernel_traces[-1] == pytest.approx(np.trace(k1), rel=1e-7)
        assert evo.kernel_norms[-1] == pytest.approx(np.linalg.norm(k1), rel=1e-7)
        distance = 1 - np.sum(k0 * k1) / (np.linalg.norm(k0) * np.linalg.norm(k1))
        scalars = info["manifest"]["ntk"]["variants"][name]["scalars"]
        assert scalars["ntk.final_distance_from_init"] == pytest.approx(distance, rel=1e-5, abs=1e-9)
    # another ridge: the same kernel, its variant replaced as a whole (its figures go), the other kept
    run_metric(run_dir, "ntk", {"subset": 12, "form": "full", "every": 2, "ridge": 0.1, "figures": False})
    entry = io.read_json(run_dir / "run.json")["manifest"]["ntk"]
    assert set(entry["variants"]) == {"ntk_trace_subset8", "ntk_full_subset12_every2"}
    assert entry["variants"]["ntk_full_subset12_every2"]["settings"]["ridge"] == 0.1
    assert not any(f.startswith("ntk_full_subset12_every2") for f in _files(run_dir, "figures"))
    assert check_run(run_dir).status == "complete"


def test_a_0_1_hessian_stays_beside_a_new_one_and_show_lists_both(tmp_path, capsys):
    path = Path(shutil.copytree(RUN_0_1, tmp_path / RUN_0_1.name))
    recorded = io.read_json(path / "run.json")["metrics"]["hessian.lambda_max"]
    run_metric(path, "hessian", {"point": "init", "density": False, "figures": False})
    info = io.read_json(path / "run.json")
    old, new = variants(info, "hessian", path)
    assert (old.name, new.name) == ("hessian", "hessian_dense_init") and new.latest
    assert old.scalars["hessian.lambda_max"] == recorded  # 0.1's numbers stay with 0.1's files
    assert {"hessian_spectrum.json", "hessian_summary.json", "hessian_dense_init_spectrum.json"} <= _files(
        path, "results"
    )
    assert check_run(path).status == "complete"
    assert cli.main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hessian: 2 results" in out and "\n    hessian, computed" not in out  # 0.1 recorded no time
    assert "\n    hessian\n" in out and "\n    hessian_dense_init, computed " in out
    assert "files: results/hessian_spectrum.{json,npz}, results/hessian_summary.{json,npz}" in out


def _as_written_by_0_2_0(path: Path, metric: str, variant: str) -> None:
    """Rewrite a run holding one variant of ``metric`` as qlandscape 0.2.0 wrote it: files named after the metric,
    a manifest entry without variants, no ``<metric>.variant`` scalar."""
    info = io.read_json(path / "run.json")
    entry = info["manifest"][metric]
    renamed = []
    for relative in entry["files"]:
        new = relative.replace(variant, metric)
        (path / relative).rename(path / new)
        renamed.append(new)
    entry.pop("variant")
    entry.pop("variants")
    entry["files"] = sorted(renamed)
    info["metrics"].pop(f"{metric}.variant")
    io.write_json(path / "run.json", info)


def test_an_ntk_written_by_0_2_0_reads_as_one_variant_and_is_kept_beside_new_ones(run_dir):
    run_metric(run_dir, "ntk", {"subset": 8})
    _as_written_by_0_2_0(run_dir, "ntk", "ntk_trace_subset8")
    assert {"ntk_evolution.json", "ntk_kernel_machine.json"} <= _files(run_dir, "results")
    assert check_run(run_dir).status == "complete"
    (old,) = variants(io.read_json(run_dir / "run.json"), "ntk", run_dir)
    assert old.name == "ntk" and old.result_file("_evolution") == "results/ntk_evolution"
    run_metric(run_dir, "ntk", {"subset": 10, "figures": False})
    info = io.read_json(run_dir / "run.json")
    assert set(info["manifest"]["ntk"]["variants"]) == {"ntk", "ntk_trace_subset10"}
    assert "ntk_distance.png" in _files(run_dir, "figures") and check_run(run_dir).status == "complete"


def test_the_default_variant_is_the_one_the_run_config_computed(tmp_path, capsys):
    config = RunConfig.from_dict({**TINY, "metrics": {"hessian": {"density": False, "figures": False}}})
    path = execute_run(config, tmp_path)
    run_metric(path, "hessian", {"point": "init", "density": False, "figures": False})
    run_metric(path, "ntk", {"subset": 8, "figures": False})
    info = io.read_json(path / "run.json")
    assert latest(info, "hessian").name == "hessian_dense_init"
    assert default(info, "hessian").name == "hessian_dense"  # computed with the run
    assert default(info, "ntk").name == "ntk_trace_subset8"  # only added later: the latest
    assert default(info, "landscape") is None
    assert cli.main(["show", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    (own,) = [line for line in lines if line.startswith("    hessian_dense, computed ")]
    (last,) = [line for line in lines if line.startswith("    hessian_dense_init, computed ")]
    assert own.endswith("[computed with the run: the report shows it]")
    assert last.endswith("[latest: run.json shows its numbers]")
    assert "  ntk: 1 result" in lines and not any("report shows" in line for line in lines if "ntk_" in line)


def test_the_report_shows_each_run_s_default_variant(tmp_path):
    sweep = {"base": {**TINY, "metrics": {"hessian": {"figures": False}}}, "grid": {"seed": [0, 1]}}
    rows = run_sweep(sweep, tmp_path / "runs", workers=1, progress=False)
    first = tmp_path / "runs" / rows[0]["id"]
    final = io.read_json(first / "run.json")["metrics"]["hessian.lambda_max"]
    at_init = run_metric(first, "hessian", {"point": "init", "figures": False})["hessian.lambda_max"]
    assert at_init != pytest.approx(final)
    runs = load_runs(tmp_path / "runs")
    chosen = default_variants(tmp_path / "runs", runs)
    assert {c["hessian"].name for c in chosen.values()} == {"hessian_dense"}
    (row,) = [r for r in runs if r["id"] == rows[0]["id"]]
    assert row["hessian.lambda_max"] == final and row["hessian.point"] == "final"
    # the report's figures read the same variant's files
    view = SweepView(tmp_path / "runs", tuple(runs), (), None, None, chosen)
    density = view.result_loader("hessian", "_density", SpectralDensity)(row)
    expected = io.load_result(SpectralDensity, first / "results" / "hessian_dense_density")
    np.testing.assert_array_equal(density.density, expected.density)
    assert len(view.rows_with_result("hessian", "_density")) == 2
    files = write_report(tmp_path / "runs", pdf=False)
    with files.runs_csv.open() as handle:
        table = {r["id"]: r for r in csv.DictReader(handle)}
    assert float(table[rows[0]["id"]]["hessian.lambda_max"]) == final
    assert "spectral_densities.png" in {p.name for p in files.figures}
