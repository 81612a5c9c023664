"""Datasets: the built-in digits, MNIST from IDX files and any ``.npz``, scaled to angles and split."""

from qlandscape.data.config import DataConfig
from qlandscape.data.datasets import MNIST_FILES, Dataset, load_dataset, read_idx, to_torch, write_idx

__all__ = ["DataConfig", "Dataset", "load_dataset", "read_idx", "write_idx", "to_torch", "MNIST_FILES"]
