"""Build the model a run config names: the patch QNN or a classical net, for a given dataset."""
from __future__ import annotations

from torch import nn

from qlandscape.runs.config import RunConfig
from qlandscape.core.errors import ConfigError


def build_model(config: RunConfig, image_shape: tuple[int, int], n_classes: int) -> nn.Module:
    """The ``nn.Module`` described by ``config`` for images of ``image_shape`` and ``n_classes`` classes."""
    if config.model == "qnn":
        from qlandscape.models.qnn import PatchQNN

        return PatchQNN(
            image_shape, n_classes, ansatz=config.ansatz, n_qubits=config.qubits, n_layers=config.layers,
            patch_size=config.patch_size, stride=config.stride, n_patches=config.patches, backend=config.backend, device=config.device,
            aggregation=config.aggregation, output_scale=config.output_scale, observables=config.observables,
            measure_qubits=config.measure_qubits, encoding_scale=config.encoding_scale,
            positional_bias=config.positional_bias, seed=config.seed,
        )
    try:
        from qlandscape.models import classical
    except ImportError as exc:  # pragma: no cover - the classical module ships with the package
        raise ConfigError("model", config.model, "the classical module is not available") from exc
    return classical.build_classical(config, image_shape, n_classes)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
