"""Write–audit–publish for silver and gold: a layer's new data is seen downstream only once its
gate passed.

dbt writes a layer's tables on their ``main`` branch; the layer's dbt tests and quality gate then
audit that state. Every reader downstream (gold's dbt models, Feast, the training set, drift)
reads the Iceberg tag :data:`safra.lakehouse.PUBLISHED` instead of ``main``
(``FOR VERSION AS OF 'published'``), and only :func:`publish` moves that tag, after a passed audit.

A failed audit (a dbt error or failed test, a failed gate, a gate that could not run)
:func:`quarantine`\\ s the batch: the snapshot dbt wrote is kept under a tag
``quarantine-<layer>-<UTC time>`` (query it with ``FOR VERSION AS OF``; it expires after
:data:`QUARANTINE_DAYS` once snapshots are expired) and ``main`` is rolled back to the snapshot
the run started from. Bronze is never touched, and silver's incremental runs read the bronze
rows ingested after silver's newest row: fixing the cause and running the layer again reads the
same batch again and publishes it. Nothing is lost.

Why tags and a rollback rather than an Iceberg branch (write to ``audit``, fast-forward
``main``) or staging tables: dbt-trino and Trino 476 write to ``main`` only, and a staging copy
of an incremental table costs a copy of the table per run. A tag costs a metadata commit, and
readers of the tag never see an unaudited row — not even while the gate runs.

Each table also records the audit's verdict in its properties (``safra.audit.*``: status, time,
reason, report, quarantine tag), which :func:`require_published` reads: ``transform --layer
gold`` refuses to run on a silver whose newest batch is not published, and says why.

Ref changes go through the Iceberg REST catalog (pyiceberg), not Trino: a gate that failed
because Trino is down still quarantines its batch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from safra.lakehouse import PUBLISHED, iceberg_catalog
from safra.settings import Settings

if TYPE_CHECKING:
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

#: The tables dbt builds in each layer (tests/unit checks them against dbt/models/<layer>/).
LAYER_TABLES: dict[str, tuple[str, ...]] = {
    "silver": ("silver_applications", "silver_outcomes"),
    "gold": ("proponente_features", "location_features", "risk_features"),
}

QUARANTINE_PREFIX = "quarantine-"
QUARANTINE_DAYS = 30
"""How long a quarantined batch's tag keeps its snapshot from expiring."""

STATUS, AT, REASON, REPORT, QUARANTINE = (
    f"safra.audit.{name}" for name in ("status", "at", "reason", "report", "quarantine")
)


class Unpublished(RuntimeError):
    """A layer holds data its audit has not passed: nothing may read past it."""


@dataclass(frozen=True)
class Quarantined:
    """What :func:`quarantine` did to one table."""

    table: str
    tag: str | None
    rolled_back_to: int | None


def _tables(settings: Settings, schema: str, layer: str) -> dict[str, Table | None]:
    """The layer's tables (None for one that does not exist), through one catalog client."""
    from pyiceberg.exceptions import NoSuchTableError

    catalog = iceberg_catalog(settings)
    out: dict[str, Table | None] = {}
    for name in LAYER_TABLES[layer]:
        try:
            out[name] = catalog.load_table((schema, name))
        except NoSuchTableError:
            out[name] = None
    return out


def current_snapshots(settings: Settings, schema: str, layer: str) -> dict[str, int | None]:
    """Each of the layer's tables' current snapshot id (None: no table or no snapshot yet)."""
    out: dict[str, int | None] = {}
    for name, table in _tables(settings, schema, layer).items():
        snapshot = table.current_snapshot() if table is not None else None
        out[name] = snapshot.snapshot_id if snapshot is not None else None
    return out


