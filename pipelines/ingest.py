"""Ingestion: Kafka topics into the Iceberg bronze tables with Spark Structured Streaming.

One source per topic (applications, outcomes, scored requests). Each message's writer version
travels in its ``schema.version`` header; the value is schemaless Avro, decoded with
``from_avro`` and that version's writer schema, then aligned to the newest shape (fields the
writer did not have get the newest schema's defaults). Timestamps stay epoch milliseconds:
the schemas handed to ``from_avro`` have their ``logicalType`` stripped, so Spark reads longs.

Messages that cannot be decoded (bytes that are not Avro of the announced version, a missing or
unknown version, a header naming another subject, a null value) go to ``rejected_records`` with
their raw key and value, their Kafka coordinates and the reason. Nothing is dropped silently.

Each (topic, target table) pair is its own streaming query with its own checkpoint, writing
through Iceberg's streaming sink: a restart after a crash neither loses nor repeats a row
(Spark's offset log plus Iceberg's per-query epoch check). Checkpoints live under
``<data_dir>/checkpoints/ingest/<namespace>/<table>/<topic>/{bronze,rejected}``.

Two guards keep that true when a run is killed (``kill -9``) and restarted at once:

- Iceberg names a streaming data file ``<partition>-<task id>-<query id>-<epoch>-<n>``. The
  query id comes from the checkpoint and Spark's task ids restart at 0 in a new JVM, so a
  restart that replays an epoch the killed run had already committed to Iceberg (killed before
  Spark recorded the commit) writes the very paths that epoch's committed files have, over
  them. So each run writes its data files into a folder of its own
  (``<table>/data/run-<run id>``, through the table's ``write.data.path``).
- Each checkpoint is locked by the run using it (:mod:`pipelines.checkpoint_lock`): a second
  run on it is refused, and a run after a killed one waits for the killed run's JVM to exit.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pipelines.bronze import NAMESPACE, ensure_bronze_tables
from pipelines.checkpoint_lock import DEFAULT_JVM_GRACE_S, checkpoint_locks
from safra.contracts import (
    HEADER_SUBJECT,
    HEADER_VERSION,
    LATEST,
    VERSIONS,
    schema_text,
    schema_without_logical_types,
)
from safra.kafka_clients import spark_options
from safra.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)
T = TypeVar("T")

REJECTED_TABLE = "rejected_records"
#: Upper bound of Kafka records per micro-batch (per query), so a large backlog drains in
#: several commits instead of one huge batch.
DEFAULT_MAX_OFFSETS_PER_TRIGGER = 500_000
_POLL_S = 2.0


@dataclass(frozen=True)
class Source:
    """A Kafka topic, the Avro subject its values follow and the bronze table it lands in."""

    name: str
    subject: str
    table: str
    topic: str


def sources(settings: Settings) -> dict[str, Source]:
    """The ingestion sources, keyed by name (the bronze table's name)."""
    return {
        "applications": Source(
            "applications", "application", "applications", settings.topic_applications
        ),
        "outcomes": Source("outcomes", "outcome", "outcomes", settings.topic_outcomes),
        "scored_requests": Source(
            "scored_requests", "scored_request", "scored_requests", settings.topic_scored_requests
        ),
    }


def select_sources(
    settings: Settings, topics: Sequence[str] | Mapping[str, str] | None = None
) -> list[Source]:
    """The sources to ingest. ``None``: all three, from the settings' topics.

    A sequence names sources (``applications``), configured topic names
    (``safra.applications``) or overrides (``applications=my-topic``); a mapping is
    ``{source name: topic}``.
    """
    known = sources(settings)
    if topics is None:
        return list(known.values())
    pairs: list[tuple[str, str | None]]
    if isinstance(topics, Mapping):
        pairs = list(topics.items())
    else:
        pairs = []
        for item in topics:
            name, sep, override = item.partition("=")
            pairs.append((name.strip(), override.strip() if sep else None))
    by_topic = {source.topic: source for source in known.values()}
    chosen: dict[str, Source] = {}
    for name, topic in pairs:
        if name in known:
            base = known[name]
        elif topic is None and name in by_topic:
            base = by_topic[name]
        else:
            raise ValueError(
                f"unknown ingestion source {name!r}; known: {', '.join(known)} "
                f"(or their topics: {', '.join(by_topic)}), optionally as name=topic"
            )
        chosen[base.name] = Source(base.name, base.subject, base.table, topic or base.topic)
    return list(chosen.values())


# --- decoding ---------------------------------------------------------------------------------


def writer_schema_json(subject: str, version: int) -> str:
    """The writer schema handed to ``from_avro``: timestamps as plain longs (epoch ms)."""
    return json.dumps(schema_without_logical_types(subject, version))


def _header(name: str) -> Column:
    """The first value of Kafka header ``name`` as a string (null when absent)."""
    from pyspark.sql import functions as F

    matching = F.filter("headers", lambda h: h["key"] == F.lit(name))
    return F.try_element_at(matching, F.lit(1))["value"].cast("string")


def _aligned(decoded: Column, subject: str, version: int) -> Column:
    """A struct of ``subject``'s newest shape from a record decoded with writer ``version``:
    fields the writer did not have take the newest schema's defaults."""
    from pyspark.sql import functions as F

    writer = {f["name"] for f in json.loads(schema_text(subject, version))["fields"]}
    fields = []
    for spec in json.loads(schema_text(subject, LATEST[subject]))["fields"]:
        name = spec["name"]
        if name in writer:
            fields.append(decoded[name].alias(name))
        elif "default" in spec and not isinstance(spec["default"], dict | list):
            fields.append(F.lit(spec["default"]).alias(name))
        else:
            fields.append(F.lit(None).alias(name))
    return F.struct(*fields)


def _required_field(subject: str, version: int) -> str | None:
    """A top-level field that is never null in a record decoded with this writer schema."""
    for spec in json.loads(schema_text(subject, version))["fields"]:
        kind = spec["type"]
        if not (kind == "null" or (isinstance(kind, list) and "null" in kind)):
            return str(spec["name"])
    return None


def _undecodable(decoded: Column, subject: str, version: int) -> Column:
    """True when ``from_avro`` (PERMISSIVE) gave up: Spark then yields a null struct or, for
    records, a struct whose fields are all null; a never-null field being null tells."""
    required = _required_field(subject, version)
    return decoded.isNull() if required is None else decoded.isNull() | decoded[required].isNull()


def decoded_stream(raw: DataFrame, subject: str) -> DataFrame:
    """Kafka rows with the decoded record (``record``, newest shape) or the reason they cannot
    be decoded (``error``), plus ``version`` (the header as sent) and the Kafka columns."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    versions = VERSIONS[subject]
    known = ", ".join(str(v) for v in versions)
    staged = raw.select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        "timestamp",
        _header(HEADER_VERSION).alias("version"),
        _header(HEADER_SUBJECT).alias("subject"),
    )
    subject_ok = F.col("subject").isNull() | (F.col("subject") == F.lit(subject))
    # One from_avro per known version, evaluated only on the rows written with it; a separate
    # projection so that the decoding runs once per row, not once per field read below.
    staged = staged.select(
        "*",
        *(
            F.when(
                (F.col("version") == F.lit(str(v))) & subject_ok,
                from_avro(F.col("value"), writer_schema_json(subject, v), {"mode": "PERMISSIVE"}),
            ).alias(f"_v{v}")
            for v in versions
        ),
    )
    error = (
        F.when(F.col("version").isNull(), F.lit(f"missing {HEADER_VERSION} header"))
        .when(
            ~F.col("version").isin([str(v) for v in versions]),
            F.format_string(
                f"unknown schema version '%s' for {subject} (known: {known})", "version"
            ),
        )
        .when(
            ~subject_ok,
            F.format_string(
                f"{HEADER_SUBJECT} '%s' does not belong on this topic (expects '{subject}')",
                "subject",
            ),
        )
        .when(F.col("value").isNull(), F.lit(f"null value (tombstone) for {subject}"))
    )
    record: Column | None = None
    for v in versions:
        branch = _aligned(F.col(f"_v{v}"), subject, v)
        is_v = F.col("version") == F.lit(str(v))
        record = F.when(is_v, branch) if record is None else record.when(is_v, branch)
        error = error.when(
            is_v & _undecodable(F.col(f"_v{v}"), subject, v),
            F.lit(f"undecodable Avro for {subject} v{v}"),
        )
    assert record is not None
    return staged.select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        "timestamp",
        "version",
        record.alias("record"),
        error.alias("error"),
    )


def _kafka_stream(
    spark: SparkSession, settings: Settings, topic: str, max_offsets: int | None
) -> DataFrame:
    reader = (
        spark.readStream.format("kafka")
        .options(**spark_options(settings))  # brokers and credentials
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "false")
        .option("includeHeaders", "true")
    )
    if max_offsets:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets))
    return reader.load()


def bronze_rows(decoded: DataFrame, columns: Sequence[str]) -> DataFrame:
    """The decoded rows, flattened into the bronze table's ``columns`` (in that order)."""
    from pyspark.sql import functions as F

    kafka = {
        "kafka_topic": F.col("topic"),
        "kafka_partition": F.col("partition"),
        "kafka_offset": F.col("offset"),
        "kafka_timestamp": F.col("timestamp"),
        "kafka_key": F.col("key").cast("string"),
        "schema_version": F.col("version").cast("int"),
        "ingested_at": F.current_timestamp(),
    }
    return decoded.where(F.col("error").isNull()).select(
        *((kafka[c] if c in kafka else F.col("record")[c]).alias(c) for c in columns)
    )


def rejected_rows(decoded: DataFrame) -> DataFrame:
    """The rows that did not decode, raw, with their coordinates and the reason."""
    from pyspark.sql import functions as F

    return decoded.where(F.col("error").isNotNull()).select(
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key").alias("kafka_key"),
        F.col("value").alias("raw_value"),
        F.col("version").alias("schema_version"),
        F.col("error"),
        F.current_timestamp().alias("ingested_at"),
    )


# --- running ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestQuery:
    """One streaming query: a topic into one table, with its own checkpoint."""

    name: str
    source: Source
    table: str  # namespace.table
    checkpoint: Path


@dataclass
class IngestReport:
    """What one run added: rows per table (``namespace.table``) and per query, from the Iceberg
    snapshots the run's queries committed."""

    rows: dict[str, int] = field(default_factory=dict)
    rows_by_query: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def plan_queries(
    settings: Settings,
    chosen: Sequence[Source],
    namespace: str = NAMESPACE,
    checkpoint_root: Path | None = None,
) -> list[IngestQuery]:
    """The (topic, table) queries of a run: per source, one into its table, one into rejects."""
    root = checkpoint_root or settings.checkpoints_dir / "ingest" / namespace
    planned = []
    for source in chosen:
        base = root / source.table / source.topic
        planned.append(
            IngestQuery(
                f"ingest:{source.topic}->{namespace}.{source.table}",
                source,
                f"{namespace}.{source.table}",
                base / "bronze",
            )
        )
        planned.append(
            IngestQuery(
                f"ingest:{source.topic}->{namespace}.{REJECTED_TABLE}",
                source,
                f"{namespace}.{REJECTED_TABLE}",
                base / "rejected",
            )
        )
    return planned


def _start(
    spark: SparkSession,
    settings: Settings,
    planned: IngestQuery,
    once: bool,
    trigger_s: float,
    max_offsets: int | None,
) -> StreamingQuery:
    target = f"{settings.iceberg_catalog}.{planned.table}"
    decoded = decoded_stream(
        _kafka_stream(spark, settings, planned.source.topic, max_offsets), planned.source.subject
    )
    if planned.table.endswith(f".{REJECTED_TABLE}"):
        rows = rejected_rows(decoded)
    else:
        rows = bronze_rows(decoded, spark.table(target).columns)
    planned.checkpoint.mkdir(parents=True, exist_ok=True)
    writer = (
        rows.writeStream.format("iceberg")
        .outputMode("append")
        .queryName(planned.name)
        .option("checkpointLocation", str(planned.checkpoint))
        .option("fanout-enabled", "true")
        # Spark types Kafka's topic/partition/offset as nullable; they never are, and the
        # tables declare them NOT NULL.
        .option("check-nullability", "false")
    )
    writer = (
        writer.trigger(availableNow=True)
        if once
        else writer.trigger(processingTime=f"{trigger_s} seconds")
    )
    query = writer.toTable(target)
    log.info("started %s (checkpoint %s)", planned.name, planned.checkpoint)
    return query


def new_run_id(now: datetime | None = None) -> str:
    """A unique, time-ordered id for one ingestion run, e.g. ``20261120T225100Z-1a2b3c4d``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run_data_path(table_location: str, run_id: str) -> str:
    """The folder a run writes a table's data files into: ``<location>/data/run-<run id>``."""
    if not table_location or not run_id:
        raise ValueError(f"need a table location and a run id, got {table_location!r}, {run_id!r}")
    return f"{table_location.rstrip('/')}/data/run-{run_id}"


def _use_run_data_folders(
    spark: SparkSession, settings: Settings, tables: set[str], run_id: str
) -> None:
    """Point each table's ``write.data.path`` at this run's own folder (see the module doc):
    no file this run writes can have the path of a file an earlier run wrote."""
    from safra.lakehouse import iceberg_catalog

    catalog = iceberg_catalog(settings)
    for table in sorted(tables):
        path = run_data_path(catalog.load_table(table).location(), run_id)
        # Through Spark's catalog, so that its cached table sees the new location at once.
        spark.sql(
            f"ALTER TABLE {settings.iceberg_catalog}.{table} "
            f"SET TBLPROPERTIES ('write.data.path' = '{path}')"
        )
        log.info("%s: this run writes its data files into %s", table, path)


def _snapshot_ids(settings: Settings, tables: set[str]) -> dict[str, set[int]]:
    from safra.lakehouse import iceberg_catalog

    catalog = iceberg_catalog(settings)
    return {t: {s.snapshot_id for s in catalog.load_table(t).snapshots()} for t in tables}


def _added_rows(
    settings: Settings, before: Mapping[str, set[int]], query_ids: Mapping[str, str]
) -> dict[str, int]:
    """Rows per query name, summed from the ``added-records`` of the snapshots each query
    committed since ``before`` (Iceberg's sink tags them with the streaming query id)."""
    from safra.lakehouse import iceberg_catalog

    catalog = iceberg_catalog(settings)
    by_id = {query_id: name for name, query_id in query_ids.items()}
    added = dict.fromkeys(query_ids, 0)
    for table, known in before.items():
        for snapshot in catalog.load_table(table).snapshots():
            if snapshot.snapshot_id in known or snapshot.summary is None:
                continue
            name = by_id.get(snapshot.summary["spark.sql.streaming.queryId"] or "")
            if name is not None:
                added[name] += int(snapshot.summary["added-records"] or 0)
    return added


class _Progress:
    """Logs each new micro-batch of each query once."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.batches = 0

    def log(self, queries: Mapping[str, StreamingQuery]) -> None:
        for name, query in queries.items():
            for progress in query.recentProgress:
                batch = progress.batchId
                if batch <= self.seen.get(name, -1):
                    continue
                self.seen[name] = batch
                self.batches += 1
                rows = progress.numInputRows
                level = logging.INFO if rows else logging.DEBUG
                log.log(
                    level,
                    "%s batch %d: %d Kafka records (%.0f rows/s)",
                    name,
                    batch,
                    rows,
                    progress.processedRowsPerSecond or 0.0,
                )


@contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """Turn SIGTERM into ``stop`` while inside (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        log.info("SIGTERM: stopping ingestion")
        stop.set()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _retrying(what: str, action: Callable[[], T], attempts: int = 6) -> T:
    """``action()``, retried with backoff: the catalog may refuse a request for a moment (the
    local REST catalog answers 500 when its SQLite file is busy). Only for idempotent actions."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts:
                raise
            delay = min(2.0**attempt, 30.0)
            log.warning(
                "%s failed (%s); retry %d in %.0f s", what, _first_line(exc), attempt, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0][:300] if str(error).strip() else repr(error)


def run_ingest(
    settings: Settings | None = None,
    once: bool = False,
    trigger_s: float | None = None,
    topics: Sequence[str] | Mapping[str, str] | None = None,
    *,
    namespace: str = NAMESPACE,
    checkpoint_root: Path | None = None,
    max_offsets_per_trigger: int | None = DEFAULT_MAX_OFFSETS_PER_TRIGGER,
    max_restarts: int = 5,
    stop: threading.Event | None = None,
    spark: SparkSession | None = None,
    jvm_grace_s: float = DEFAULT_JVM_GRACE_S,
) -> IngestReport:
    """Ingest Kafka into bronze. ``once``: drain what the topics hold now and return; else run
    micro-batches every ``trigger_s`` seconds (default ``settings.ingest_trigger_s``) until
    SIGTERM, Ctrl-C or ``stop`` is set, then stop the queries.

    ``topics`` picks sources and may override their topic (see :func:`select_sources`);
    ``namespace`` and ``checkpoint_root`` let tests ingest into bronze tables of their own.
    A query that fails (say, the catalog refused a commit) is restarted from its checkpoint up
    to ``max_restarts`` times: no row is lost or repeated. Tables are created when missing,
    never dropped. Returns the rows this run added per table.

    Raises :class:`~pipelines.checkpoint_lock.CheckpointInUse` when another ingestion runs on
    one of the checkpoints, or when the JVM of a killed one is still alive after
    ``jvm_grace_s`` seconds.
    """
    from pipelines.topics import ensure_topics
    from safra.lakehouse import driver_jvm_pid, spark_session

    s = settings or get_settings()
    trigger_s = s.ingest_trigger_s if trigger_s is None else trigger_s
    stop = stop or threading.Event()
    chosen = select_sources(s, topics)
    planned = {p.name: p for p in plan_queries(s, chosen, namespace, checkpoint_root)}
    tables = {p.table for p in planned.values()}
    run_id = new_run_id()
    began = time.monotonic()
    progress = _Progress()
    queries: dict[str, StreamingQuery] = {}
    mode = "once (available now)" if once else f"every {trigger_s:g} s"
    checkpoints = [p.checkpoint for p in planned.values()]
    # The locks first: a run refused (or waiting for a killed run's JVM) starts no Spark.
    with checkpoint_locks(checkpoints, run_id, jvm_grace_s=jvm_grace_s) as locks:
        spark = spark or spark_session("safra-ingest", s)
        locks.record_jvm(driver_jvm_pid(spark))
        # A source whose topic does not exist yet (nothing scored so far, say) fails Spark's
        # offset lookup: create missing topics first, as the producer does.
        ensure_topics(s, [c.topic for c in chosen])

        def start(name: str) -> StreamingQuery:
            return _start(spark, s, planned[name], once, trigger_s, max_offsets_per_trigger)

        _retrying("creating the bronze tables", lambda: ensure_bronze_tables(spark, s, namespace))
        _retrying(
            "giving the run its own data folders",
            lambda: _use_run_data_folders(spark, s, tables, run_id),
        )
        before = _retrying("reading snapshots", lambda: _snapshot_ids(s, tables))
        log.info("ingesting %s into %s, %s (run %s)", [c.topic for c in chosen], namespace, mode,
                 run_id)  # fmt: skip
        try:
            with _stop_on_sigterm(stop):
                for name in planned:
                    queries[name] = start(name)
                _wait(queries, start, progress, stop, max_restarts)
        except KeyboardInterrupt:
            log.info("interrupted: stopping ingestion")
        finally:
            for name, query in queries.items():
                if query.isActive:
                    query.stop()
                    log.info("stopped %s", name)
            progress.log(queries)

    query_ids = {name: query.id for name, query in queries.items()}
    by_query = _retrying("reading snapshots", lambda: _added_rows(s, before, query_ids))
    rows: dict[str, int] = dict.fromkeys(sorted(tables), 0)
    for name, added in by_query.items():
        rows[planned[name].table] += added
    report = IngestReport(rows, by_query, progress.batches, time.monotonic() - began)
    log.info("ingestion added %s in %.1f s", rows, report.seconds)
    return report


def _wait(
    queries: dict[str, StreamingQuery],
    start: Callable[[str], StreamingQuery],
    progress: _Progress,
    stop: threading.Event,
    max_restarts: int,
) -> None:
    """Until every query ended (``once``) or ``stop`` is set. A failed query is restarted from
    its checkpoint; one that fails more than ``max_restarts`` times fails the run."""
    restarts: dict[str, int] = {}
    while not stop.is_set():
        active = 0
        for name, query in list(queries.items()):
            if query.isActive:
                active += 1
                continue
            error = query.exception()
            if error is None:
                continue
            restarts[name] = restarts.get(name, 0) + 1
            if restarts[name] > max_restarts:
                raise RuntimeError(f"ingestion query {name} failed: {error}")
            delay = min(2.0 ** restarts[name], 30.0)
            log.warning(
                "%s failed (%s); restart %d/%d from its checkpoint in %.0f s",
                name,
                _first_line(error),
                restarts[name],
                max_restarts,
                delay,
            )
            if stop.wait(delay):
                return
            queries[name] = start(name)
            active += 1
        progress.log(queries)
        if not active:
            return
        stop.wait(_POLL_S)
