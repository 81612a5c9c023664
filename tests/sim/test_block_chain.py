"""The block product's hand-written derivatives (qlandscape.sim.block_chain) against autograd through the layer
by layer product they replace (blocks._sequential_unitary): value, tangent, vector-Jacobian product, its tangent
(an HVP's second-order term) and its own vector-Jacobian product, to 1e-12, on real and complex halves, with the
reverse walks' prefixes kept and rebuilt by the layers' inverses (a memory budget too small to keep them)."""

from __future__ import annotations

import pytest
import torch

from qlandscape.sim import block_chain, blocks
from qlandscape.sim.blocks import block_unitary, chain_layers
from qlandscape.sim.circuits import build_circuit
from qlandscape.sim.lowering import Block, plan

CASES = [("kawase", 6, 3), ("hea", 6, 2), ("kawase", 5, 4)]


def _blocks(ansatz: str, n: int, layers: int) -> list[Block]:
    circuit = build_circuit(ansatz, n, layers)
    blocks = [s for s in plan(circuit, fold_readout=True, blocks=True).steps if isinstance(s, Block)]
    if not blocks:
        pytest.skip(f"{ansatz} has no block at {n} qubits")
    return circuit, blocks


def _rebuild_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget that keeps no prefix, checked from the first byte: the walks rebuild every layer's matrices."""
    monkeypatch.setattr(block_chain, "_CHECK_FROM", 0)
    monkeypatch.setenv("QLANDSCAPE_MEMORY_BUDGET", "1K")


@pytest.mark.parametrize("rebuilt", [False, True], ids=["kept", "rebuilt"])
@pytest.mark.parametrize(("ansatz", "n", "layers"), CASES)
def test_hand_derivatives_equal_autograd(
    ansatz: str, n: int, layers: int, rebuilt: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if rebuilt:
        _rebuild_prefixes(monkeypatch)
        assert not block_chain.keeps_prefixes(torch.zeros(8, 4, 2, 2), 4, 2)
    circuit, blocks = _blocks(ansatz, n, layers)
    g = torch.Generator().manual_seed(n + layers)
    params = torch.rand(2, circuit.n_params, generator=g, dtype=torch.float64) * 6.0
    v = torch.randn(params.shape, generator=g, dtype=torch.float64)
    for block in blocks:

        def ours(p: torch.Tensor, block: Block = block) -> torch.Tensor:
            return block_unitary(block, p, n, torch.complex128, hand_derivatives=True)

        def reference(p: torch.Tensor, block: Block = block) -> torch.Tensor:
            return block_unitary(block, p, n, torch.complex128)

        u = reference(params)
        assert torch.allclose(ours(params), u, atol=1e-12, rtol=0)
        cot = torch.randn(u.shape, generator=g, dtype=torch.complex128)
        cot_dot = torch.randn(u.shape, generator=g, dtype=torch.complex128)
        tangent = [torch.func.jvp(f, (params,), (v,))[1] for f in (ours, reference)]
        assert torch.allclose(tangent[0], tangent[1], atol=1e-12, rtol=0)
        pulled = [torch.func.vjp(f, params)[1](cot)[0] for f in (ours, reference)]
        assert torch.allclose(pulled[0], pulled[1], atol=1e-12, rtol=0)

        def pull(p: torch.Tensor, c: torch.Tensor, f) -> torch.Tensor:
            return torch.func.vjp(f, p)[1](c)[0]

        second = [
            torch.func.jvp(lambda p, c, f=f: pull(p, c, f), (params, cot), (v, cot_dot))[1] for f in (ours, reference)
        ]
        assert torch.allclose(second[0], second[1], atol=1e-12, rtol=0)
        # reverse over reverse: the pull-back's own vector-Jacobian product, in both of its inputs
        w = torch.randn(params.shape, generator=g, dtype=torch.float64)
        rr = [torch.func.vjp(lambda p, c, f=f: pull(p, c, f), params, cot)[1](w) for f in (ours, reference)]
        assert torch.allclose(rr[0][0], rr[1][0], atol=1e-12, rtol=0)
        assert torch.allclose(rr[0][1], rr[1][1], atol=1e-12, rtol=0)


def test_hand_derivatives_equal_the_sequential_product() -> None:
    """The layer walk starts from the identity where the sequential product gathers its first factor's rows."""
    circuit, blocks = _blocks("kawase", 6, 3)
    params = torch.rand(3, circuit.n_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for block in blocks:
        assert len(chain_layers(block, 6).sources) == len(block.perms)
        ours = block_unitary(block, params, 6, torch.complex128, hand_derivatives=True)
        u = ours @ ours.mH
        assert torch.allclose(u, torch.eye(64, dtype=torch.complex128).expand_as(u), atol=1e-12, rtol=0)


def test_hand_derivatives_compose_with_vmap_hessian_and_single_precision() -> None:
    """Batched over points (vmap), a dense Hessian (forward over reverse) and complex64 match the autograd route."""
    circuit, blocks = _blocks("kawase", 6, 3)
    params = torch.rand(3, 2, circuit.n_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # a weighted sum of |U_ij|^2 over rows and columns (with one weight per column it would be constant: U is unitary)
    weights = torch.rand(64, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for block in blocks:

        def ours(p: torch.Tensor, block: Block = block) -> torch.Tensor:
            return block_unitary(block, p, 6, torch.complex128, hand_derivatives=True)

        def reference(p: torch.Tensor, block: Block = block) -> torch.Tensor:
            return block_unitary(block, p, 6, torch.complex128)

        batched = [torch.func.vmap(f)(params) for f in (ours, reference)]
        assert torch.allclose(batched[0], batched[1], atol=1e-12, rtol=0)
        hessians = [
            torch.func.hessian(lambda p, f=f: (f(p).abs() ** 2 * weights).sum())(params[0, :1])
            for f in (ours, reference)
        ]
        assert torch.allclose(hessians[0], hessians[1], atol=1e-10 * float(hessians[1].abs().max()), rtol=0)
        low = params.to(torch.float32)  # the engine passes angles in the state's real dtype
        single = block_unitary(block, low, 6, torch.complex64, hand_derivatives=True)
        assert single.dtype == torch.complex64
        assert torch.allclose(single, block_unitary(block, low, 6, torch.complex64), atol=1e-5, rtol=0)


def test_a_differentiated_block_over_the_budget_takes_the_hand_written_walks(monkeypatch: pytest.MonkeyPatch) -> None:
    circuit, (block, *_) = _blocks("kawase", 6, 3)
    params = torch.rand(2, circuit.n_params, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    chained = []
    real_chain = blocks.chain_product
    monkeypatch.setattr(blocks, "chain_product", lambda *a: chained.append(1) or real_chain(*a))

    weights = torch.randn(2, 64, 64, generator=torch.Generator().manual_seed(6), dtype=torch.complex128)

    def grad_of(p: torch.Tensor) -> torch.Tensor:
        return torch.func.grad(lambda q: (weights.conj() * block_unitary(block, q, 6, torch.complex128)).real.sum())(p)

    reference = grad_of(params)
    assert not chained  # within the budget: autograd through the layers (faster)
    _rebuild_prefixes(monkeypatch)
    with torch.no_grad():
        block_unitary(block, params, 6, torch.complex128)
    assert not chained  # nothing differentiated: nothing saved, the plain product
    assert torch.allclose(grad_of(params), reference, atol=1e-12, rtol=0)
    assert chained  # over the budget: the hand-written walks, prefixes rebuilt