def _verdict(status: str, reason: str = "", report: str = "", tag: str = "") -> dict[str, str]:
    """The audit's outcome as table properties."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {STATUS: status, AT: now, REASON: reason[:2000], REPORT: report, QUARANTINE: tag}


def publish(settings: Settings, schema: str, layer: str, report: str = "") -> dict[str, int]:
    """Point every table's :data:`PUBLISHED` tag at its current snapshot and record the passed
    audit. Returns the published snapshot id per table."""
    from pyiceberg.table.update.snapshot import ManageSnapshots

    published: dict[str, int] = {}
    for name, table in _tables(settings, schema, layer).items():
        snapshot = table.current_snapshot() if table is not None else None
        if table is None or snapshot is None:
            raise Unpublished(f"{schema}.{name} has no snapshot to publish (dbt built nothing?)")
        with table.transaction() as tx:
            ManageSnapshots(tx).create_tag(snapshot.snapshot_id, PUBLISHED).commit()
            tx.set_properties(_verdict("passed", report=report))
        published[name] = snapshot.snapshot_id
    log.info("%s published: %s", schema, published)
    return published


def quarantine(
    settings: Settings,
    schema: str,
    layer: str,
    before: Mapping[str, int | None],
    reason: str,
    report: str = "",
) -> list[Quarantined]:
    """Keep what this run wrote under a quarantine tag and roll ``main`` back to ``before`` (the
    snapshots the run started from); record the failed audit on every table of the layer.

    A table the run created (no snapshot before) is emptied instead of rolled back, so the
    next run reads its whole input again. Tables the run did not change are only marked.
    """
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.table.update.snapshot import ManageSnapshots

    tag = f"{QUARANTINE_PREFIX}{layer}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
    done: list[Quarantined] = []
    for name, table in _tables(settings, schema, layer).items():
        if table is None:
            continue
        snapshot = table.current_snapshot()
        start = before.get(name)
        changed = snapshot is not None and snapshot.snapshot_id != start
        if changed and start is not None and table.snapshot_by_id(start) is None:
            start = None  # the run replaced the table (full refresh): nothing to roll back to
        with table.transaction() as tx:
            if changed and snapshot is not None:
                ManageSnapshots(tx).create_tag(
                    snapshot.snapshot_id, tag, max_ref_age_ms=QUARANTINE_DAYS * 86_400_000
                ).commit()
                if start is not None:
                    ManageSnapshots(tx).set_current_snapshot(snapshot_id=start).commit()
            tx.set_properties(_verdict("failed", reason, report, tag if changed else ""))
        if changed and start is None:
            table.refresh().delete(AlwaysTrue())  # every row: the next run starts from scratch
        done.append(Quarantined(name, tag if changed else None, start if changed else None))
    log.error("%s: audit failed (%s); quarantined %s", schema, reason, done)
    return done


def require_published(settings: Settings, schema: str, layer: str) -> dict[str, int]:
    """The layer's published snapshot per table, when everything in it is published.

    Raises :class:`Unpublished` saying why not: a table missing or never published, a batch
    whose audit failed (with the quarantine tag and the report), or changes on ``main`` that no
    audit has passed yet (a run killed before its gate, a gate that could not record its verdict).
    """
    published: dict[str, int] = {}
    fix = f"fix the cause and run `safra transform --layer {layer}`"
    for name, table in _tables(settings, schema, layer).items():
        if table is None:
            raise Unpublished(f"{schema}.{name} does not exist: run `safra transform` first")
        props = table.properties
        if props.get(STATUS) == "failed":
            quarantined = props.get(QUARANTINE)
            where = f"; the batch is kept as tag '{quarantined}'" if quarantined else ""
            report = f"; report: {props[REPORT]}" if props.get(REPORT) else ""
            raise Unpublished(
                f"{schema}.{name}: the {layer} audit of {props.get(AT)} failed "
                f"({props.get(REASON)}){where}{report}. Nothing newer is published: {fix}"
            )
        ref = table.metadata.refs.get(PUBLISHED)
        if ref is None:
            raise Unpublished(f"{schema}.{name} has never passed its {layer} audit: {fix}")
        current = table.current_snapshot()
        if current is not None and current.snapshot_id != ref.snapshot_id:
            raise Unpublished(
                f"{schema}.{name} holds changes no audit has passed (snapshot "
                f"{current.snapshot_id}, published {ref.snapshot_id}): {fix}"
            )
        published[name] = ref.snapshot_id
    return published


def quarantine_tags(settings: Settings, schema: str, layer: str) -> dict[str, list[str]]:
    """The quarantine tags each table of the layer keeps (for reports and tests)."""
    out: dict[str, list[str]] = {}
    for name, table in _tables(settings, schema, layer).items():
        if table is not None:
            out[name] = sorted(r for r in table.metadata.refs if r.startswith(QUARANTINE_PREFIX))
    return out
