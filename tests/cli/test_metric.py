"""The metric subcommands (``qlandscape hessian|landscape|ntk RUN_DIR``), built from the registered metrics' settings:
their options, their defaults and their numbers against independent computations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from qlandscape import cli
from qlandscape.core import io
from qlandscape.runs import registry
from qlandscape.runs.config import RunConfig
from qlandscape.runs.metric_spec import SETTING
from qlandscape.runs.run import execute_run, load_run

TINY = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=2, batch_size=10
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return execute_run(RunConfig.from_dict(TINY), tmp_path_factory.mktemp("runs"))


def test_every_setting_is_an_option_with_the_spec_choices(capsys):
    for spec in registry.specs():
        with pytest.raises(SystemExit):
            cli.main([spec.name, "--help"])
        usage = " ".join(capsys.readouterr().out.split())
        for f in dataclasses.fields(spec.settings):
            meta = f.metadata[SETTING]
            option = "--" + f.name.replace("_", "-")
            assert (option in usage) == meta.cli, (spec.name, f.name)
            if meta.choices and meta.cli:
                assert "{" + ",".join(meta.choices) + "}" in usage


def test_hessian_command_matches_a_dense_hessian(run_dir, capsys):
    assert cli.main(["hessian", str(run_dir), "--top-k", "2", "--no-figures"]) == 0
    out = capsys.readouterr().out
    m = io.read_json(run_dir / "run.json")["metrics"]
    obj = load_run(run_dir).objective("train")
    eigenvalues = np.linalg.eigvalsh(obj.hessian().detach().numpy())
    assert m["hessian.lambda_max"] == pytest.approx(eigenvalues[-1], rel=1e-9)
    assert m["hessian.lambda_min"] == pytest.approx(eigenvalues[0], rel=1e-9, abs=1e-12)
    assert m["hessian.trace"] == pytest.approx(eigenvalues.sum(), rel=1e-9)
    assert f"{m['hessian.lambda_max']:.6g}" in out and "λ_max (top Hessian eigenvalue)" in out
    # the command line asks for the density (a config has it on by default)
    assert not (run_dir / "results" / "hessian_dense_density.json").exists()
    assert cli.main(["hessian", str(run_dir), "--density", "--no-figures"]) == 0
    assert (run_dir / "results" / "hessian_dense_density.json").exists()


def test_bad_option_values_exit_with_the_setting_named(run_dir, capsys):
    with pytest.raises(SystemExit) as err:
        cli.main(["hessian", str(run_dir), "--point", "middle"])
    assert err.value.code == 2 and "invalid choice: 'middle'" in capsys.readouterr().err
    assert cli.main(["hessian", str(run_dir), "--top-k", "x"]) == 2
    assert "metrics.hessian.top_k = 'x'" in capsys.readouterr().err
    assert cli.main(["ntk", str(run_dir), "--subset", "1000"]) == 2
    assert (
        "metrics.ntk.subset = 1000 is not allowed; expected at most the 30 training samples" in capsys.readouterr().err
    )


def test_landscape_command_reads_lists_and_ranges(run_dir, capsys):
    args = [
        "landscape",
        str(run_dir),
        "--splits",
        "train,test",
        "--grid",
        "3",
        "--range",
        "[-0.5, 1.0]",
        "--no-figures",
    ]
    assert cli.main(args) == 0
    arrays = io.read_npz(run_dir / "arrays.npz")
    assert arrays["landscape.losses"].shape == (2, 3, 3)
    np.testing.assert_allclose(arrays["landscape.alphas"], [-0.5, 0.25, 1.0])
    # the centre loss is the loss at the final parameters (the slice's centre, here not a point of the grid)
    run = load_run(run_dir)
    centre = io.read_json(run_dir / "run.json")["metrics"]["landscape.center_loss"]
    assert centre == pytest.approx(float(run.objective("train").loss()), rel=1e-12)
    assert "loss at the centre of the slice" in capsys.readouterr().out


def _trace_ntk_by_finite_differences(obj, theta: np.ndarray, x: torch.Tensor, h: float = 1e-5) -> np.ndarray:
    jac = []
    for p in range(theta.size):
        step = np.zeros_like(theta)
        step[p] = h
        plus = obj.outputs(torch.as_tensor(theta + step), x).detach().numpy()
        minus = obj.outputs(torch.as_tensor(theta - step), x).detach().numpy()
        jac.append((plus - minus) / (2 * h))
    jac = np.stack(jac, axis=-1)  # (n, outputs, P)
    return np.einsum("iop,jop->ij", jac, jac)


def test_ntk_command_matches_kernels_by_finite_differences(run_dir, capsys):
    assert cli.main(["ntk", str(run_dir), "--subset", "6", "--no-figures"]) == 0
    m = io.read_json(run_dir / "run.json")["metrics"]
    run = load_run(run_dir)
    obj, x = run.objective("train"), run.objective("train").x[:6]
    k0 = _trace_ntk_by_finite_differences(obj, run.result.trajectory[0], x)
    k1 = _trace_ntk_by_finite_differences(obj, run.result.trajectory[-1], x)
    distance = 1 - np.sum(k0 * k1) / (np.linalg.norm(k0) * np.linalg.norm(k1))
    assert m["ntk.final_distance_from_init"] == pytest.approx(distance, rel=1e-5, abs=1e-10)
    assert 0.0 <= m["ntk.kernel_accuracy_final"] <= 1.0
    assert "kernel distance from initialisation at the end" in capsys.readouterr().out
