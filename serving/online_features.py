"""The applicant's history and profile from Feast's online store (Redis), with a deadline.

:class:`OnlineHistory` wraps a reader ``ids -> [dict | None]`` (in production
:func:`ml.feature_store.online_history` over the ``credit_model_v1`` feature service) and turns
every failure — Redis down, a timeout, an error inside Feast — into :class:`FeaturesUnavailable`,
so the API answers 503 saying why instead of scoring without the features. The read runs in a
small thread pool so that a hung connection cannot hold a request past ``timeout_s``.

:class:`StoreFreshness` watches what the reads return, so that an unknown applicant is routed to
MANUAL_REVIEW when the store itself looks empty or stale (then "unknown" may only mean "not
loaded"), and scored on the request alone otherwise.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
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


_UNKNOWN = object()


class StoreFreshness:
    """Whether the online store looks empty or stale, judged on this worker's last lookups.

    Over the last ``window`` applicants looked up (this batch included):

    - **empty**: ``window`` lookups and not one applicant known;
    - **stale**: the newest ``feature_timestamp`` among the known ones (the date of that
      applicant's latest application) is older than ``stale_after``: no applicant seen lately
      has applied within it, so the store is not being refreshed.

    Fewer than ``window`` lookups, all unknown, is neither (a worker just started).
    """

    def __init__(
        self,
        window: int = 50,
        stale_after: timedelta = timedelta(days=30),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.window = window
        self.stale_after = stale_after
        self._clock = clock
        self._recent: deque[Any] = deque(maxlen=window)
        self._lock = threading.Lock()

    def observe(
        self, rows: Sequence[dict[str, Any] | None], stamps: Sequence[datetime | None]
    ) -> str | None:
        """Record a read (``rows[i]`` None: unknown; ``stamps[i]``: its feature timestamp) and
        say why the store looks empty or stale now (None: it does not)."""
        with self._lock:
            for row, stamp in zip(rows, stamps, strict=True):
                self._recent.append(_UNKNOWN if row is None else stamp)
            return self._suspect()

    def _suspect(self) -> str | None:
        known = [s for s in self._recent if s is not _UNKNOWN]
        if not known:
            if len(self._recent) >= self.window:
                return f"nenhum dos últimos {self.window} proponentes consultados está no store"
            return None
        dated = [s for s in known if isinstance(s, datetime)]
        if not dated:
            return None
        age = self._clock() - max(dated)
        if age > self.stale_after:
            return (
                f"o histórico mais recente lido tem {age.days} dias "
                f"(limite: {self.stale_after.days} dias)"
            )
        return None
