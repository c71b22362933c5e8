"""The Kafka producer of the simulator's events: applications, then their outcomes.

Values are schemaless Avro (:mod:`safra.contracts`); the writer's schema identity travels in
the headers ``schema.subject`` (``application``, ``outcome``) and ``schema.version`` (``"2"``),
since no schema registry runs here: ingestion branches on the header. The key is the application
id (``id_solicitacao``), for applications and for their outcomes alike, so an application, its
duplicates and its outcome land on the same partition.

Two modes:

- backfill (``rate=None``): ``count`` applications spread over ``[start, end)`` (default: the
  ~six months before today, 00:00 UTC), sent at full speed, then every outcome already known at
  ``end`` (``data_desfecho < end``), oldest first. The later ones have "not arrived yet".
- live (``rate`` set): applications stamped with the wall clock and paced at ``rate`` per second;
  no outcomes (they would be months away).

Test traffic on demand: ``duplicates`` re-sends already-sent applications (same key, same bytes)
and ``poison`` sends payloads that are not Avro (JSON text, as a misconfigured producer would
write) under a valid-looking header, keyed ``poison-<n>``. Both are slotted at seeded positions
among the applications.

Every message's delivery report is counted. At the end the producer is flushed with a timeout;
a failed delivery or a flush that times out raises :class:`ProduceError` (never a silent drop).
Message timestamps are the produce time, not the event time: backfilled events six months old
would otherwise fall out of the topic's time-based retention at once.
"""

from __future__ import annotations

import io
import json
import logging
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import fastavro
import numpy as np
from confluent_kafka import KafkaError, Producer

from pipelines.simulator import generate_applications, generate_outcomes, live_applications
from pipelines.topics import ensure_topics
from safra import contracts
from safra.kafka_clients import client_config
from safra.settings import Settings

logger = logging.getLogger(__name__)

APPLICATION = "application"
OUTCOME = "outcome"

DEFAULT_BACKFILL_DAYS = 183
"""The default backfill window: this many days before today (00:00 UTC), about six months."""
PROGRESS_EVERY = 1_000
"""The progress callback is called every this many messages (and once at the end)."""
POLL_EVERY = 1_000
"""Delivery reports are served (``poll(0)``) every this many messages."""
FLUSH_TIMEOUT_S = 60.0

PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,  # no duplicates or reordering from retries
    "acks": "all",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    # Measured (bench/producer_bench.py, 200k applications): on disk lz4 196 B/message, zstd
    # 151, none 320; zstd costs ~8 % more producer CPU, and CPU is what bounds throughput here.
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 512 * 1024,
}
"""librdkafka settings of :func:`make_producer`; ``produce(config=...)`` overrides them."""

_PLAN_STREAM = 100
"""Seed stream of the duplicates' and poison's positions (the simulator uses 0, 1, 2)."""


