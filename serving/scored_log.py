"""The scored-requests log: each answer as an Avro ``scored_request`` record on Kafka.

Records are encoded with the contract (:func:`safra.contracts.encode`, schema
``safra/schemas/scored_request.v1.avsc``) and carry the same ``schema.subject`` /
``schema.version`` headers as the simulator's producer, so the Spark ingestion lands them in
``bronze.scored_requests``. The key is the request id.

Sending never blocks an answer: :meth:`ScoredRequestLog.send` hands the record to librdkafka's
queue and returns; a background thread serves delivery reports (``poll``). Each report is
counted: a failed delivery is logged and counted (``failed``), never silently dropped; a full
local queue counts as a failure too.

:meth:`ScoredRequestLog.unavailable` tells whether the brokers can be reached: librdkafka's
statistics (every second) say whether any broker connection is up, and its ``_ALL_BROKERS_DOWN``
error says at once when none is. The API answers 503 while Kafka is unreachable (a scored request
that cannot be logged would be invisible to monitoring).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, Producer

from safra import contracts
from safra.kafka_clients import client_config
from safra.settings import Settings

logger = logging.getLogger(__name__)

SUBJECT = "scored_request"
STATS_INTERVAL_MS = 1000
CONNECT_GRACE_S = 10.0
"""At start-up, how long the brokers may take to connect before Kafka counts as unreachable."""

PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "message.timeout.ms": 60_000,
    "queue.buffering.max.messages": 200_000,
    "statistics.interval.ms": STATS_INTERVAL_MS,
    "socket.connection.setup.timeout.ms": 5_000,
    "reconnect.backoff.max.ms": 2_000,
}


class ScoredRequestLog:
    """A non-blocking producer of scored requests to ``settings.topic_scored_requests``."""

    def __init__(self, settings: Settings, config: Mapping[str, Any] | None = None) -> None:
        self.topic = settings.topic_scored_requests
        self.bootstrap = settings.kafka_bootstrap
        self.version = contracts.LATEST[SUBJECT]
        self.headers = contracts.schema_headers(SUBJECT, self.version)
        self._checked = False  # the first record gets the full value check (contracts.encode)
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None
        self._brokers_up: bool | None = None  # None: no statistics yet
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._producer = Producer(
            client_config(
                settings,
                **{
                    "client.id": "safra-api",
                    **PRODUCER_CONFIG,
                    **(config or {}),
                    "error_cb": self._on_error,
                    "stats_cb": self._on_stats,
                    "logger": logging.getLogger("serving.scored_log.librdkafka"),
                },
            )
        )
        self._thread = threading.Thread(target=self._serve, name="scored-log-poll", daemon=True)
        self._thread.start()

    # --- callbacks (run in the poll thread) -----------------------------------------------------

    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_up = False
        self.last_error = error.str()
        logger.warning("Kafka (%s): %s", self.bootstrap, error.str())

    def _on_stats(self, stats_json: str) -> None:
        stats = json.loads(stats_json)
        brokers = stats.get("brokers", {}).values()
        self._brokers_up = any(b.get("state") == "UP" for b in brokers)

    def _on_delivery(self, error: KafkaError | None, message: Any) -> None:
        with self._lock:
            if error is None:
                self.delivered += 1
                return
            self.failed += 1
        self.last_error = error.str()
        logger.error(
            "scored request %r not delivered to %s: %s", message.key(), self.topic, error.str()
        )

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.2)

    # --- API ------------------------------------------------------------------------------------

    def unavailable(self) -> str | None:
        """Why scored requests cannot be logged now (None when the brokers are reachable)."""
        if self._brokers_up:
            return None
        if self._brokers_up is None and time.monotonic() - self._started < CONNECT_GRACE_S:
            return None
        return (
            f"Kafka at {self.bootstrap} is unreachable ({self.last_error or 'no broker up'}): "
            "scored requests cannot be logged"
        )

    def send(self, record: Mapping[str, Any]) -> None:
        """Encode ``record`` (a ``scored_request``) and queue it; returns at once.

        :class:`~safra.contracts.ContractError` when the record breaks the contract (a bug:
        the caller builds it; values are checked on the first record, fields on every one); a
        full local queue is logged and counted as a failed delivery.
        """
        if self._checked:  # the record's types are fixed by scoring.scored_record
            payload = contracts.encode_unchecked(record, SUBJECT, self.version)
        else:
            payload = contracts.encode(record, SUBJECT, self.version)
            self._checked = True
        try:
            self._producer.produce(
                self.topic,
                value=payload,
                key=str(record["id_requisicao"]).encode(),
                headers=self.headers,
                on_delivery=self._on_delivery,
            )
        except BufferError as exc:
            with self._lock:
                self.failed += 1
            self.last_error = f"local queue full: {exc}"
            logger.error("scored request %s not queued: %s", record["id_requisicao"], exc)
            return
        with self._lock:
            self.sent += 1

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait for outstanding deliveries; the number still undelivered."""
        return int(self._producer.flush(timeout_s))

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (briefly when Kafka is unreachable), then stop; what is left
        undelivered is logged and counted as failed."""
        left = self.flush(timeout_s if self.unavailable() is None else min(timeout_s, 1.0))
        self._stop.set()
        self._thread.join(timeout_s)
        if left:
            logger.error("%d scored requests still undelivered at shutdown", left)
            self._producer.purge()  # each purged message's report counts it as failed
            self._producer.poll(0)
        self._producer.close()
