"""What the hessian metric shows: the G + R split printed (λ_max of H, G and R, the outliers) and drawn, the top-k
eigenvalues drawn, densities captioned by how they were computed, and the epoch of the point (``hessian.epoch``; the
``hessian.time`` of earlier run directories read as the same)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from qlandscape import cli
from qlandscape.core import io
from qlandscape.runs.config import RunConfig
from qlandscape.runs.metric_specs.hessian import epoch_of
from qlandscape.runs.run import execute_run, load_run, run_metric

TINY = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=2, batch_size=10
)
RUN_0_1 = Path(__file__).parent / "data" / "v0_1_run" / "0307e95d34d7"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return execute_run(RunConfig.from_dict(TINY), tmp_path_factory.mktemp("runs"))


def _printed(out: str, label: str) -> float:
    (line,) = [line for line in out.splitlines() if line.strip().startswith(label)]
    return float(line.split()[-1])


def _gauss_newton(run) -> np.ndarray:
    """G = mean over samples of Jᵀ (diag p − p pᵀ) J for the softmax cross-entropy, J = ∂logits/∂θ: independent of
    the structured assembly."""
    obj = run.objective("train")
    theta = obj.theta0
    jac = obj.jacobian(theta).numpy()  # (B, C, P)
    probs = torch.softmax(obj.outputs(theta), dim=1).detach().numpy()
    hess = np.stack([np.diag(p) - np.outer(p, p) for p in probs])
    return np.einsum("bcp,bcd,bdq->pq", jac, hess, jac) / jac.shape[0]


def test_structure_prints_lambda_max_of_h_g_r_and_draws_their_spectra(run_dir, capsys):
    assert cli.main(["hessian", str(run_dir), "--structure", "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    run = load_run(run_dir)
    h = run.objective("train").hessian().detach().numpy()
    g = _gauss_newton(run)
    assert _printed(out, "λ_max of H") == pytest.approx(np.linalg.eigvalsh(h)[-1], rel=1e-5)
    assert _printed(out, "λ_max of G") == pytest.approx(np.linalg.eigvalsh(g)[-1], rel=1e-5)
    assert _printed(out, "λ_max of R") == pytest.approx(np.linalg.eigvalsh(h - g)[-1], rel=1e-5)
    assert (
        _printed(out, "outlier eigenvalues")
        == io.read_json(run_dir / "run.json")["metrics"]["hessian.structure.n_outliers"]
    )
    figures = {p.name for p in (run_dir / "figures").glob("*.png")}
    variant = "hessian_dense_structure"  # the variant's files start with its name
    assert {f"{variant}_structure.png", f"{variant}_top_k.png", f"{variant}_spectrum.png"} <= figures


def test_lanczos_top_k_is_drawn_and_its_density_is_recorded_as_slq(run_dir, tmp_path):
    path = Path(shutil.copytree(run_dir, tmp_path / run_dir.name))
    run_metric(path, "hessian", {"method": "lanczos", "top_k": 2, "n_probes": 4, "summary": False})
    figures = {p.name for p in (path / "figures").glob("*.png")}
    assert "hessian_lanczos_top_k.png" in figures and "hessian_lanczos_spectrum.png" not in figures
    density = io.read_json(path / "results" / "hessian_lanczos_density.json")
    assert density["probe"] == "rademacher"  # SLQ: the figure title reads the method from this record


def test_the_epoch_of_the_point_is_recorded_and_the_old_key_still_read(run_dir, capsys):
    scalars = run_metric(run_dir, "hessian", {"point": "init", "figures": False})
    assert scalars["hessian.epoch"] == 0.0 and "hessian.time" not in scalars
    best = run_metric(run_dir, "hessian", {"point": "final", "figures": False})
    assert best["hessian.epoch"] == float(load_run(run_dir).result.epochs[-1])
    old = io.read_json(RUN_0_1 / "run.json")["metrics"]
    assert "hessian.epoch" not in old and epoch_of(old) == old["hessian.time"] == 2.0
    assert epoch_of({"hessian.epoch": 1.5, "hessian.time": 9.0}) == 1.5 and epoch_of({}) is None
