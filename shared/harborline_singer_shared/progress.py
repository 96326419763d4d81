"""Progress lines for long runs: at a steady interval, never one per page or per window.

A run over two years of daily windows has thousands of windows; a line for each buries everything else, and no line
at all leaves a person wondering whether the tap is stuck. `Progress` logs at most once per `interval` seconds (and
always for the last step), each line saying where the run is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["DEFAULT_INTERVAL_S", "Progress"]

#: Seconds between two progress lines of one stream.
DEFAULT_INTERVAL_S = 15.0


class Progress:
    """Logs a progress line at most every `interval` seconds; the final step is always logged."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: float | None = None

    def step(self, message: str, *args: object, final: bool = False) -> bool:
        """Log `message % args` if the interval has passed since the last line (or this is the final step).

        The first step of a run starts the interval rather than logging: short runs stay quiet until they end.
        """
        now = self._clock()
        if self._last is None:
            self._last = now
        if not final and now - self._last < self._interval:
            return False
        self._last = now
        self._logger.info(message, *args)
        return True
