"""qlandscape: loss-landscape geometry of quantum neural networks and classical deep networks."""
from .errors import ConfigError
from .objective import Objective
from .sweep import load_runs, run_sweep

__version__ = "0.1.0"
__all__ = ["ConfigError", "Objective", "load_runs", "run_sweep", "__version__"]

