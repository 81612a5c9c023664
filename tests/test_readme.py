"""The README works as written: its code blocks run, its outputs are what the commands print, its configuration
reference is the settings classes' and its outputs reference names every file and key a run writes.

Each fenced block says what the test does with it through an HTML comment on the line before the fence:

* ``python``: run in a fresh interpreter in an empty folder, unless ``<!-- not run: REASON -->``;
* ``bash``: ``<!-- run -->`` (run by the default suite), ``<!-- run: slow -->`` (run by the slow test: the demo
  and the analyses of its run directory) or ``<!-- not run: REASON -->``; a shell block without one fails the
  test. Shell blocks run in order in one folder, ``.venv/bin/`` meaning this interpreter's scripts folder;
* ``toml``: ``<!-- file: NAME -->`` writes it into that folder for the shell blocks after it;
  ``<!-- check: run config -->`` and ``<!-- check: sweep -->`` load it as one;
* a block without a language after ``<!-- output -->`` must be what the shell blocks since the previous output
  block printed: the same text, the same numbers to 5e-3 (times in seconds excepted), ``...`` standing for any
  lines.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from qlandscape.runs.config import RunConfig, load_config
from qlandscape.runs.run import execute_run
from qlandscape.runs.sweep import load_sweep

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
# the variant names the outputs reference describes (the config in the outputs test computes these)
VARIANT_NAMES = {
    "hessian": r"hessian_(dense|lanczos)(_init|_best)?(_test)?(_structure)?(_trajectory)?(_seed\d+)?",
    "ntk": r"ntk_[a-z]+_subset\d+(_every\d+)?",
}
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w*)\s*$")
NOTE = re.compile(r"^<!--\s*(.*?)\s*-->$")
# a number standing alone: not part of a run id (32b0893bfca5), a name or a path
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")


@dataclasses.dataclass(frozen=True)
class Block:
    lang: str
    text: str
    note: str  # the HTML comment on the line before the fence ("" without one)
    line: int  # the fence's line number in the README

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the comment before it."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        start = i
        i += 1
        while not lines[i].startswith("```"):
            i += 1
        note = NOTE.match(lines[start - 1]) if start else None
        blocks.append(Block(fence.group(1), "\n".join(lines[start + 1 : i]), note.group(1) if note else "", start + 1))
        i += 1
    return blocks


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))


def _env() -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _is_run(block: Block, slow: bool) -> bool:
    return block.lang == "bash" and (block.note == "run" or (slow and block.note == "run: slow"))


def run_shell_blocks(folder: Path, *, slow: bool) -> list[str]:
    """Run the shell blocks in order in ``folder`` (writing the ``file:`` blocks as they come) and compare each
    output block whose commands ran; one problem line per difference."""
    problems, printed, producers = [], [], []
    for block in BLOCKS:
        if block.lang == "toml" and block.note.startswith("file:"):
            (folder / block.note.removeprefix("file:").strip()).write_text(block.text + "\n")
        elif block.lang == "bash" and block.note.startswith("run"):
            producers.append(block)
            if _is_run(block, slow):
                script = block.text.replace(".venv/bin/", f"{BIN}/")
                out = subprocess.run(
                    ["bash", "-e", "-c", script], cwd=folder, env=_env(), capture_output=True, text=True, timeout=600
                )
                assert out.returncode == 0, f"{block.name} failed ({out.returncode}):\n{out.stderr[-3000:]}"
                printed.append(out.stdout)
        elif block.lang == "" and block.note == "output":
            if producers and all(_is_run(p, slow) for p in producers):
                problems += compare_output(block.text, "".join(printed), block.name)
            printed, producers = [], []
    return problems


def compare_output(expected: str, actual: str, where: str) -> list[str]:
    """Differences between an output block and what was printed (see the module docstring)."""
    want = [line.rstrip() for line in expected.strip("\n").splitlines()]
    got = [line.rstrip() for line in actual.strip("\n").splitlines()]
    problems, j = [], 0
    for i, line in enumerate(want):
        if line.strip() == "...":
            following = want[i + 1] if i + 1 < len(want) else None
            while j < len(got) and (following is None or _shape(got[j]) != _shape(following)):
                j += 1
            continue
        if j >= len(got):
            return problems + [f"{where}: missing line {line!r}"]
        if _shape(line) != _shape(got[j]):
            return problems + [f"{where}: expected {line!r}, printed {got[j]!r}"]
        for a, b, seconds in _numbers(line, got[j]):
            if not seconds and not math.isclose(a, b, rel_tol=5e-3, abs_tol=1e-9):
                problems.append(f"{where}: {a:g} in {line!r}, printed {b:g}")
        j += 1
    if j < len(got):
        problems.append(f"{where}: printed more lines than shown, from {got[j]!r}")
    return problems


def _shape(line: str) -> list[str]:
    return NUMBER.split(" ".join(line.split()))


def _numbers(expected: str, actual: str) -> list[tuple[float, float, bool]]:
    pairs = zip(NUMBER.finditer(expected), NUMBER.finditer(actual), strict=True)
    return [(float(a.group()), float(b.group()), expected[a.end() :].startswith(" s")) for a, b in pairs]


# ---------------------------------------------------------------------------------------------------- the blocks


def test_every_block_says_what_the_test_does_with_it():
    unmarked = [b.name for b in BLOCKS if b.lang == "bash" and not re.fullmatch(r"run|run: slow|not run: .+", b.note)]
    assert unmarked == [], "shell blocks need <!-- run -->, <!-- run: slow --> or <!-- not run: REASON -->"
    skipped_python = [b.name for b in BLOCKS if b.lang == "python" and b.note and not b.note.startswith("not run: ")]
    assert [b for b in skipped_python if b not in {x.name for x in BLOCKS if x.note == "run"}] == []
    assert {b.lang for b in BLOCKS} <= {"", "python", "bash", "toml"}
    assert sum(b.note == "output" for b in BLOCKS) >= 5


PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python" and not b.note.startswith("not run")]


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.name for b in PYTHON_BLOCKS])
def test_the_python_blocks_run(block, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", block.text], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"{block.name} failed:\n{out.stderr[-3000:]}"


def test_the_quick_shell_blocks_run_and_print_what_the_readme_shows(tmp_path):
    assert run_shell_blocks(tmp_path, slow=False) == []


@pytest.mark.slow
def test_the_demo_and_its_analyses_run_and_print_what_the_readme_shows(tmp_path):
    assert run_shell_blocks(tmp_path, slow=True) == []


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.note.startswith("check:")], ids=lambda b: f"{b.name} ({b.note})"
)
def test_the_config_examples_load(block, tmp_path):
    path = tmp_path / "example.toml"
    path.write_text(block.text + "\n")
    kind = block.note.removeprefix("check:").strip()
    if kind == "run config":
        assert isinstance(load_config(path), RunConfig)
    else:
        assert kind == "sweep"
        sweep = load_sweep(path)
        if "zip" in block.text:  # the [zip] example says what it gives: 3 zipped positions x 2 seeds
            assert [(p["layers"], p["lr"], p["seed"]) for p in sweep.points] == [
                (layers, lr, seed) for seed in (0, 1) for layers, lr in ((1, 0.1), (2, 0.05), (4, 0.02))
            ]


def test_the_output_comparison_finds_differences():
    assert compare_output("a: 1.5 b\ntime: 0.1 s", "a: 1.501 b\ntime: 9.0 s\n", "x") == []
    assert compare_output("x 1\n  ...\nlast 3", "x 1\nmiddle 2\nmore 2\nlast 3", "x") == []
    assert compare_output("run id 32b0893bfca5", "run id 32b0893bfca6", "x") != []
    (bad,) = compare_output("a: 1.5", "a: 1.6", "x")
    assert "1.5" in bad
    assert compare_output("a\nb", "a", "x") == ["x: missing line 'b'"]


# ---------------------------------------------------------------------------------------- generated references


def _config_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "docs" / "config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_configuration_reference_is_the_generated_one():
    reference = _config_reference()
    readme = README.read_text(encoding="utf-8")
    assert reference.readme_section(readme) == reference.reference(), (
        "the README's configuration reference is stale: run python docs/config_reference.py --write"
    )


def test_the_configuration_reference_has_every_setting_once():
    reference = _config_reference()
    text = reference.reference()
    for _, cls in reference.PARTS:
        for field in dataclasses.fields(cls):
            assert text.count(f"| `{field.name}` |") >= 1, field.name
    assert set(reference.MEANINGS) == {f.name for _, cls in reference.PARTS for f in dataclasses.fields(cls)}
    assert reference.format_value((0.0, 1.5)) == "[0.0, 1.5]" and reference.format_value(None) == "unset"


def _outputs_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## What a run directory holds")
    return text[start : text.index("\n## ", start + 1)]


def test_the_outputs_reference_names_every_file_and_key_a_run_writes(tmp_path):
    config = RunConfig(
        epochs=2,
        max_train=24,
        max_test=12,
        metrics={
            "hessian": {"trajectory": True, "structure": True},
            "landscape": {"directions": "pca", "grid": 4},
            "ntk": {"subset": 8},
        },
    )
    path = execute_run(config, tmp_path)
    info = json.loads((path / "run.json").read_text())
    prose = re.sub(r"^```.*?^```$", "", _outputs_section(), flags=re.M | re.S)  # the fenced blocks out
    documented = set(re.findall(r"`([^`]+)`", prose))
    expected = set(info) | {"run.json", "arrays.npz", "results/", "figures/"}
    for key in ("attempt", "versions", "data", "model", "manifest"):
        entries = info[key] if key != "manifest" else info[key]["hessian"]
        expected |= set(entries)
    expected |= {k for k in info["timings"] if not k.endswith("_seconds") or k in ("train_seconds", "total_seconds")}
    expected |= {k for k in info["metrics"] if "." not in k}  # the training scalars
    arrays = np.load(path / "arrays.npz").files
    expected |= {k for k in arrays if "." not in k}  # the training arrays
    expected |= {".".join(k.split(".")[:2]) + ".*" for k in arrays if k.count(".") == 2}  # NAME.result.*
    stems = {p.stem for p in (path / "results").iterdir()} | {p.stem for p in (path / "figures").iterdir()}
    for name in ("hessian", "ntk"):  # their files are documented as VARIANT_<what>, beside the variants' names
        variant = info["manifest"][name]["variant"]
        assert re.fullmatch(VARIANT_NAMES[name], variant), variant
        stems = {f"VARIANT_{s.removeprefix(variant + '_')}" if s.startswith(variant + "_") else s for s in stems}
    expected |= stems
    assert sorted(expected - documented) == []
    assert {f"{name}_seconds" for name in config.metrics} <= set(info["timings"])  # what NAME_seconds stands for
