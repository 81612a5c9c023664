"""Large Hessians within a small memory budget, measured by the resident size of a fresh process: the digits CNN's
dense Hessian over all 1,347 training images (about 58 GB in one piece) and the structured Hessian of a 25-patch,
L = 4 patch QNN (3,264 parameters) over 576 images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from qlandscape.core.memory import parse_size
from qlandscape.core.objective import Objective
from qlandscape.data.datasets import load_dataset
from qlandscape.metrics.curvature.structured import structured_hessian
from qlandscape.models.config import ModelConfig, build_model

case, budget = sys.argv[1], sys.argv[2]
data = load_dataset("digits", angle_range=(0.0, 0.7853981633974483))
if case == "cnn":
    config, n = ModelConfig(model="cnn"), None
else:
    config = ModelConfig(model="qnn", ansatz="benchmarks/kawase/kawase_digits.toml", qubits=4, layers=4,
                         patch_size=4, stride=1, positional_bias=True, output_scale=100.0)
    n = 576
x, y = torch.as_tensor(data.x_train[:n]), torch.as_tensor(data.y_train[:n])
obj = Objective(build_model(config, data.image_shape, data.n_classes, seed=0), x, y, memory_budget=budget)


def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


# one small derivative first, so that one-time costs (code pages, thread pools) are not counted
Objective(obj.model, x[:2], y[:2]).hvp(None, torch.zeros(obj.n_params, dtype=torch.float64))
before = resident()
start = time.perf_counter()
h = obj.hessian() if case == "cnn" else torch.as_tensor(structured_hessian(obj).hessian)
if case == "cnn":
    plan = obj.chunk_plan("hessian", passes=obj.n_params)
else:
    layout, params = obj.model.patch_layout(), obj.unflatten(obj.theta0)
    tangents = params[layout.circuit].shape[1] + params[layout.position_bias].numel()
    plan = obj.chunk_plan("structured", passes=tangents)
seconds = time.perf_counter() - start
# this process's own high-water mark: ru_maxrss of a forked-and-exec'd child starts at its parent's resident size
# at the fork (Linux keeps it across exec), so under a large pytest process it would report the parent's size
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"growth": peak - before, "budget": parse_size(budget), "seconds": seconds, "n_params": obj.n_params,
                  "samples": int(x.shape[0]), "symmetric": bool(torch.equal(h, h.T)),
                  "finite": bool(torch.isfinite(h).all()), "chunk": plan.samples,
                  "directions": plan.directions, "estimate": plan.estimate}))
"""


def _measure(case: str, budget: str) -> dict:
    # A clean environment, not this process's: a Dask nanny started by an earlier test writes its pre-spawn settings
    # (MALLOC_TRIM_THRESHOLD_, ...) into os.environ, and the allocator's settings change the resident size measured.
    keep = ("PATH", "HOME", "TMPDIR", "LANG")
    env = {k: os.environ[k] for k in keep if k in os.environ} | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, case, budget], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_digits_cnn_dense_hessian_within_one_gib():
    found = _measure("cnn", "1G")
    assert (found["n_params"], found["samples"]) == (1898, 1347)
    assert found["finite"] and found["symmetric"]
    assert found["growth"] <= found["budget"], found


@pytest.mark.slow
def test_25_patch_structured_hessian_within_six_gib():
    found = _measure("qnn", "6G")
    assert (found["n_params"], found["samples"]) == (3264, 576)
    assert found["finite"] and found["symmetric"]
    assert found["growth"] <= found["budget"], found
