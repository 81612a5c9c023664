"""The ``qlandscape`` command: ``run`` (with the metrics a config asks for), ``circuits``, and the package face."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from qlandscape import cli
from qlandscape.core import io
from qlandscape.runs.config import RunConfig
from qlandscape.runs.run import load_run

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(
    classes=[0, 1], max_train=40, max_test=20, qubits=2, layers=1, patch_size=4, stride=4, epochs=1, batch_size=10
)


def test_cli_run_and_circuits(tmp_path, capsys):
    args = ["run", "--out", str(tmp_path), "--quiet"] + [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out
    assert cli.main(["circuits", "--qubits", "3"]) == 0
    assert "strongly_entangling" in capsys.readouterr().out
    assert cli.main(["run", "--out", str(tmp_path), "--qubits", "0"]) == 2
    assert "qubits" in capsys.readouterr().err


def test_cli_run_prints_the_headline_of_each_metric(tmp_path, capsys):
    args = ["run", "--out", str(tmp_path), "--quiet", "--set", "metrics={hessian={figures=false,density=false}}"]
    args += [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    path = Path(out.split("run directory: ")[1].splitlines()[0])
    m = io.read_json(path / "run.json")["metrics"]
    line = next(s for s in out.splitlines() if s.startswith("hessian: "))
    assert f"λ_max {m['hessian.lambda_max']:.5g}" in line and f"tr H {m['hessian.trace']:.5g}" in line


def test_import_qlandscape_stays_cheap():
    heavy = "('torch', 'matplotlib', 'qlandscape.runs')"
    code = f"import sys, qlandscape; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert done.stdout.strip() == "[]"


def test_a_config_without_classes_trains_every_class_and_says_so(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.arange(36) % 3
    np.savez(tmp_path / "three.npz", x=rng.random((36, 4, 4)), y=labels)
    config = tmp_path / "three.toml"
    config.write_text(f'dataset = "{tmp_path / "three.npz"}"\nqubits = 4\nlayers = 1\npatch_size = 2\nepochs = 1\n')
    assert RunConfig.from_dict({}).classes is None and RunConfig().classes == (0, 1)
    assert cli.main(["run", str(config), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "data: three, all 3 classes (0, 1, 2): the config lists no classes" in out
    run = load_run(Path(out.split("run directory: ")[1].splitlines()[0]))
    assert run.config.classes is None and run.dataset.classes == tuple(np.unique(labels))
    assert run.model(torch.as_tensor(run.dataset.x_test[:2])).shape == (2, 3)  # three logits: a 3-class model
    assert io.read_json(run.path / "run.json")["config"]["classes"] is None
