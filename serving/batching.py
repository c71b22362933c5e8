"""Coalescing concurrent requests into one computation, without waiting for a batch to fill.

Scoring one request costs a fixed ~30 ms of pandas and scikit-learn overhead whatever the number
of rows (building the model inputs, the pipeline's transformers, one ``predict_proba``); twenty
requests scored together cost about the same as one. :class:`Coalescer` runs a handler on one
thread over whatever is waiting when it becomes free: at low load a batch is a single request
and nothing waits for company; under load, the requests that arrive while a batch computes form
the next one, so the batch size follows the load. The answer of request ``i`` is result ``i``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


class Coalescer(Generic[T, R]):
    """``submit(item)`` → a future of ``handle(batch)[i]``; ``handle`` runs on one thread.

    ``handle`` must return one result per item, in order. An exception raised by ``handle``
    becomes every item's exception (logged once), so no caller is left waiting.
    """

    def __init__(
        self, handle: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int = 64, name: str
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._handle = handle
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self.batches = 0
        self.items = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        if self._closed:
            raise RuntimeError("the coalescer is closed")
        future: Future[R] = Future()
        self._queue.put((item, future))
        return future

    def close(self, timeout_s: float = 5.0) -> None:
        """Finish what is queued, then stop the thread."""
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting is _STOP:
                    stopping = True
                    break
                batch.append(waiting)
            self._compute(batch)

    def _compute(self, batch: list[tuple[T, Future[R]]]) -> None:
        live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
        if not live:
            return
        self.batches += 1
        self.items += len(live)
        try:
            results = self._handle([item for item, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"{len(results)} results for a batch of {len(live)}")
        except BaseException as exc:  # every caller gets it: nobody waits forever
            logger.exception("a batch of %d failed", len(live))
            for _, future in live:
                future.set_exception(exc)
            return
        for (_, future), result in zip(live, results, strict=True):
            future.set_result(result)
