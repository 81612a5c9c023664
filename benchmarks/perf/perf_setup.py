"""Shared set-up of the performance suite: one thread, the suite's models and data, and the timer.

Imported first by every script here: it pins the BLAS/OpenMP threads before torch loads. The grid of configs
(``BASE``, ``AXES``) and the backends compared (``BACKENDS``) are described in ``run_perf.py``.
"""

from __future__ import annotations

import os

THREADS = 1
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(THREADS)
warnings.filterwarnings("ignore")

from qlandscape.data.datasets import load_dataset, to_torch  # noqa: E402
from qlandscape.models.qnn import PatchQNN  # noqa: E402

BACKENDS = {  # label -> (device, mode, diff_method)
    "engine": ("torch", "broadcast", "best"),
    "dq-broadcast": ("default.qubit", "broadcast", "best"),
    "dq-loop": ("default.qubit", "loop", "best"),
    "lightning-adjoint": ("lightning.qubit", "broadcast", "adjoint"),
    "engine-cuda": ("torch", "broadcast", "best"),  # only where torch sees a GPU (ratios: CPU engine / this)
}
BASE = dict(qubits=4, patches=4, layers=2, batch=64)
AXES = dict(qubits=(4, 6, 8, 10, 12), patches=(1, 4, 9, 16), layers=(1, 4, 16), batch=(64, 512))
PATCH_ARGS = {
    1: dict(patch_size=8),
    4: dict(patch_size=4, stride=4),
    9: dict(patch_size=4, stride=2),
    16: dict(patch_size=2, stride=2),
    25: dict(patch_size=4, stride=1),
}


# --------------------------------------------------------------------------------------------- timing
MIN_SECONDS = 1.0  # fast calls repeat for at least this long (up to MAX_REPS): a min over 5 runs of a 1 ms call
MAX_REPS = 200  # is at the mercy of one noisy neighbour


def timed(fn, *, reps: int = 5, budget: float = 3.0, max_seconds: float = 60.0, estimate: float | None = None):
    """Median/min seconds of ``fn()`` after one warm-up: at least ``reps`` runs (3 when they exceed ``budget``)
    and at least MIN_SECONDS of them (at most MAX_REPS); skipped when the estimate or the warm-up is too long."""
    if estimate is not None and estimate > max_seconds:
        return {
            "status": f"skipped (est. {estimate:.0f} s > {max_seconds:.0f} s)",
            "median": None,
            "min": None,
            "estimate": estimate,
        }
    t0 = time.perf_counter()
    out = fn()  # warm-up (QNode construction, caches): not counted unless it is all we can afford
    first = time.perf_counter() - t0
    times = [first]
    if first < max_seconds / 3:
        times = []
        while (
            not times
            or (len(times) < reps and (sum(times) < budget or len(times) < 3))
            or (sum(times) < MIN_SECONDS and len(times) < MAX_REPS)
        ):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
    return {
        "status": "ok",
        "median": statistics.median(times),
        "min": min(times),
        "reps": len(times),
        "value": out if isinstance(out, (int, float)) else None,
    }


def copy_bandwidth() -> float:
    """Bytes per second of a large tensor copy (read + write counted), best of 5."""
    src = torch.ones(32 * 2**20, dtype=torch.float64)  # 256 MiB
    dst = torch.empty_like(src)
    best = min(once(lambda: dst.copy_(src)) for _ in range(5))
    return 2 * src.numel() * 8 / best


def once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------- models
def make_model(qubits: int, patches: int, layers: int, backend: str = "engine") -> PatchQNN:
    device, mode, diff = BACKENDS[backend]
    if qubits == 10 and patches != 4:
        raise ValueError("10 qubits are built only with 4 patches (8x10 images cut into four 4x5 patches)")
    if qubits == 10:  # 10 features average-pool as 2 x 5: 8x10 images cut into four 4x5 patches
        model = PatchQNN((8, 10), 2, ansatz="hea", n_qubits=10, n_layers=layers, seed=0, patch_size=(4, 5))
    else:
        model = PatchQNN((8, 8), 2, ansatz="hea", n_qubits=qubits, n_layers=layers, seed=0, **PATCH_ARGS[patches])
    if backend == "engine-cuda":
        from qlandscape.sim.backends import make_backend

        model = model.with_backend(make_backend(device, device="cuda"))
    elif backend != "engine":
        from qlandscape.sim.backends import make_backend

        model = model.with_backend(make_backend(device, mode=mode, diff_method=diff))
    return model


def available_backends() -> list[str]:
    """The suite's backends, the CUDA engine only where torch sees a GPU."""
    return [b for b in BACKENDS if b != "engine-cuda" or torch.cuda.is_available()]


def synthetic(batch: int, seed: int = 0, qubits: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    width = 10 if qubits == 10 else 8
    return torch.rand(batch, 8, width, generator=g, dtype=torch.float64) * np.pi, torch.arange(batch) % 2


def digits(classes=(0, 1)) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, _, _ = to_torch(load_dataset("digits", classes=list(classes)))
    return x, y


def loss_fns(model: PatchQNN, x: torch.Tensor, y: torch.Tensor):
    def forward() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(model(x), y))

    def forward_backward() -> float:
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return float(loss)

    return forward, forward_backward


def work(qubits: int, patches: int, layers: int, batch: int) -> float:
    """Relative cost of one forward pass: circuits x amplitudes x depth."""
    return batch * patches * 2**qubits * (layers + 1) * qubits


def n_gates(model: PatchQNN) -> int:
    return len(model.circuit.gates)
