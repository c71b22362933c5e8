"""Bronze -> silver -> gold: the dbt project, layer by layer, each layer behind its quality gate.

For each layer in order: ``dbt build`` of the layer (incremental models, then their data tests),
then the Great Expectations gate of the layer (``quality.gate.run_gate``), then the layer is
published (:mod:`pipelines.publish`: write–audit–publish). A failed build, a failed gate or a
gate that could not run quarantines the layer's new batch and stops the run before the next
layer; a gold run on its own first checks that silver is published (and refuses, saying why).
Readers downstream read the published state only.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines import publish
from pipelines.dbt_runner import DbtInvocation, ensure_schemas, run_dbt
from safra import locks
from safra.lakehouse import trino_cursor
from safra.locks import Busy
from safra.pseudonyms import check_trino_key
from safra.settings import Settings

if TYPE_CHECKING:
    from quality.gate import GateResult

log = logging.getLogger(__name__)

LAYERS: tuple[str, ...] = ("silver", "gold")

#: what `dbt build` selects for each layer (silver also runs the bronze sources' tests)
LAYER_SELECTORS: dict[str, str] = {
    "silver": "source:bronze path:models/silver",
    "gold": "path:models/gold",
}

#: silver model -> the bronze table it reads
BRONZE_INPUTS: dict[str, str] = {
    "silver_applications": "applications",
    "silver_outcomes": "outcomes",
}

Gate = Callable[..., "GateResult"]


@dataclass(frozen=True)
class ModelRows:
    """Rows one model read (bronze rows for silver, when known) and wrote in this run."""

    model: str
    layer: str
    status: str
    rows_in: int | None
    rows_out: int | None
    seconds: float


@dataclass
class TransformReport:
    """What one transform run did, layer by layer."""

    layers: list[str]
    models: list[ModelRows] = field(default_factory=list)
    test_failures: list[str] = field(default_factory=list)
    test_warnings: list[str] = field(default_factory=list)
    tests_run: int = 0
    gates: dict[str, GateResult] = field(default_factory=dict)
    published: dict[str, dict[str, int]] = field(default_factory=dict)
    quarantined: dict[str, list[publish.Quarantined]] = field(default_factory=dict)
    stopped_at: str | None = None
    reason: str | None = None
    full_refresh: bool = False
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.stopped_at is None

    def rows(self, model: str) -> ModelRows | None:
        return next((m for m in self.models if m.model == model), None)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (for logs, MLflow lineage and the CLI)."""
        return {
            "passed": self.passed,
            "layers": self.layers,
            "full_refresh": self.full_refresh,
            "stopped_at": self.stopped_at,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "models": [m.__dict__ for m in self.models],
            "tests_run": self.tests_run,
            "test_failures": self.test_failures,
            "test_warnings": self.test_warnings,
            "gates": {
                layer: {
                    "passed": g.passed,
                    "critical_failures": list(g.critical_failures),
                    "warnings": list(g.warnings),
                    "report_path": str(g.report_path),
                }
                for layer, g in self.gates.items()
            },
            "published": self.published,
            "quarantined": {
                layer: [q.__dict__ for q in tables] for layer, tables in self.quarantined.items()
            },
        }


LOCK_WAIT_S = 1800.0
"""How long a transform waits for another one on the same schemas before giving up."""


TransformBusy = Busy
"""Another transform of the same schemas held the lock for longer than the wait."""


