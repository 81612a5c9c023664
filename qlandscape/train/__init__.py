"""Training: a seeded, resumable, forkable torch training loop that records the parameter trajectory."""

from qlandscape.train.trainer import (
    OPTIMIZERS,
    SCHEDULE_UNITS,
    SCHEDULES,
    TrainConfig,
    Trainer,
    TrainResult,
    evaluate,
    flat_parameters,
    train,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "SCHEDULE_UNITS",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "evaluate",
    "flat_parameters",
    "train",
]