class ProduceError(RuntimeError):
    """Some messages were not delivered (or the final flush timed out). Carries the report."""

    def __init__(self, message: str, report: ProduceReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ProduceReport:
    """What one :func:`produce` call sent, and what the broker acknowledged."""

    applications: int
    outcomes: int
    duplicates: int
    poison: int
    delivered: int
    failed: int
    seconds: float
    """Encode + produce + flush, without data generation."""
    msgs_per_s: float
    application_ids: list[str] = field(repr=False)
    generation_seconds: float = 0.0
    cpu_seconds: float = 0.0
    """CPU time of this process (librdkafka's threads included) over ``seconds``."""
    topic_applications: str = ""
    topic_outcomes: str = ""
    schema_version: int = contracts.LATEST[APPLICATION]
    interrupted: bool = False
    first_error: str | None = None

    @property
    def messages(self) -> int:
        """Messages handed to the producer: applications, outcomes, duplicates and poison."""
        return self.applications + self.outcomes + self.duplicates + self.poison


class DeliveryCounter:
    """The ``on_delivery`` callback: counts delivered and failed messages, keeps the first error."""

    __slots__ = ("delivered", "failed", "first_error")

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None

    def __call__(self, error: KafkaError | None, message: Any) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = f"{error.str()} (topic {message.topic()}, key {message.key()!r})"
            logger.error("delivery failed: %s", self.first_error)


class AvroEncoder:
    """Schemaless Avro bytes of records of one subject and writer version, fast.

    The bytes are those of :func:`safra.contracts.encode` (the unit tests hold them equal),
    without its per-record validation: :meth:`check` validates one record, and the producer
    checks the first record of each stream. Encoding is the producer's bottleneck, so records
    are written by a writer compiled from the contract's schema (:func:`compile_writer`, about
    twice as fast as ``fastavro.schemaless_writer`` here); a schema it does not support is
    written by fastavro into a reused buffer. Fields outside the writer schema are ignored
    (:meth:`shape` makes a record as the writer's version sees it); a record that does not fit
    raises :class:`~safra.contracts.ContractError`.
    """

    def __init__(self, subject: str, version: int) -> None:
        self.subject = subject
        self.version = version
        self.fields = writer_fields(subject, version)
        self.headers = contracts.schema_headers(subject, version)
        self._buffer = io.BytesIO()
        self._schema = _raw_schema(subject, version)
        schema_json = json.loads(contracts.schema_text(subject, version))
        try:
            self._write: Callable[[Mapping[str, Any]], bytes] = compile_writer(schema_json)
            self.compiled = True
        except NotImplementedError as exc:
            logger.info("%s v%d is written by fastavro: %s", subject, version, exc)
            self._write = self._fastavro
            self.compiled = False

    def check(self, record: Mapping[str, Any]) -> None:
        contracts.validate_record(self.shape(record), self.subject, self.version)

    def shape(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``record`` as this writer writes it (see :func:`writer_record`)."""
        return writer_record(record, self.fields, self.version)

    def __call__(self, record: Mapping[str, Any]) -> bytes:
        try:
            return self._write(record)
        except (KeyError, TypeError, AttributeError, ValueError, struct.error) as exc:
            raise contracts.ContractError(
                self.subject, self.version, f"cannot encode record: {exc!r}"
            ) from exc

    def _fastavro(self, record: Mapping[str, Any]) -> bytes:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        fastavro.schemaless_writer(buffer, self._schema, record, disable_tuple_notation=True)
        return buffer.getvalue()


def _zigzag_varint(n: int) -> bytes:
    """Avro's ``int``/``long`` encoding: zigzag, then base-128 varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL_LONGS = {n: _zigzag_varint(n) for n in range(-8192, 8192)}


def _write_long(n: int, _small: dict[int, bytes] = _SMALL_LONGS) -> bytes:
    small = _small.get(n)
    return small if small is not None else _zigzag_varint(n)


def _write_string(text: str, _small: dict[int, bytes] = _SMALL_LONGS) -> bytes:
    data = text.encode()
    size = len(data)
    return (_small[size] if size < 8192 else _zigzag_varint(size)) + data


def _write_bytes(data: bytes) -> bytes:
    return _write_long(len(data)) + data


def _write_boolean(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


_PRIMITIVE_WRITERS: dict[str, Callable[[Any], bytes]] = {
    "null": lambda _: b"",
    "boolean": _write_boolean,
    "int": _write_long,
    "long": _write_long,
    "float": struct.Struct("<f").pack,
    "double": struct.Struct("<d").pack,
    "string": _write_string,
    "bytes": _write_bytes,
}


def compile_writer(schema: Any) -> Callable[[Any], bytes]:
    """A function writing a datum of the (JSON) Avro ``schema`` as schemaless Avro bytes.

    Covers primitives, records, enums and two-branch unions with ``null``, which is all the
    contracts use today; anything else (arrays, maps, fixed, named references, wider unions)
    raises ``NotImplementedError`` and the caller writes with fastavro. Logical types are
    ignored: timestamps must already be epoch milliseconds. Record fields are all required.
    """
    if isinstance(schema, str):
        if schema not in _PRIMITIVE_WRITERS:
            raise NotImplementedError(f"type {schema!r}")
        return _PRIMITIVE_WRITERS[schema]
    if isinstance(schema, list):
        if len(schema) != 2 or "null" not in schema:
            raise NotImplementedError(f"union {schema!r}")
        null_index = schema.index("null")
        inner = compile_writer(schema[1 - null_index])
        null_tag, value_tag = (b"\x00", b"\x02") if null_index == 0 else (b"\x02", b"\x00")

        def write_union(value: Any) -> bytes:
            return null_tag if value is None else value_tag + inner(value)

        return write_union
    kind = schema.get("type")
    if kind == "record":
        names = [f["name"] for f in schema["fields"]]
        writers = [compile_writer(f["type"]) for f in schema["fields"]]
        pairs = list(zip(names, writers, strict=True))
        join = b"".join

        def write_record(record: Mapping[str, Any]) -> bytes:
            return join([write(record[name]) for name, write in pairs])

        return write_record
    if kind == "enum":
        return {symbol: _write_long(i) for i, symbol in enumerate(schema["symbols"])}.__getitem__
    if isinstance(kind, str | list):
        return compile_writer(kind)  # {"type": "long", "logicalType": ...} and the like
    raise NotImplementedError(f"type {kind!r}")


@cache
def _raw_schema(subject: str, version: int) -> Any:
    return fastavro.parse_schema(contracts.schema_without_logical_types(subject, version))


@cache
def writer_fields(subject: str, version: int) -> tuple[str, ...]:
    """The top-level field names of ``subject`` v``version``, in schema order."""
    return tuple(f["name"] for f in json.loads(contracts.schema_text(subject, version))["fields"])


def writer_record(record: Mapping[str, Any], fields: Sequence[str], version: int) -> dict[str, Any]:
    """``record`` as written with a writer schema of ``version`` with these top-level ``fields``.

    The simulator makes ``application`` v2 records; written with v1 they lose ``id_solicitacao``
    and ``prazo_meses`` (v1 has neither: a v2 reader sees ``""`` and ``12``, the defaults) and
    their ``metadata_evento.versao_schema`` says ``"1"``. A field of the schema missing from
    ``record`` raises ``KeyError``.
    """
    shaped = {name: record[name] for name in fields}
    metadata = shaped.get("metadata_evento")
    if isinstance(metadata, Mapping) and metadata.get("versao_schema") != str(version):
        shaped["metadata_evento"] = {**metadata, "versao_schema": str(version)}
    return shaped


def backfill_window(
    start: datetime | None = None, end: datetime | None = None, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """``[start, end)`` with defaults: ``end`` today 00:00 UTC, ``start`` 183 days before ``end``.

    Ending the default window at midnight keeps a run reproducible for the day. Naive datetimes
    are UTC.
    """
    if end is None:
        today = (now or datetime.now(UTC)).astimezone(UTC)
        end = today.replace(hour=0, minute=0, second=0, microsecond=0)
    end = end if end.tzinfo is not None else end.replace(tzinfo=UTC)
    if start is None:
        start = end - timedelta(days=DEFAULT_BACKFILL_DAYS)
    start = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    if end <= start:
        raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    return start, end


def arrived_outcomes(
    outcomes: Iterable[Mapping[str, Any]], end: datetime | int
) -> list[Mapping[str, Any]]:
    """The outcomes known before ``end`` (``data_desfecho < end``), in the order they became known.

    The others have not arrived yet at the end of the backfill window.
    """
    end_ms = _epoch_ms(end)
    known = [o for o in outcomes if o["data_desfecho"] < end_ms]
    known.sort(key=lambda o: o["data_desfecho"])
    return known


def _epoch_ms(moment: datetime | int) -> int:
    if isinstance(moment, int):
        return moment
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def poison_payload(record: Mapping[str, Any]) -> bytes:
    """Bytes that are not Avro: the record as JSON text, as a misconfigured producer would send.

    The leading ``{`` reads as a negative string length, so no Avro reader decodes it.
    """
    return json.dumps(record, sort_keys=True, ensure_ascii=False, default=str).encode()


def extras_plan(
    count: int, duplicates: int, poison: int, seed: int
) -> dict[int, list[tuple[str, int]]]:
    """Where duplicates and poison go: after the application at each key, the extras to send.

    An extra is ``("duplicate", i)`` (re-send application ``i``, already sent) or
    ``("poison", n)``. Positions are drawn from ``seed``, so a run is reproducible.
    """
    if duplicates < 0 or poison < 0:
        raise ValueError(f"duplicates and poison must be >= 0, got {duplicates} and {poison}")
    if count <= 0:
        if duplicates or poison:
            raise ValueError("duplicates and poison need at least one application to follow")
        return {}
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_PLAN_STREAM,)))
    sources = rng.choice(count, size=duplicates, replace=duplicates > count)
    after = sources + np.floor(rng.random(duplicates) * (count - sources)).astype(np.int64)
    poison_after = rng.integers(0, count, size=poison)
    plan: dict[int, list[tuple[str, int]]] = {}
    for source, position in zip(sources.tolist(), after.tolist(), strict=True):
        plan.setdefault(position, []).append(("duplicate", source))
    for n, position in enumerate(poison_after.tolist()):
        plan.setdefault(position, []).append(("poison", n))
    return plan


def make_producer(settings: Settings, config: Mapping[str, Any] | None = None) -> Producer:
    """An idempotent producer (``acks=all``) on ``settings.kafka_bootstrap``, as Safra."""
    return Producer(
        client_config(
            settings, **{"client.id": "safra-producer", **PRODUCER_CONFIG, **(config or {})}
        )
    )


def produce(
    settings: Settings,
    count: int,
    seed: int,
    scenario: str = "baseline",
    rate: float | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    schema_version: int = 2,
    with_outcomes: bool = True,
    duplicates: int = 0,
    poison: int = 0,
    *,
    topic_applications: str | None = None,
    topic_outcomes: str | None = None,
    progress: Callable[[int], None] | None = None,
    config: Mapping[str, Any] | None = None,
    flush_timeout_s: float = FLUSH_TIMEOUT_S,
    outcomes_until: datetime | None = None,
) -> ProduceReport:
    """Generate ``count`` applications (and their outcomes) with ``seed`` and send them to Kafka.

    ``rate`` (messages per second) switches to live mode: applications stamped with the wall
    clock, paced, no outcomes; ``start``/``end`` are then refused. ``schema_version`` is the
    application writer's version (1 drops ``id_solicitacao`` and ``prazo_meses``; the key stays
    the application id). ``progress`` gets the number of messages sent so far, every ~1,000
    messages. ``outcomes_until`` (backfill only; default ``end``) is the moment up to which
    outcomes have arrived: a window far enough in the past has all its outcomes (they come 60 to
    365 days after the application). ``config`` overrides librdkafka settings. A keyboard
    interrupt stops sending, flushes what was sent and returns the report (``interrupted=True``).

    Raises :class:`ProduceError` if any message failed or the flush timed out.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0 messages/s, got {rate}")
    if rate is not None and (start is not None or end is not None or outcomes_until is not None):
        raise ValueError(
            "start/end/outcomes_until set a backfill window; live mode (rate) stamps applications "
            "with the clock"
        )
    app_encoder = AvroEncoder(APPLICATION, schema_version)
    out_encoder = AvroEncoder(OUTCOME, contracts.LATEST[OUTCOME])
    plan = extras_plan(count, duplicates, poison, seed)
    topic_apps = topic_applications or settings.topic_applications
    topic_outs = topic_outcomes or settings.topic_outcomes
    send_outcomes = with_outcomes and rate is None

    began = time.perf_counter()
    applications: Iterator[dict[str, Any]] | list[dict[str, Any]]
    outcomes: list[Mapping[str, Any]] = []
    if rate is not None:
        applications = live_applications(rate, seed, scenario)
        window = "live"
    else:
        window_start, window_end = backfill_window(start, end)
        applications = generate_applications(count, seed, window_start, window_end, scenario)
        if send_outcomes:
            known_at = window_end
            if outcomes_until is not None:
                known_at = (
                    outcomes_until if outcomes_until.tzinfo else outcomes_until.replace(tzinfo=UTC)
                )
            outcomes = arrived_outcomes(generate_outcomes(applications, seed, scenario), known_at)
        window = f"{window_start.isoformat()} .. {window_end.isoformat()}"
    generation_seconds = time.perf_counter() - began
    logger.info(
        "producing %d applications (schema v%d, %s, scenario %s, seed %d) + %d duplicates + "
        "%d poison to %s, %d outcomes to %s",
        count,
        schema_version,
        window,
        scenario,
        seed,
        duplicates,
        poison,
        topic_apps,
        len(outcomes),
        topic_outs,
    )

    topics = [topic_apps, topic_outs] if send_outcomes else [topic_apps]
    ensure_topics(settings, topics)
    producer = make_producer(settings, config)
    sender = _Sender(producer, progress)
    ids: list[str] = []
    interrupted = False
    began, began_cpu = time.perf_counter(), time.process_time()
    try:
        _send_applications(sender, app_encoder, topic_apps, applications, count, plan, ids, rate)
        if send_outcomes:
            _send_outcomes(sender, out_encoder, topic_outs, outcomes)
    except KeyboardInterrupt:
        interrupted = True
        logger.warning("interrupted: flushing the %d messages sent so far", sender.sent)
    remaining = producer.flush(flush_timeout_s)
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - began_cpu
    if progress is not None and sender.sent % PROGRESS_EVERY:
        progress(sender.sent)  # the last, partial, step

    report = ProduceReport(
        applications=sender.counts["application"],
        outcomes=sender.counts["outcome"],
        duplicates=sender.counts["duplicate"],
        poison=sender.counts["poison"],
        delivered=sender.deliveries.delivered,
        failed=sender.deliveries.failed,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        msgs_per_s=sender.sent / seconds if seconds > 0 else 0.0,
        application_ids=ids[: sender.counts["application"]],
        generation_seconds=generation_seconds,
        topic_applications=topic_apps,
        topic_outcomes=topic_outs,
        schema_version=schema_version,
        interrupted=interrupted,
        first_error=sender.deliveries.first_error,
    )
    problems = []
    if report.failed:
        problems.append(
            f"{report.failed} of {report.messages} messages failed delivery "
            f"(first error: {report.first_error})"
        )
    if remaining:
        problems.append(
            f"flush timed out after {flush_timeout_s:g}s with {remaining} of {report.messages} "
            "messages still undelivered"
        )
    if problems:
        raise ProduceError(
            f"producing to {', '.join(topics)} lost messages: "
            + "; ".join(problems)
            + f" ({report.delivered} delivered)",
            report,
        )
    logger.info(
        "delivered %d messages (%d applications, %d outcomes, %d duplicates, %d poison) in "
        "%.2fs: %.0f msgs/s (generation %.2fs)%s",
        report.delivered,
        report.applications,
        report.outcomes,
        report.duplicates,
        report.poison,
        seconds,
        report.msgs_per_s,
        generation_seconds,
        " (interrupted)" if interrupted else "",
    )
    return report


class _Sender:
    """``producer.produce`` with delivery counting, ``BufferError`` back-off and progress."""

    def __init__(self, producer: Producer, progress: Callable[[int], None] | None) -> None:
        self.producer = producer
        self.progress = progress
        self.deliveries = DeliveryCounter()
        self.sent = 0
        self.counts = {"application": 0, "duplicate": 0, "poison": 0, "outcome": 0}

    def send(
        self, kind: str, topic: str, key: bytes, value: bytes, headers: contracts.Headers
    ) -> None:
        """Hand one message to librdkafka and count it as ``kind`` (``application``...)."""
        while True:
            try:
                self.producer.produce(
                    topic, value, key, headers=headers, on_delivery=self.deliveries
                )
                break
            except BufferError:  # local queue full: let librdkafka drain it
                self.producer.poll(0.05)
        self.counts[kind] += 1
        self.sent += 1
        if self.sent % POLL_EVERY == 0:
            self.producer.poll(0)
        if self.progress is not None and self.sent % PROGRESS_EVERY == 0:
            self.progress(self.sent)

    def wait_until(self, due_s: float) -> None:
        """Serve delivery reports until the wall clock reaches ``due_s`` (epoch seconds)."""
        while (left := due_s - time.time()) > 0:
            self.producer.poll(min(left, 0.5))


def _send_applications(
    sender: _Sender,
    encoder: AvroEncoder,
    topic: str,
    applications: Iterable[dict[str, Any]],
    count: int,
    plan: Mapping[int, list[tuple[str, int]]],
    ids: list[str],
    rate: float | None,
) -> None:
    """Send ``count`` applications, with the duplicates and poison of ``plan`` in their slots."""
    headers = encoder.headers
    encode = encoder.__call__
    send = sender.send
    shaping: bool | None = None
    sources = {source for extras in plan.values() for kind, source in extras if kind == "duplicate"}
    kept: dict[int, tuple[bytes, bytes]] = {}
    for i, app in enumerate(applications):
        if i >= count:
            break
        if shaping is None:
            encoder.check(app)
            shaping = encoder.shape(app) != app  # v1: drop v2's fields, say "1" in metadata
        if rate is not None:
            sender.wait_until(app["data_solicitacao"] / 1000.0)
        app_id = app["id_solicitacao"]
        key = app_id.encode()
        value = encode(encoder.shape(app) if shaping else app)
        ids.append(app_id)  # before sending: trimmed to the count sent on interrupt
        send("application", topic, key, value, headers)
        if i in sources:
            kept[i] = (key, value)
        for kind, which in plan.get(i, ()):
            if kind == "duplicate":
                send(kind, topic, *kept[which], headers)
            else:
                send(kind, topic, f"poison-{which}".encode(), poison_payload(app), headers)


def _send_outcomes(
    sender: _Sender, encoder: AvroEncoder, topic: str, outcomes: Sequence[Mapping[str, Any]]
) -> None:
    if outcomes:
        encoder.check(outcomes[0])
    headers = encoder.headers
    encode = encoder.__call__
    send = sender.send
    for outcome in outcomes:
        send("outcome", topic, outcome["id_solicitacao"].encode(), encode(outcome), headers)
