"""The applicant's history and profile from Feast's online store (Redis), with a deadline.

:class:`OnlineHistory` wraps a reader ``ids -> [dict | None]`` (in production
:func:`ml.feature_store.online_history` over the ``credit_model_v1`` feature service) and turns
every failure — Redis down, a timeout, an error inside Feast — into :class:`FeaturesUnavailable`,
so the API answers 503 saying why instead of scoring without the features. The read runs in a
small thread pool so that a hung connection cannot hold a request past ``timeout_s``.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

HistoryReader = Callable[[Sequence[str]], list[dict[str, Any] | None]]


class FeaturesUnavailable(RuntimeError):
    """The online store could not answer in time; the message says why."""


class OnlineHistory:
    def __init__(self, read: HistoryReader, timeout_s: float, *, workers: int = 4) -> None:
        self._read = read
        self.timeout_s = timeout_s
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="online-features"
        )

    def get(self, proponente_id: str) -> dict[str, Any] | None:
        """The applicant's online features (None: unknown applicant)."""
        return self.get_many([proponente_id])[0]

    def get_many(self, proponente_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """The online features of each applicant, in order (None: unknown), in ONE read."""
        future = self._pool.submit(self._read, list(proponente_ids))
        try:
            rows = future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise FeaturesUnavailable(
                f"the online feature store (Redis) did not answer within {self.timeout_s:.1f}s"
            ) from None
        except Exception as exc:
            logger.warning("online feature read failed: %s: %s", type(exc).__name__, exc)
            raise FeaturesUnavailable(
                f"the online feature store (Redis) cannot be read: {type(exc).__name__}: {exc}"
            ) from exc
        if len(rows) != len(proponente_ids):
            raise FeaturesUnavailable(
                f"the online store returned {len(rows)} rows for {len(proponente_ids)} ids"
            )
        return rows

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
