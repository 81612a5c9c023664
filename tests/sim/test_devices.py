"""The engine's device option: validation before any work, every engine op on the inputs' device (checked on
torch's "meta" device, so it runs without a GPU), and (on a machine with CUDA) the same numbers on the GPU as on
the CPU. The GPU test is skipped where torch sees no CUDA device."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.models.qnn import PatchQNN
from qlandscape.runs.config import RunConfig
from qlandscape.sim.backends import make_backend, resolve_device
from qlandscape.sim.circuits import build_circuit, catalogue
from qlandscape.sim.engine import simulate, simulate_patch_mean, simulate_state


def _pretend_cuda(monkeypatch, available: bool, count: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if available else 0)


def test_device_names_resolve_or_fail_naming_the_value(monkeypatch):
    _pretend_cuda(monkeypatch, False)
    assert resolve_device("cpu") == "cpu" and resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match=r"device = 'cuda'.*is_available\(\) is False"):
        resolve_device("cuda")
    for bad in ("tpu", "cuda:x", 3):
        with pytest.raises(ConfigError, match="device"):
            resolve_device(bad)
    _pretend_cuda(monkeypatch, True, count=1)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(ConfigError, match="1 CUDA device"):
        resolve_device("cuda:3")
    with pytest.raises(ConfigError, match="runs on the CPU"):
        make_backend("default.qubit", device="cuda")
    assert make_backend("torch", device="cuda").device == "cuda"


def test_run_config_checks_device_syntax_and_keeps_old_ids():
    for bad in ("gpu", "cuda:", 0):
        with pytest.raises(ConfigError, match="device"):
            RunConfig.from_dict({"device": bad})
    with pytest.raises(ConfigError, match="classical models"):
        RunConfig.from_dict({"device": "cuda", "model": "mlp"})
    assert RunConfig(device="auto").run_id() != RunConfig().run_id() == "502ac814add8"


def test_explicit_cpu_device_changes_nothing(tiny_images):
    x, y = tiny_images
    kw = dict(n_qubits=3, n_layers=2, patch_size=3, stride=3, seed=2)
    plain, explicit = PatchQNN((6, 6), 2, **kw), PatchQNN((6, 6), 2, device="cpu", **kw)
    assert explicit.backend.device == "cpu"
    assert torch.equal(plain(x), explicit(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_engine_matches_cpu(tiny_images):
    x, y = tiny_images
    kw = dict(n_qubits=4, n_layers=2, patch_size=3, stride=3, seed=5, positional_bias=True, aggregation="linear")
    cpu, gpu = PatchQNN((6, 6), 2, **kw), PatchQNN((6, 6), 2, device="cuda", **kw)
    assert torch.allclose(cpu(x), gpu(x), atol=1e-12)
    a, b = Objective(cpu, x, y), Objective(gpu, x, y)
    assert torch.allclose(a.grad(), b.grad(), atol=1e-12)
    assert torch.allclose(a.hessian(), b.hessian(), atol=1e-10)
    thetas = a.theta0 + 0.1 * torch.randn(5, a.n_params, dtype=torch.float64)
    assert torch.allclose(a.losses(thetas)[0], b.losses(thetas)[0], atol=1e-12)


class _OffDeviceOps(TorchDispatchMode):
    """Records every op that gets a non-scalar tensor off ``device``, as CUDA would refuse. Moving a constant
    there (``as_tensor(..., device=)``: lift_fresh, _to_copy) is the one allowed crossing."""

    _TRANSFERS = (torch.ops.aten.lift_fresh.default, torch.ops.aten._to_copy.default)

    def __init__(self, device: str) -> None:
        super().__init__()
        self.device, self.found = torch.device(device), []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func not in self._TRANSFERS:
            self.found += [
                (str(func), tuple(t.shape))
                for t in tree_flatten((args, kwargs or {}))[0]
                if isinstance(t, torch.Tensor) and t.device != self.device and t.dim() > 0
            ]
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("ansatz", sorted(catalogue()))
def test_every_engine_op_stays_on_the_inputs_device(ansatz):
    """Run every engine path (layered and block plans, forward and backward, states, grids of points, the
    quadratic patch-mean readout) on torch's shape-only "meta" device: an op that mixed in a CPU tensor would
    fail on CUDA, and is caught here without a GPU."""
    checked = 0
    for n in (2, 4, 6):
        try:
            circuit = build_circuit(ansatz, n, 2)
        except Exception:  # an ansatz that cannot be built at this width is not this test's business
            continue
        for n_samples in (1, 3, 40):
            params = circuit.init_params((2,)).to("meta").requires_grad_(True)
            feats = torch.rand(n_samples, 2, max(1, circuit.n_features), dtype=torch.float64).to("meta")
            points = params.detach()[None].expand(3, -1, -1).contiguous()
            with _OffDeviceOps("meta") as mode:
                simulate(circuit, params, feats).sum().backward()
                simulate_state(circuit, params.detach(), feats)
                simulate(circuit, points, feats[None].expand(3, -1, -1, -1))
                with torch.no_grad():
                    simulate_patch_mean(circuit, points, feats, n_outputs=1)
            assert mode.found == [], (n, n_samples, mode.found[:3])
            checked += 1
    assert checked >= 3
