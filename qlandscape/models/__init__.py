"""Models: the distributed patch QNN, its patch grids and feature maps, and the classical MLP and CNN."""

from qlandscape.models.config import MODEL_KINDS, ModelConfig, build_model, count_parameters

__all__ = ["MODEL_KINDS", "ModelConfig", "build_model", "count_parameters"]