@contextlib.contextmanager
def exclusive(settings: Settings, prefix: str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """One transform at a time per set of schemas (``prefix``) on this machine.

    Two dbt runs merging the same tables collide (``..._dbt_tmp already exists``; Trino refuses
    concurrent MERGEs into one table), so a second run — the silver and gold DAGs, the demo, a
    hand-run `safra transform` — waits for the first (:func:`safra.locks.exclusive`).
    """
    path = settings.data_dir / "locks" / f"transform-{prefix or 'main'}.lock"
    with locks.exclusive(path, "another transform of these schemas", wait_s):
        yield


class TransformFailed(RuntimeError):
    """A layer's dbt build or quality gate failed; ``report`` says which and why."""

    def __init__(self, report: TransformReport) -> None:
        super().__init__(f"transform stopped at {report.stopped_at}: {report.reason}")
        self.report = report


def _bronze_rows_pending(
    settings: Settings, bronze_schema: str, schema_prefix: str, full_refresh: bool
) -> dict[str, int | None]:
    """Bronze rows the silver models will read: those ingested after silver's newest row
    (all of them on a first run or a full refresh). None when it cannot be counted."""
    import trino

    catalog = settings.iceberg_catalog
    counts: dict[str, int | None] = {}
    with trino_cursor(settings, "safra-transform") as cur:
        cur.execute(
            "select table_name from information_schema.tables where table_schema = ?",
            [f"{schema_prefix}silver"],
        )
        existing = {r[0] for r in cur.fetchall()}
        for model, table in BRONZE_INPUTS.items():
            source = f'{catalog}."{bronze_schema}"."{table}"'
            sql = f"select count(*) from {source}"
            if model in existing and not full_refresh:
                sql += (
                    " where ingested_at > (select coalesce(max(ingested_at), "
                    f"timestamp '1970-01-01 00:00:00 UTC') from "
                    f'{catalog}."{schema_prefix}silver"."{model}")'
                )
            try:
                cur.execute(sql)
                counts[model] = int(cur.fetchall()[0][0])
            except trino.exceptions.TrinoQueryError as exc:
                log.warning("could not count the bronze rows %s will read: %s", model, exc.message)
                counts[model] = None
    return counts


def _record_build(
    report: TransformReport, layer: str, build: DbtInvocation, rows_in: dict[str, int | None]
) -> None:
    for node in build.nodes:
        if node.resource_type == "model":
            report.models.append(
                ModelRows(
                    model=node.name,
                    layer=layer,
                    status=node.status,
                    rows_in=rows_in.get(node.name),
                    rows_out=node.rows_affected,
                    seconds=round(node.seconds, 3),
                )
            )
        elif node.resource_type in {"test", "unit_test"}:
            report.tests_run += 1
            if node.failed:
                report.test_failures.append(f"{node.name}: {node.status}: {node.message}")
            elif node.status == "warn":
                report.test_warnings.append(f"{node.name}: {node.message}")


def _default_gate() -> Gate:
    from quality.gate import run_gate

    return run_gate


def run_transform(
    settings: Settings,
    full_refresh: bool = False,
    select_layers: Sequence[str] = LAYERS,
    *,
    schema_prefix: str | None = None,
    bronze_schema: str | None = None,
    unit_tests: bool = False,
    raise_on_failure: bool = True,
    gate: Gate | None = None,
) -> TransformReport:
    """Build silver then gold with dbt, each followed by its dbt tests and its quality gate.

    ``schema_prefix`` (default ``SAFRA_SCHEMA_PREFIX`` or none) puts the layers in
    ``<prefix>silver`` / ``<prefix>gold``; ``bronze_schema`` (default ``SAFRA_BRONZE_SCHEMA`` or
    ``bronze``) is where the sources are read. ``full_refresh`` rebuilds the incremental models
    from all of bronze. ``unit_tests`` also runs the project's dbt unit tests (they are CI's
    business; off by default). ``gate`` replaces ``quality.gate.run_gate`` (tests only).

    Stops at the first failing build or gate: raises :class:`TransformFailed` carrying the
    report (or, with ``raise_on_failure=False``, returns it with ``passed`` false). Before
    silver, :func:`safra.pseudonyms.check_trino_key` makes sure Trino pseudonymizes with
    ``SAFRA_PSEUDONYM_KEY`` (a ValueError naming the fix otherwise).
    """

    unknown = [layer for layer in select_layers if layer not in LAYERS]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; known: {list(LAYERS)}")
    if "silver" in select_layers:  # Trino pseudonymizes: with Safra's plugin and this key
        check_trino_key(settings)
    prefix = schema_prefix if schema_prefix is not None else settings.schema_prefix
    bronze = bronze_schema or settings.bronze_schema
    run_gate = gate or _default_gate()
    layers = [layer for layer in LAYERS if layer in select_layers]
    with exclusive(settings, prefix):
        return _transform(
            settings, layers, prefix, bronze, full_refresh, unit_tests, raise_on_failure, run_gate
        )


def _transform(
    settings: Settings,
    layers: list[str],
    prefix: str,
    bronze: str,
    full_refresh: bool,
    unit_tests: bool,
    raise_on_failure: bool,
    run_gate: Gate,
) -> TransformReport:
    report = TransformReport(layers=layers, full_refresh=full_refresh)
    began = time.perf_counter()
    ensure_schemas(settings, [f"{prefix}{layer}" for layer in layers])

    def stop(where: str, reason: str) -> TransformReport:
        report.stopped_at, report.reason = where, reason
        report.seconds = time.perf_counter() - began
        log.error("transform stopped at %s: %s", where, reason)
        if raise_on_failure:
            raise TransformFailed(report)
        return report

    def quarantine(layer: str, before: dict[str, int | None], where: str, reason: str,
                   report_path: str = "") -> TransformReport:  # fmt: skip
        schema = f"{prefix}{layer}"
        try:
            report.quarantined[layer] = publish.quarantine(
                settings, schema, layer, before, reason, report_path
            )
        except Exception as exc:  # the catalog is down too: the layer stays unpublished
            reason += f"; could not quarantine the batch ({exc}): {schema} stays unpublished"
        return stop(where, reason)

    for layer in layers:
        schema = f"{prefix}{layer}"
        if layer == "gold" and "silver" not in layers:
            try:
                publish.require_published(settings, f"{prefix}silver", "silver")
            except publish.Unpublished as exc:
                return stop("gold: silver is not published", str(exc))
        before = publish.current_snapshots(settings, schema, layer)
        rows_in: dict[str, int | None] = {}
        if layer == "silver":
            rows_in = _bronze_rows_pending(settings, bronze, prefix, full_refresh)
        # cautious: a test runs with the layer only when all it reads is in the layer (a gold
        # relationship test to silver waits for gold)
        args = ["build", "--select", LAYER_SELECTORS[layer], "--indirect-selection", "cautious"]
        if full_refresh:
            args.append("--full-refresh")
        if not unit_tests:
            args += ["--exclude-resource-type", "unit_test"]
        build = run_dbt(args, settings, bronze_schema=bronze, schema_prefix=prefix)
        _record_build(report, layer, build, rows_in)
        if not build.success:
            reason = "; ".join(build.failures()) or "dbt build failed"
            return quarantine(layer, before, f"{layer} dbt build", reason)

        try:
            result = run_gate(layer, settings, schema_prefix=prefix)
        except Exception as exc:  # a gate that cannot run (Trino down...) has not passed
            return quarantine(
                layer, before, f"{layer} quality gate", f"the gate could not run: {exc}"
            )
        report.gates[layer] = result
        if not result.passed:
            reason = "; ".join(result.critical_failures)
            return quarantine(
                layer, before, f"{layer} quality gate", reason, str(result.report_path)
            )
        report.published[layer] = publish.publish(settings, schema, layer, str(result.report_path))
        log.info(
            "%s: built, passed its gate (%d warnings), published",
            layer,
            len(getattr(result, "warnings", [])),
        )

    report.seconds = time.perf_counter() - began
    log.info("transform done in %.1fs: %s", report.seconds, [m.__dict__ for m in report.models])
    return report
