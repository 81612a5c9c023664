"""The Backend protocol and its two implementations: our engine (EngineBackend) and PennyLane devices
(PennyLaneBackend). Each owns its differences (state dtypes, devices, differentiation methods) as methods; both
compute the same expectations (PennyLane is the independent check), validate their settings before any work, and
keep working through the package face, the 0.1 module path and PatchQNN."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.models.qnn import PatchQNN
from qlandscape.sim.backends import (
    DIFF_METHODS,
    ENGINE,
    Backend,
    EngineBackend,
    PennyLaneBackend,
    available_devices,
    make_backend,
    resolve_device,
)
from qlandscape.sim.circuits import build_circuit


def _inputs(circuit, n_samples=3, n_patches=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = circuit.init_params((n_patches,), g)
    features = torch.rand(n_samples, n_patches, circuit.n_features, generator=g, dtype=torch.float64)
    return params, features


def test_make_backend_returns_the_implementation_for_each_name():
    engine = make_backend("torch", dtype=torch.complex64)
    assert isinstance(engine, EngineBackend) and isinstance(engine, Backend)
    assert (engine.name, engine.dtype, engine.device, engine.supports_torch_func) == (
        ENGINE,
        torch.complex64,
        "cpu",
        True,
    )
    device = make_backend("default.qubit", diff_method="parameter-shift", mode="loop")
    assert isinstance(device, PennyLaneBackend) and isinstance(device, Backend)
    assert (device.name, device.diff_method, device.mode, device.device, device.supports_torch_func) == (
        "default.qubit",
        "parameter-shift",
        "loop",
        "cpu",
        False,
    )
    assert {"torch", "default.qubit", "lightning.qubit"} <= set(available_devices())
    assert available_devices()[0] == ENGINE


def test_the_package_face_and_the_0_1_path_export_the_same_names(monkeypatch):
    monkeypatch.delitem(sys.modules, "qlandscape.backends", raising=False)  # warns on first import only
    with pytest.warns(DeprecationWarning, match="qlandscape.sim.backends"):
        old = importlib.import_module("qlandscape.backends")
    new = importlib.import_module("qlandscape.sim.backends")
    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name), name
    assert {"make_backend", "available_devices", "resolve_device", "ENGINE", "DIFF_METHODS", "Backend"} <= set(
        new.__all__
    )


def test_importing_the_backends_and_running_the_engine_does_not_load_pennylane():
    code = (
        "import sys, torch, qlandscape\n"
        "from qlandscape.sim.backends import make_backend\n"
        "from qlandscape.models.qnn import PatchQNN\n"
        "model = PatchQNN((6, 6), 2, n_qubits=2, n_layers=1, patch_size=3, stride=3)\n"
        "model(torch.rand(2, 6, 6, dtype=torch.float64))\n"
        "make_backend('default.qubit')\n"  # a backend that is not run yet: still nothing loaded
        "assert 'pennylane' not in sys.modules, sorted(m for m in sys.modules if 'pennylane' in m)[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"name": "no.such.device"}, "backend"),
        ({"diff_method": "magic"}, "diff_method"),
        ({"diff_method": "adjoint"}, "diff_method"),  # the engine differentiates by autograd
        ({"mode": "zigzag"}, "mode"),
        ({"mode": "loop"}, "mode"),  # the engine batches everything
        ({"dtype": torch.float64}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"name": "default.qubit", "dtype": torch.complex64}, "dtype"),  # PennyLane's precision is the params'
        ({"name": "default.qubit", "diff_method": "magic"}, "diff_method"),
        ({"name": "lightning.qubit", "mode": "zigzag"}, "mode"),
    ],
)
def test_settings_a_backend_does_not_have_are_named(kwargs, field):
    with pytest.raises(ConfigError, match=field) as err:
        make_backend(**kwargs)
    assert err.value.field == field


def test_direct_construction_validates_too():
    with pytest.raises(ConfigError, match="dtype"):
        EngineBackend(dtype=torch.float32)
    with pytest.raises(ConfigError, match="device"):
        EngineBackend(device="tpu")
    assert EngineBackend(device="auto").device == resolve_device("auto")
    with pytest.raises(ConfigError, match="no.such.device"):
        PennyLaneBackend("no.such.device")
    with pytest.raises(ConfigError, match="diff_method"):
        PennyLaneBackend("default.qubit", diff_method="magic")
    for backend in (EngineBackend(), PennyLaneBackend("default.qubit")):
        with pytest.raises(ConfigError, match="magic"):
            backend.with_diff_method("magic")


def test_engine_owns_its_dtypes():
    fast = EngineBackend(dtype=torch.complex64)
    exact = fast.for_metrics()
    assert exact == EngineBackend() and exact.dtype == torch.complex128 and fast.dtype == torch.complex64
    assert exact.for_metrics() is exact
    assert (fast.state_itemsize, exact.state_itemsize) == (8, 16)
    circuit = build_circuit("strongly_entangling", 3, 2, observables=["Z", "X"])
    params, features = _inputs(circuit)
    lo = fast.expectations(circuit, params, features)
    hi = fast.expectations(circuit, params, features, dtype=torch.complex128)  # a per-call override (metrics)
    assert lo.dtype == torch.float32 and hi.dtype == torch.float64
    assert torch.allclose(lo.double(), hi, atol=1e-5)
    assert torch.equal(hi, exact.expectations(circuit, params, features))
    # autograd differentiates the engine to any order, whatever the method asked for
    for method in ("autograd", "parameter-shift"):
        assert fast.for_second_derivatives(method) is fast
    for method in DIFF_METHODS:
        assert fast.with_diff_method(method) is fast


def test_pennylane_backend_owns_its_differentiation():
    backprop, adjoint = PennyLaneBackend("default.qubit"), PennyLaneBackend("lightning.qubit")
    assert backprop.resolved_diff_method() == "backprop" and adjoint.resolved_diff_method() == "adjoint"
    assert backprop.for_second_derivatives("autograd") is backprop
    assert backprop.for_second_derivatives("parameter-shift").diff_method == "parameter-shift"
    # adjoint is first order only: shift rules whatever the method says
    assert adjoint.for_second_derivatives("autograd").diff_method == "parameter-shift"
    assert adjoint.for_metrics() is adjoint and adjoint.state_itemsize == 16
    assert adjoint.with_diff_method("finite-diff") == PennyLaneBackend("lightning.qubit", diff_method="finite-diff")
    with pytest.raises(ConfigError, match="one parameter point"):
        backprop.expectations(build_circuit("hea", 2, 1), torch.zeros(3, 2, 4), torch.zeros(1, 2, 2))


@pytest.mark.parametrize(
    "backend",
    [
        PennyLaneBackend("default.qubit"),
        PennyLaneBackend("default.qubit", mode="loop"),
        PennyLaneBackend("lightning.qubit"),
    ],
)
def test_both_implementations_compute_the_same_outputs_and_gradients(backend):
    circuit = build_circuit("reuploading", 3, 2, observables=["Z", "Y"])
    params, features = _inputs(circuit, seed=4)
    engine = EngineBackend()
    # torch's default dtype is float32 here: lightning would return float32 without the backend's dtype handling
    assert torch.get_default_dtype() == torch.float32
    ours = params.clone().requires_grad_(True)
    theirs = params.clone().requires_grad_(True)
    out_ours, out_theirs = engine.expectations(circuit, ours, features), backend.expectations(circuit, theirs, features)
    assert out_theirs.dtype == torch.float64 and out_theirs.shape == out_ours.shape == (3, 2, circuit.n_outputs)
    assert torch.allclose(out_ours, out_theirs, atol=1e-10, rtol=0)
    (out_ours**2).sum().backward()
    (out_theirs**2).sum().backward()
    assert theirs.grad.dtype == torch.float64 and torch.allclose(ours.grad, theirs.grad, atol=1e-9, rtol=0)
    with torch.no_grad():
        means = (
            engine.patch_mean(circuit, params, features, n_outputs=1),
            backend.patch_mean(circuit, params, features, n_outputs=1),
        )
    assert means[0].shape == means[1].shape == (3, 1) and torch.allclose(*means, atol=1e-10, rtol=0)


def test_patch_qnn_takes_a_name_or_a_backend_and_asks_the_backend(tiny_images):
    x, _ = tiny_images
    kw = dict(n_qubits=3, n_layers=1, patch_size=3, stride=3, seed=1)
    by_name = PatchQNN((6, 6), 2, backend="torch", **kw)
    fast = PatchQNN((6, 6), 2, backend=EngineBackend(dtype=torch.complex64), **kw)
    device = PatchQNN((6, 6), 2, backend="default.qubit", **kw)
    assert isinstance(device.backend, PennyLaneBackend) and isinstance(fast.backend, EngineBackend)
    assert torch.allclose(by_name(x), device(x), atol=1e-10) and torch.allclose(by_name(x), fast(x).double(), atol=1e-5)
    assert (
        fast.point_state_bytes(5) * 2 == by_name.point_state_bytes(5) == device.point_state_bytes(5) == 5 * 4 * 8 * 16
    )
    assert by_name.with_diff_method("parameter-shift") is by_name
    shifted = device.with_diff_method("parameter-shift")
    assert shifted is not device and shifted.backend.diff_method == "parameter-shift"
    assert device.backend.diff_method == "best"  # the caller's model is untouched
    assert device.for_second_derivatives("autograd") is device
    fast.use_metric_precision()
    assert fast.backend == EngineBackend()
    with pytest.raises(ConfigError, match="backend"):
        PatchQNN((6, 6), 2, backend=3, **kw)
