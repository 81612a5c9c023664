"""What a long computation tells its user: named steps logged with their duration (at INFO, which the command's
``-v`` shows) and progress bars that are drawn only when asked for (the command asks when stderr is a terminal
and ``--quiet`` is not given; library calls default to none)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

if TYPE_CHECKING:
    ProgressBar = tqdm[Any]  # tqdm is generic to type checkers only; at run time it cannot be subscripted
else:
    ProgressBar = tqdm

__all__ = ["logged_step", "progress_bar"]


@contextmanager
def logged_step(logger: logging.Logger, what: str) -> Iterator[None]:
    """Log ``what ...`` when the step starts and ``what: done in 1.23 s`` when it ends (``what: stopped after
    1.23 s`` when it raises), at INFO."""
    logger.info("%s ...", what)
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        logger.info("%s: stopped after %.2f s", what, time.perf_counter() - start)
        raise
    logger.info("%s: done in %.2f s", what, time.perf_counter() - start)


def progress_bar(total: int | None, desc: str, *, enabled: bool, unit: str = "step", initial: int = 0) -> ProgressBar:
    """A progress bar over ``total`` steps (None: unknown), drawn only when ``enabled``; it disappears when it
    closes, so that a command's summary follows its bars without their last frames."""
    return tqdm(
        total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True, leave=False
    )
