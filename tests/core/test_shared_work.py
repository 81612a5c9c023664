"""The Objective's two-level route (qlandscape.core.shared_work): a parameter point's parameter-only work done
once for every chunk, then the chunks' derivatives with respect to it pulled back once. Loss, gradient and
Hessian-vector products equal the unchunked Objective's (one chunk: the ordinary route) to 1e-12, for every
catalogue ansatz and X, Y, Z readouts at 6-10 qubits."""

from __future__ import annotations

import pytest
import torch

from qlandscape.core.capabilities import ParameterWorkShared
from qlandscape.core.objective import Objective
from qlandscape.core.shared_work import SharedWork
from qlandscape.models.qnn import PatchQNN
from qlandscape.sim.circuits import build_circuit, catalogue

READOUTS = (["Z"], ["X", "Y"], ["X", "Z"])


def _model(ansatz: str, n: int, layers: int, observables, **extra) -> PatchQNN:
    try:
        circuit = build_circuit(ansatz, n, layers, observables=observables, measure_qubits=range(min(n, 5)))
    except Exception:
        pytest.skip(f"{ansatz} not buildable with {n} qubits")
    features = max(1, circuit.n_features)  # the smallest square patch that pools onto fh x fw features
    side = min(max(f, features // f) for f in range(1, features + 1) if features % f == 0)
    return PatchQNN(
        (side + 2, side),
        2,
        ansatz=ansatz,
        n_qubits=n,
        n_layers=layers,
        patch_size=side,
        stride=2,
        observables=observables,
        measure_qubits=range(min(n, 5)),
        **extra,
    )  # two patches, one row apart


def _check_shared_equals_unchunked(model: PatchQNN, n_samples: int = 7, chunk: int = 3) -> None:
    g = torch.Generator().manual_seed(model.circuit.n_qubits)
    x = torch.rand(n_samples, *model.image_shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (n_samples,), generator=g)
    whole, chunked = Objective(model, x, y), Objective(model, x, y, chunk_size=chunk)
    whole.shared_work = lambda: None  # the ordinary route: torch.func through the whole model, one chunk
    if not isinstance(chunked.model, ParameterWorkShared) or not chunked.model.parameter_work(
        chunked.unflatten(chunked.theta0)
    ):
        pytest.skip("no parameter-only work to share")
    shared = SharedWork(chunked.model, chunked.unflatten, chunked.loss_fn, chunked.chunks)
    theta = whole.theta0 + 0.2 * torch.randn(whole.n_params, generator=g, dtype=torch.float64)
    v = torch.randn(whole.n_params, generator=g, dtype=torch.float64)
    value, grad = shared.value_and_grad(theta)
    assert abs(float(shared.loss(theta) - whole.loss(theta))) < 1e-12
    assert abs(float(value - whole.loss(theta))) < 1e-12
    assert torch.allclose(grad, whole.grad(theta), atol=1e-12, rtol=0)
    assert torch.allclose(shared.hvp(theta, v), whole.hvp(theta, v), atol=1e-12, rtol=0)


def test_objective_takes_the_shared_route_where_it_pays():
    """The paper-size kawase circuit shares its work over many chunks and differentiates it apart in one large
    chunk; a few samples per chunk, or a model on a PennyLane device, do not."""
    model = PatchQNN((14, 14), 10, ansatz="kawase", n_qubits=8, n_layers=50, patch_size=8, stride=6, output_scale=100.0)
    x, y = torch.rand(300, 14, 14, dtype=torch.float64), torch.randint(0, 10, (300,))
    assert Objective(model, x, y, chunk_size=10).shared_work() is not None
    # 10 chunks of 3 samples: building once does not make up for running 3 samples through 256x256 unitaries
    assert Objective(model, x[:30], y[:30], chunk_size=3).shared_work() is None
    assert Objective(model, x, y).shared_work() is not None  # one chunk where the block plan pays: two levels
    assert Objective(model, x[:30], y[:30]).shared_work() is None  # 30 samples: the layers one at a time
    small = PatchQNN((4, 4), 2, n_qubits=2, n_layers=2, patch_size=2, stride=2)
    x, y = torch.rand(6, 4, 4, dtype=torch.float64), torch.randint(0, 2, (6,))
    assert Objective(small.with_backend("default.qubit"), x, y, chunk_size=2).shared_work() is None


@pytest.mark.parametrize(
    ("ansatz", "n", "layers", "observables", "extra"),
    [
        ("kawase", 6, 1, ["X", "Z"], {"positional_bias": True}),
        ("strongly_entangling", 6, 2, ["Y"], {"aggregation": "linear"}),
    ],
)
def test_shared_work_equals_unchunked(ansatz, n, layers, observables, extra):
    _check_shared_equals_unchunked(_model(ansatz, n, layers, observables, **extra))


def test_objective_routes_through_shared_work(monkeypatch):
    """Objective.loss, grad, value_and_grad and hvp over several chunks take the shared route when the model says
    it pays, and give the unchunked numbers."""
    model = _model("hea", 6, 2, ["Z"], positional_bias=True, aggregation="linear")
    x, y = torch.rand(9, *model.image_shape, dtype=torch.float64), torch.randint(0, 2, (9,))
    whole, chunked = Objective(model, x, y), Objective(model, x, y, chunk_size=4)
    whole.shared_work = lambda: None
    monkeypatch.setattr(type(chunked.model), "shares_parameter_work", lambda self, n_samples, n_chunks: True)
    calls = []
    original = SharedWork.work
    monkeypatch.setattr(SharedWork, "work", lambda self, theta: calls.append(1) or original(self, theta))
    v = torch.randn(whole.n_params, dtype=torch.float64)
    assert abs(float(chunked.loss() - whole.loss())) < 1e-12
    assert torch.allclose(chunked.grad(), whole.grad(), atol=1e-12, rtol=0)
    value, grad = chunked.value_and_grad()
    assert abs(float(value - whole.loss())) < 1e-12 and torch.allclose(grad, whole.grad(), atol=1e-12, rtol=0)
    assert torch.allclose(chunked.hvp(None, v), whole.hvp(None, v), atol=1e-12, rtol=0)
    assert len(calls) >= 4  # the route was taken (the work built once per call, not per chunk)


@pytest.mark.slow
@pytest.mark.parametrize("observables", READOUTS)
@pytest.mark.parametrize("n", [6, 8, 10])
@pytest.mark.parametrize("ansatz", sorted(catalogue()))
def test_shared_work_equals_unchunked_sweep(ansatz, n, observables):
    extra = {"positional_bias": True} if ansatz == "kawase" else {"aggregation": "linear"}
    _check_shared_equals_unchunked(_model(ansatz, n, 1 if n == 10 else 2, observables, **extra), n_samples=5, chunk=2)
