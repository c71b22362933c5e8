"""How long a new request waits before its handler runs, and when a worker should refuse it.

A worker is one event loop on one core. Past its capacity, requests do not pile up in the
scoring handler (where the concurrency limit counts them) but before it: read by the server and
queued as tasks behind each other on the loop. The concurrency limit never sees that queue;
past the capacity it grew to seconds (``bench/serving_bench.py`` at 500 req/s on a worker that
held 450: p99 1.5 s).

A timer shows that wait: due every :data:`INTERVAL_S`, it runs late by about as long as a task
queued now waits for the loop. As in CoDel (Nichols and Jacobson, "Controlling Queue Delay",
2012), the worker refuses new scoring requests (503 + ``Retry-After``, cheap: no body read, no
scoring) once that delay has stayed above a target for a whole window: a standing queue, not a
burst the next milliseconds absorb. The first sample at or below the target ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

INTERVAL_S = 0.005
"""How often the timer is due (its cost: ~200 wake-ups a second of an idle loop)."""


class QueueDelay:
    """The event loop's delay as its timer sees it, and the refusal rule above."""

    def __init__(
        self, target_s: float, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.target_s = target_s
        self.window_s = window_s
        self.delay_s = 0.0
        self._clock = clock
        self._above_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    def sample(self, delay_s: float) -> None:
        """Record one measured delay."""
        self.delay_s = delay_s
        if delay_s <= self.target_s:
            self._above_since = None
        elif self._above_since is None:
            self._above_since = self._clock()

    def overloaded(self) -> bool:
        """True while the delay has stayed above the target for the whole window."""
        since = self._above_since
        return since is not None and self._clock() - since >= self.window_s

    def ensure_running(self) -> None:
        """Start the timer on the running loop (once; call from a handler)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + INTERVAL_S
            await asyncio.sleep(INTERVAL_S)
            self.sample(max(0.0, loop.time() - due))
