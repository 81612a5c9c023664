"""``qlandscape show RUN_DIR``: what a run directory holds, for runs of today (several landscape variants) and of
qlandscape 0.1, and for folders that hold no run."""

from __future__ import annotations

import shutil
from pathlib import Path

from qlandscape import cli
from qlandscape.core import io
from qlandscape.runs.config import RunConfig
from qlandscape.runs.run import execute_run, run_metric

TINY = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=1, batch_size=10
)
RUN_0_1 = Path(__file__).parents[1] / "runs" / "data" / "v0_1_run" / "0307e95d34d7"


def _show(path: Path, capsys) -> str:
    assert cli.main(["show", str(path)]) == 0
    return capsys.readouterr().out


def test_show_lists_every_landscape_variant_with_its_settings_numbers_and_files(tmp_path, capsys):
    path = execute_run(RunConfig.from_dict(TINY), tmp_path)
    run_metric(path, "landscape", {"grid": 3})
    run_metric(path, "landscape", {"directions": "pca", "grid": 3, "figures": False})
    before = (path / "run.json").read_bytes()
    out = _show(path, capsys)
    assert (path / "run.json").read_bytes() == before  # read only
    info = io.read_json(path / "run.json")
    assert "status: complete" in out and f"id: {info['id']}" in out
    assert f"model: qnn ({info['model']['n_params']} parameters; ansatz hea, qubits 2, layers 1" in out
    assert "landscape: 2 results" in out
    assert "    landscape_random_none, computed " in out
    assert "    landscape_pca, computed " in out and "[latest: run.json shows its numbers]" in out
    assert "settings: directions = pca, grid = 3 (default: normalization = auto" in out
    random = info["manifest"]["landscape"]["variants"]["landscape_random_none"]["scalars"]
    assert f"loss at the centre of the slice: {random['landscape.center_loss']:.6g}" in out
    assert "files: figures/landscape_random_none_contour.{pdf,png}" in out and "results/landscape_pca.{json,npz}" in out


def test_show_reads_a_run_written_by_0_1(tmp_path, capsys):
    path = Path(shutil.copytree(RUN_0_1, tmp_path / RUN_0_1.name))
    out = _show(path, capsys)
    assert "written by qlandscape 0.1.0, run-directory schema 1" in out and "data: digits, classes [0, 1]" in out
    assert "hessian: 1 result" in out and "settings: density = False" in out
    assert "λ_max (top Hessian eigenvalue): 0.886071" in out
    assert "epoch of the point: 2" in out  # 0.1 recorded it as hessian.time
    assert "files: results/hessian_spectrum.{json,npz}, results/hessian_summary.{json,npz}" in out
    assert "landscape" not in out.split("metrics:")[1]


def test_show_of_a_folder_without_a_run_fails_with_one_message(tmp_path, capsys):
    assert cli.main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "run.json" in err and "Traceback" not in err


def test_show_names_what_is_wrong_with_a_damaged_run(tmp_path, capsys):
    path = Path(shutil.copytree(RUN_0_1, tmp_path / RUN_0_1.name))
    (path / "arrays.npz").write_bytes(b"not a zip")
    out = _show(path, capsys)
    assert "status: damaged: " in out and "arrays.npz" in out


def test_show_writes_a_table_setting_as_a_config_would():
    from qlandscape.cli.show import _value

    attack = {"attack": "pgd", "eps": 0.1, "steps": 10, "alpha": 0.025}
    assert _value(attack) == "{attack = pgd, eps = 0.1, steps = 10, alpha = 0.025}"
    assert _value(None) == "n/a"
