"""Bronze of a test's or a benchmark's own, without Kafka or Spark: tables created through Trino
with the columns of :mod:`pipelines.bronze`, events appended through pyiceberg with the Kafka
coordinates ingestion would have given them, and a namespace ingestion wrote to removed with its
files and checkpoints. Never used on the real bronze.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pipelines import bronze
from pipelines.ingest import sources
from safra.contracts import LATEST
from safra.lakehouse import iceberg_catalog, trino_query
from safra.settings import Settings

#: Kafka partitions of the made-up coordinates.
PARTITIONS = 3
SOURCE = "safra-bronze-seed"


def create_bronze(
    settings: Settings, schema: str, tables: Iterable[str] = ("applications", "outcomes")
) -> None:
    """Create ``schema`` and its bronze ``tables`` (when missing) through Trino. Unpartitioned:
    pyiceberg appends to ``months()`` partitions only with pyiceberg-core."""
    cat = settings.iceberg_catalog
    trino_query(settings, f'create schema if not exists {cat}."{schema}"', source=SOURCE)
    for table in tables:
        columns = ",\n    ".join(bronze.trino_columns(table))
        trino_query(
            settings,
            f'create table if not exists {cat}."{schema}"."{table}" (\n    {columns}\n) '
            "with (format_version = 2)",
            source=SOURCE,
        )


class BronzeWriter:
    """Appends events to one bronze table as ingestion would have landed them: each key always in
    the same partition (md5 of the key modulo :data:`PARTITIONS`), offsets growing per
    partition, the writer's schema version (an application without ``id_solicitacao`` was written
    with v1), now as the Kafka and ingestion time. ``keep_rows`` keeps every row written (with
    its coordinates) in :attr:`rows`."""

    def __init__(
        self,
        settings: Settings,
        schema: str,
        table: str,
        topic: str | None = None,
        keep_rows: bool = False,
    ) -> None:
        source = sources(settings)[table]
        self.table = iceberg_catalog(settings).load_table(f"{schema}.{table}")
        self.topic = topic or source.topic
        self.subject = source.subject
        self.next_offset = [0] * PARTITIONS
        self.keep_rows = keep_rows
        self.rows: list[dict[str, Any]] = []

    def append(
        self, events: Sequence[Mapping[str, Any]], keys: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Append ``events`` with their Kafka ``keys`` in one commit; returns the rows written."""
        import pyarrow as pa

        now = datetime.now(UTC)
        rows = []
        for event, key in zip(events, keys, strict=True):
            partition = int(hashlib.md5(key.encode()).hexdigest(), 16) % PARTITIONS
            offset = self.next_offset[partition]
            self.next_offset[partition] += 1
            v1 = self.subject == "application" and event.get("id_solicitacao") == ""
            rows.append({
                **event,
                "kafka_topic": self.topic,
                "kafka_partition": partition,
                "kafka_offset": offset,
                "kafka_timestamp": now,
                "kafka_key": key,
                "schema_version": 1 if v1 else LATEST[self.subject],
                "ingested_at": now,
            })  # fmt: skip
        self.table.append(pa.Table.from_pylist(rows, schema=self.table.schema().as_arrow()))
        if self.keep_rows:
            self.rows.extend(rows)
        return rows


def drop_ingested(settings: Settings, namespace: str) -> None:
    """Remove bronze ``namespace`` that ingestion wrote to: its tables, their files and the
    ingestion's checkpoints (``<checkpoints>/ingest/<namespace>``)."""
    catalog = iceberg_catalog(settings)
    if catalog.namespace_exists(namespace):
        for identifier in catalog.list_tables(namespace):
            location = catalog.load_table(identifier).location()
            catalog.drop_table(identifier)
            if location.startswith("file://"):
                shutil.rmtree(location.removeprefix("file://"), ignore_errors=True)
        catalog.drop_namespace(namespace)
    shutil.rmtree(settings.checkpoints_dir / "ingest" / namespace, ignore_errors=True)
