"""Bad input, unusable output folders and absurd sizes through the real ``qlandscape`` entry point: each gives one
message naming the value, exit code 2 and no traceback, before any work; an unexpected error says it is a bug, where
to report it and how to see the traceback (exit 1)."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from qlandscape import cli
from qlandscape.cli import gradvar
from qlandscape.core import io
from qlandscape.metrics.landscape import slices
from qlandscape.runs.config import RunConfig
from qlandscape.runs.run import execute_run

TINY = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=1, batch_size=10
)


def _toml(values: dict) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A run config, a sweep config, a folder with one finished run, and a 3-class .npz."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "tiny.toml").write_text(_toml(TINY))
    (root / "sweep.toml").write_text("[base]\n" + _toml(TINY) + "[grid]\nseed = [0, 1]\n")
    runs = root / "runs"
    execute_run(RunConfig.from_dict(TINY), runs)
    rng = np.random.default_rng(0)
    np.savez(root / "three.npz", x=rng.random((30, 4, 4)), y=np.arange(30) % 3)
    return root


def _fails_cleanly(args: list[str], capsys, *named: str) -> str:
    """Run the command; assert exit 2 with one message line that names each of ``named``; return the message."""
    code = cli.main(args)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, captured
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"qlandscape {args[0]}: error: ")
    for text in named:
        assert text in err, (text, err)
    return err


def _command(name: str, files: Path, out: Path) -> list[str]:
    return {
        "run": ["run", str(files / "tiny.toml"), "--quiet"],
        "sweep": ["sweep", str(files / "sweep.toml"), "--workers", "1", "--quiet"],
        "report": ["report", str(files / "runs"), "--no-pdf"],
        "gradvar": ["gradvar", "--qubits", "2", "--layers", "1", "--samples", "4", "--quiet"],
        "spawn": ["spawn", str(files / "tiny.toml"), "--spawn-epochs", "0,1", "--quiet"],
    }[name] + ["--out", str(out)]


COMMANDS = ("run", "sweep", "report", "gradvar", "spawn")


# ------------------------------------------------------------------------------------------- config files
def test_a_config_that_is_not_utf8(files, tmp_path, capsys):
    path = tmp_path / "latin1.toml"
    path.write_bytes("qubits = 3\n# café\n".encode("latin-1"))
    _fails_cleanly(["run", str(path), "--out", str(tmp_path / "o")], capsys, str(path), "UTF-8", "line 2")


def test_run_that_is_not_a_table(tmp_path, capsys):
    path = tmp_path / "run3.toml"
    path.write_text("run = 3\n")
    _fails_cleanly(["run", str(path), "--out", str(tmp_path / "o")], capsys, "run = 3", "[run] table")


def test_top_level_keys_beside_a_run_table_are_named(tmp_path, capsys):
    path = tmp_path / "mixed.toml"
    path.write_text("epochs = 3\n[run]\nqubits = 2\n[metrics.hessian]\ntop_k = 2\n")
    _fails_cleanly(["run", str(path), "--out", str(tmp_path / "o")], capsys, "'epochs', 'metrics'", "[run]")


def test_a_truncated_npz_dataset(files, tmp_path, capsys):
    data = (files / "three.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    config = tmp_path / "cut.toml"
    config.write_text(_toml({**TINY, "dataset": str(tmp_path / "cut.npz"), "classes": [0, 1]}))
    _fails_cleanly(["run", str(config), "--out", str(tmp_path / "o")], capsys, "cut.npz", "truncated")


# ------------------------------------------------------------------------------------------- --out folders
@pytest.mark.parametrize("command", COMMANDS)
def test_out_that_is_a_file(command, files, tmp_path, capsys):
    out = tmp_path / "a-file"
    out.write_text("not a folder")
    _fails_cleanly(_command(command, files, out), capsys, f"--out = '{out}'", "is a file")
    assert out.read_text() == "not a folder"


@pytest.mark.parametrize("command", COMMANDS)
def test_out_that_is_read_only(command, files, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: refuse file creation there as a read-only mount would
        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if dir is not None and Path(dir).resolve().is_relative_to(locked):
                raise OSError(errno.EROFS, "Read-only file system", str(dir))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    else:
        locked.chmod(0o555)
    out = locked / "results"
    try:
        _fails_cleanly(_command(command, files, out), capsys, f"--out = '{out}'", "not writable")
    finally:
        locked.chmod(0o755)
    assert not out.exists()  # refused before anything was made


@pytest.mark.parametrize("command", COMMANDS)
def test_out_on_a_full_disk(command, files, tmp_path, capsys, monkeypatch):
    def full(fd, data):
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io, "_write_synced", full)
    out = tmp_path / "results"
    _fails_cleanly(_command(command, files, out), capsys, f"--out = '{out}'", "is full")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".qlandscape")]


def test_a_disk_that_fills_during_a_run(files, tmp_path, capsys, monkeypatch):
    calls = []
    real = io._write_synced

    def fills_up(fd, data):
        calls.append(len(data))
        if len(calls) == 1:  # the folder check passes
            return real(fd, data)
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io, "_write_synced", fills_up)
    _fails_cleanly(_command("run", files, tmp_path / "o"), capsys, "No space left on device", "run.json")
    assert not [p for p in (tmp_path / "o").rglob(".*.tmp")]  # the temporary files are removed


# ------------------------------------------------------------------------------------------- sizes
def test_forty_qubits_in_a_run_config(files, tmp_path, capsys):
    config = tmp_path / "q40.toml"
    config.write_text(_toml({**TINY, "qubits": 40, "patch_size": 8, "patches": 1}))
    _fails_cleanly(["run", str(config), "--out", str(tmp_path / "o")], capsys, "qubits = 40", "TiB", "budget")


def test_gradvar_forty_qubits(tmp_path, capsys):
    args = ["gradvar", "--qubits", "40", "--layers", "1", "--samples", "4", "--out", str(tmp_path / "g")]
    _fails_cleanly(args, capsys, "qubits = 40", "16.0 TiB", "budget")
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("layers", [10**6, 100_000])
def test_huge_layer_counts_in_a_run_config(layers, tmp_path, capsys):
    config = tmp_path / "deep.toml"
    config.write_text(_toml({**TINY, "layers": layers}))
    _fails_cleanly(["run", str(config), "--out", str(tmp_path / "o")], capsys, f"layers = {layers}", "gates")


def test_gradvar_a_million_layers(tmp_path, capsys):
    args = ["gradvar", "--qubits", "2", "--layers", "1000000", "--out", str(tmp_path / "g")]
    _fails_cleanly(args, capsys, "layers = 1000000", "5,000,002 gates", "layers <= ")


def test_landscape_grid_of_100000_fails_before_training(tmp_path, capsys):
    config = tmp_path / "grid.toml"
    config.write_text(_toml(TINY) + "[metrics.landscape]\ngrid = 100000\n")
    err = _fails_cleanly(["run", str(config), "--out", str(tmp_path / "o")], capsys, "grid = 100000", "GiB")
    assert "10,000,000,000 points" in err
    (run_dir,) = (tmp_path / "o").iterdir()
    assert not (run_dir / "arrays.npz").exists()  # no training happened
    assert io.read_json(run_dir / "run.json")["status"] == "failed"


def test_landscape_command_grid_of_100000(files, capsys):
    run_dir = next((files / "runs").iterdir())
    _fails_cleanly(["landscape", str(run_dir), "--grid", "100000"], capsys, "grid = 100000", "GiB")


def test_landscape_grid_of_3000_announces_its_time_and_shows_progress(files, capsys, caplog, monkeypatch):
    """A long grid proceeds: its time, measured on the first batch, is logged, the progress shown, and Ctrl-C
    stops it with nothing of it written."""
    run_dir = next((files / "runs").iterdir())
    before = io.read_json(run_dir / "run.json")["metrics"]
    monkeypatch.setattr(slices, "LONG_SECONDS", 1.0)  # 9 million points take longer than that on any machine
    seen = []
    real = slices.evaluate_points

    def evaluate(objectives, make_points, n_points, batch, progress, desc):
        seen.append((n_points, progress))
        if len(seen) == 2:  # the rest of the grid, after the estimate: the user presses Ctrl-C
            raise KeyboardInterrupt
        return real(objectives, make_points, n_points, batch, progress, desc)

    monkeypatch.setattr(slices, "evaluate_points", evaluate)
    with caplog.at_level("WARNING"):
        code = cli.main(["landscape", str(run_dir), "--grid", "3000", "--no-figures"])
    captured = capsys.readouterr()
    assert code == 130 and "Traceback" not in captured.err
    (first, _), (rest, progress) = seen
    assert first + rest == 9_000_000 and progress
    assert any("9,000,000 points" in r.getMessage() and "to go" in r.getMessage() for r in caplog.records)
    assert io.read_json(run_dir / "run.json")["metrics"] == before


# ------------------------------------------------------------------------------------------- the boundary
def test_an_unexpected_error_says_it_is_a_bug_and_where_to_report_it(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(gradvar, "variance_curve", broken)
    args = ["gradvar", "--qubits", "2", "--layers", "1", "--out", str(tmp_path / "g")]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "unexpected error: RuntimeError: boom" in err and "-v" in err and "Traceback" not in err
    report = Path(err.split("the details are in ")[1].split(":")[0])
    text = report.read_text()
    assert "RuntimeError: boom" in text and "Traceback" in text and "qlandscape gradvar" in text
    report.unlink()
    assert cli.main(["-v", *args]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "boom" in err
    Path(err.split("the details are in ")[1].split(":")[0]).unlink()


def test_memory_running_out_is_an_expected_failure(tmp_path, capsys, monkeypatch):
    def short_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 8.00 TiB")

    monkeypatch.setattr(gradvar, "variance_curve", short_of_memory)
    args = ["gradvar", "--qubits", "2", "--layers", "1", "--out", str(tmp_path / "g")]
    _fails_cleanly(args, capsys, "out of memory", "8.00 TiB", "QLANDSCAPE_MEMORY_BUDGET")
