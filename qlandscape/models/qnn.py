"""The distributed patch QNN: images -> overlapping patches -> one circuit per patch -> class logits.

Each patch has its own circuit parameters: they live in one tensor ``circuit_params`` of shape
``(n_patches, n_params_per_circuit)``, so row k is patch k's block (the QNN analogue of a filter).

Aggregation of the patch outputs into class logits (``aggregation``):

* ``"mean"`` (parameter-free): ``logits[b, c] = output_scale * mean_k <O_c>_{b,k}`` -- the mean over patches of
  the c-th measured observable; needs at least as many observables as classes.
* ``"linear"``: a trainable linear head on the patch-mean of all observables,
  ``logits = W (mean_k <O>_{b,k}) + b``.

An optional learned positional bias (``positional_bias=True``, an ``(H, W)`` image initialised at zero) is added to
every image before the patches are cut, shared by all patches (as in Kawase 2025).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from qlandscape.core.capabilities import PatchLayout
from qlandscape.core.errors import ConfigError, check_choice, check_positive_int, is_finite_number
from qlandscape.models.patches import PatchGrid, feature_map, patch_grid
from qlandscape.sim.backends import Backend, make_backend
from qlandscape.sim.circuits import Circuit, build_circuit

__all__ = ["AGGREGATIONS", "apply_feature_map", "PatchQNN"]

AGGREGATIONS = ("mean", "linear")


def apply_feature_map(flat_images: Tensor, patch_map: Tensor) -> Tensor:
    """Circuit inputs ``(B, P, F)`` from flattened images ``(B, H*W)`` and a feature map ``(P, F, H*W)``."""
    n_patches, n_features, pixels = patch_map.shape
    # One GEMM: einsum("bj,pfj->bpf") pays for permute copies that dwarf this tiny product.
    out = flat_images.to(patch_map.dtype) @ patch_map.reshape(n_patches * n_features, pixels).T
    return out.reshape(-1, n_patches, n_features)


class PatchQNN(nn.Module):
    """Distributed patch QNN (an ``nn.Module``): ``forward(x (B, H, W)) -> logits (B, n_classes)``.

    Args:
        image_shape: (H, W) of the input images.
        n_classes: number of classes.
        ansatz: catalogue name (``circuits/*.toml``) or a path to a user's spec.
        n_qubits, n_layers: circuit size; the parameter count follows from (ansatz, qubits, layers).
        patch_size, stride, n_patches: the patch grid (see :func:`qlandscape.models.patches.patch_grid`).
        backend: ``"torch"`` (our engine) or a PennyLane device name.
        device: where the engine simulates (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``); the parameters,
            data and loss stay on the caller's device. Ignored when ``backend`` is a ready Backend.
        aggregation: ``"mean"`` (parameter-free) or ``"linear"`` (trainable head), see the module docs.
        output_scale: constant multiplying the patch mean in the ``"mean"`` rule.
        observables, measure_qubits: override the spec's readout (e.g. ``["X", "Z"]`` on qubits 0..4).
        encoding_scale: multiplies every data angle.
        positional_bias: add a learned (H, W) bias to the image before patching.
        seed: seeds the initial parameters.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        n_classes: int,
        *,
        ansatz: str = "hea",
        n_qubits: int = 4,
        n_layers: int = 2,
        patch_size: int | Sequence[int] = 4,
        stride: int | Sequence[int] | None = None,
        n_patches: int | None = None,
        backend: str | Backend = "torch",
        device: str = "cpu",
        aggregation: str = "mean",
        output_scale: float = 5.0,
        observables: Sequence[str] | None = None,
        measure_qubits: Sequence[int] | None = None,
        encoding_scale: float = 1.0,
        positional_bias: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_choice("aggregation", aggregation, AGGREGATIONS)
        n_classes = check_positive_int("n_classes", n_classes, minimum=2)
        seed = check_positive_int("seed", seed, minimum=0)
        if not is_finite_number(output_scale) or output_scale <= 0:
            raise ConfigError("output_scale", output_scale, "expected a finite positive number")
        # a NaN or infinite scale would turn every output into NaN without an error
        if not is_finite_number(encoding_scale):
            raise ConfigError("encoding_scale", encoding_scale, "expected a finite number")
        self.backend = backend if isinstance(backend, Backend) else make_backend(backend, device=device)
        self.circuit: Circuit = build_circuit(
            ansatz, n_qubits, n_layers, observables=observables, measure_qubits=measure_qubits
        )
        self.grid: PatchGrid = patch_grid(tuple(image_shape), patch_size, stride=stride, n_patches=n_patches)
        if aggregation == "mean" and self.circuit.n_outputs < n_classes:
            raise ConfigError(
                "aggregation",
                aggregation,
                f"the 'mean' rule needs at least n_classes={n_classes} observables but the circuit "
                f"measures {self.circuit.n_outputs}; use aggregation='linear' or more observables",
            )
        self.image_shape = tuple(int(s) for s in image_shape)
        self.n_classes = n_classes
        self.aggregation = aggregation
        self.output_scale = float(output_scale)
        self.encoding_scale = float(encoding_scale)
        generator = torch.Generator().manual_seed(seed)
        self.circuit_params = nn.Parameter(self.circuit.init_params((self.grid.n_patches,), generator))
        if positional_bias:
            self.position_bias = nn.Parameter(torch.zeros(self.image_shape, dtype=torch.float64))
        else:
            self.position_bias = None
        if aggregation == "linear":
            bound = 1 / math.sqrt(self.circuit.n_outputs)
            self.head = nn.Linear(self.circuit.n_outputs, n_classes, dtype=torch.float64)
            with torch.no_grad():
                self.head.weight.copy_(
                    (2 * torch.rand(self.head.weight.shape, generator=generator, dtype=torch.float64) - 1) * bound
                )
                self.head.bias.copy_((2 * torch.rand(n_classes, generator=generator, dtype=torch.float64) - 1) * bound)
        else:
            self.head = None
        fmap = feature_map(self.grid, self.circuit.n_features)
        self.register_buffer("patch_map", torch.as_tensor(np.asarray(fmap), dtype=torch.float64), persistent=False)

    # torch.func transforms only trace our engine; Objective falls back to autograd for PennyLane devices.
    @property
    def supports_torch_func(self) -> bool:
        return self.backend.supports_torch_func

    @property
    def n_patches(self) -> int:
        return self.grid.n_patches

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def point_state_bytes(self, n_samples: int) -> int:
        """Bytes of state vectors that one parameter point costs :meth:`forward_points` on ``n_samples`` images:
        one 2**n-amplitude state per (sample, patch) in the backend's state dtype (what sizes groups of grid
        points)."""
        return int(n_samples) * self.n_patches * 2**self.circuit.n_qubits * self.backend.state_itemsize

    def with_backend(self, backend: str | Backend) -> PatchQNN:
        """A copy of this model (same parameters) running on another backend."""
        clone = copy.deepcopy(self)
        clone.backend = backend if isinstance(backend, Backend) else make_backend(backend)
        return clone

    def with_diff_method(self, diff_method: str) -> PatchQNN:
        """The model differentiating its circuits by ``diff_method`` (e.g. ``"parameter-shift"`` for a
        hardware-faithful Hessian on a PennyLane device): a copy, or this model where its backend already does
        (our engine differentiates by autograd, exactly, whatever the method)."""
        backend = self.backend.with_diff_method(diff_method)
        return self if backend == self.backend else self.with_backend(backend)

    def use_metric_precision(self) -> None:
        """Switch this model, in place, to the precision metrics are computed in (complex128 engine states)."""
        self.backend = self.backend.for_metrics()

    def for_second_derivatives(self, method: str) -> PatchQNN:
        """The model to differentiate twice (see :meth:`Backend.for_second_derivatives`): this model itself, or a
        copy whose circuits differentiate by parameter shift."""
        backend = self.backend.for_second_derivatives(method)
        return self if backend == self.backend else self.with_backend(backend)

    def features(self, x: Tensor) -> Tensor:
        """Per-patch circuit inputs ``(B, P, n_features)`` for images ``x (B, H, W)``."""
        # (B, 1, H, W) is one channel; anything else would be mis-flattened into the pixel axis
        if not (x.ndim == 3 or x.ndim == 4 and x.shape[1] == 1) or x.shape[-2:] != self.image_shape:
            raise ConfigError(
                "images shape",
                tuple(x.shape),
                f"expected (B, {self.image_shape[0]}, {self.image_shape[1]}) or (B, 1, H, W)",
            )
        if self.position_bias is not None:
            x = x + self.position_bias
        return apply_feature_map(x.reshape(x.shape[0], -1), self.patch_map)

    def patch_outputs(self, x: Tensor) -> Tensor:
        """Expectations of every patch circuit ``(B, P, n_observables)``."""
        return self.backend.expectations(self.circuit, self.circuit_params, self.features(x), scale=self.encoding_scale)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.patch_outputs(x).mean(dim=-2)
        if self.head is not None:
            return self.head(pooled)
        return self.output_scale * pooled[..., : self.n_classes]

    def forward_points(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """Logits ``(K, B, n_classes)`` at K parameter points at once, ``params`` named like
        ``named_parameters()`` with a leading K dim: the engine runs all points in one call, encoding the data
        once (what a landscape grid needs; ``vmap`` over points cannot share that work)."""
        theta = params["circuit_params"]
        flat = x.reshape(x.shape[0], -1)
        bias = params.get("position_bias")
        if bias is not None:  # per-point inputs (K, B, P, F)
            flat = flat + bias.reshape(bias.shape[0], 1, -1)
        feats = apply_feature_map(flat, self.patch_map)
        if bias is not None:
            feats = feats.reshape(bias.shape[0], x.shape[0], *feats.shape[1:])
        n_read = None if self.head is not None else self.n_classes  # the mean rule reads the first C outputs
        pooled = self.backend.patch_mean(self.circuit, theta, feats, scale=self.encoding_scale, n_outputs=n_read)
        if self.head is not None:
            return torch.einsum("kbo,kco->kbc", pooled, params["head.weight"]) + params["head.bias"][:, None, :]
        return self.output_scale * pooled

    # Parameter work shared by chunks (qlandscape.core.capabilities.ParameterWorkShared).
    def shares_parameter_work(self, n_samples: int, n_chunks: int) -> bool:
        """Whether the backend's parameter-only work (the block unitaries), done once per parameter point, pays for
        ``n_chunks`` chunks of ``n_samples`` images (the engine's cost estimate; never on a PennyLane device)."""
        return self.backend.shares_parameter_work(self.circuit, n_samples, n_chunks)

    def parameter_work(self, params: dict[str, Tensor]) -> tuple[Tensor, ...]:
        """The circuits' parameter-only work (a state and the block unitaries) at ``params``, named like
        ``named_parameters()``."""
        return self.backend.parameter_work(self.circuit, params["circuit_params"])

    def forward_with_work(self, params: dict[str, Tensor], work: tuple[Tensor, ...], x: Tensor) -> Tensor:
        """Logits ``(B, n_classes)`` at ``params`` with ``work`` from :meth:`parameter_work` at the same params:
        :meth:`forward` without building the unitaries."""
        flat = x.reshape(x.shape[0], -1)
        bias = params.get("position_bias")
        if bias is not None:
            flat = flat + bias.reshape(-1)
        features = apply_feature_map(flat, self.patch_map)
        outputs = self.backend.expectations_with_work(
            self.circuit, params["circuit_params"], features, work, scale=self.encoding_scale
        )
        pooled = outputs.mean(dim=-2)
        if self.head is not None:
            return pooled @ params["head.weight"].T + params["head.bias"]
        return self.output_scale * pooled[..., : self.n_classes]

    # Patch structure (qlandscape.core.capabilities.PatchStructured): what the per-patch Hessian assembly needs.
    def patch_layout(self) -> PatchLayout:
        """The names of the circuit parameters ``(N, n)``, the positional bias and the linear head."""
        return PatchLayout(
            circuit="circuit_params",
            position_bias="position_bias" if self.position_bias is not None else None,
            head_weight="head.weight" if self.head is not None else None,
            head_bias="head.bias" if self.head is not None else None,
        )

    def fixed_readout(self) -> Tensor | None:
        """The ``(C, O)`` matrix of the ``"mean"`` rule, ``output_scale`` times the first C observables; None with
        a linear head."""
        if self.head is not None:
            return None
        readout = torch.zeros(self.n_classes, self.circuit.n_outputs, dtype=torch.float64)
        readout[:, : self.n_classes] = self.output_scale * torch.eye(self.n_classes, dtype=torch.float64)
        return readout

    def evaluate_patches(self, circuit_params: Tensor, position_bias: Tensor | None, x: Tensor) -> Tensor:
        """Expectations ``(B, N, n_observables)`` of every patch circuit for images ``x (B, H, W)`` at the given
        circuit parameters ``(N, n)`` and flattened positional bias ``(H*W,)`` (None: no bias), in one backend call."""
        flat = x.reshape(x.shape[0], -1)
        if position_bias is not None:
            flat = flat + position_bias.reshape(-1)
        features = apply_feature_map(flat, self.patch_map)
        return self.backend.expectations(self.circuit, circuit_params, features, scale=self.encoding_scale)

    def extra_repr(self) -> str:
        return (
            f"ansatz={self.circuit.name}, qubits={self.circuit.n_qubits}, layers={self.circuit.n_layers}, "
            f"patches={self.n_patches}, params/circuit={self.circuit.n_params}, backend={self.backend.name}, "
            f"aggregation={self.aggregation}"
        )
