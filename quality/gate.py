"""The quality gate: run a layer's Great Expectations suites where the data lives (Trino) and
decide whether the pipeline may go on.

A failed *critical* expectation fails the gate (the caller stops the pipeline); a failed
*warning* is only reported. Every run writes an HTML report under
``settings.reports_dir / "quality"``.

Expectations run through GX Core's SQL data source on Trino (SQLAlchemy, ``trino://``): GX
compiles each metric to SQL, so no table is pulled into pandas. Each Trino query costs a few
hundred milliseconds whatever the table size, and GX resolves one suite's metrics one query at a
time, so the gate splits every table's suite into small chunks and validates them concurrently,
each chunk in its own ephemeral GX context (contexts are not shared between threads).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import great_expectations as gx
import sqlalchemy as sa
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.datasource.fluent.interfaces import TestConnectionError
from great_expectations.expectations import Expectation
from great_expectations.expectations.row_conditions import deserialize_row_condition

from quality.report import ExpectationOutcome, write_report
from quality.suites import bronze, gold, silver
from safra.lakehouse import (
    trino_ca_environment,
    trino_sqlalchemy_connect_args,
    trino_sqlalchemy_url,
)
from safra.settings import Settings, temporary_environment

log = logging.getLogger(__name__)

LAYERS: dict[str, Callable[[], dict[str, list[Expectation]]]] = {
    "bronze": bronze.expectations,
    "silver": silver.expectations,
    "gold": gold.expectations,
}

#: Expectations per concurrent GX validation, and how many run at once.
CHUNK_SIZE = 6
MAX_WORKERS = 8
#: Unexpected values kept per expectation for the report (never for ``sensitive`` ones).
SAMPLE_SIZE = 5


@dataclass
class GateResult:
    layer: str
    passed: bool
    critical_failures: list[str]
    warnings: list[str]
    report_path: Path
    checked_rows: dict[str, int]
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"quality gate {self.layer}: {verdict} ({len(self.critical_failures)} critical "
            f"failure(s), {len(self.warnings)} warning(s)); report: {self.report_path}",
            *(f"  CRITICAL {m}" for m in self.critical_failures),
            *(f"  WARNING  {m}" for m in self.warnings),
        ]
        return "\n".join(lines)

    def raise_for_failure(self) -> GateResult:
        """Raise :class:`GateFailed` when a critical expectation failed; else return self."""
        if not self.passed:
            raise GateFailed(self)
        return self


class GateFailed(Exception):
    """A critical expectation failed: the pipeline must stop."""

    def __init__(self, result: GateResult) -> None:
        super().__init__(result.summary())
        self.result = result


def layer_schema(layer: str, schema_prefix: str = "", bronze_schema: str = "bronze") -> str:
    """The Trino schema (in the Iceberg catalog) holding ``layer``'s tables."""
    if layer == "bronze":
        return bronze_schema
    return f"{schema_prefix}{layer}"


def run_gate(
    layer: str, settings: Settings, schema_prefix: str = "", bronze_schema: str = "bronze"
) -> GateResult:
    """Validate ``layer`` ("bronze", "silver" or "gold") and write the HTML report.

    Silver and gold are read from ``<schema_prefix>silver`` / ``<schema_prefix>gold``, bronze
    from ``bronze_schema``. ``passed`` is False when any critical expectation failed (or a table
    is missing); :meth:`GateResult.raise_for_failure` turns that into :class:`GateFailed`.
    """
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; known: {', '.join(LAYERS)}")
    started = time.monotonic()
    schema = layer_schema(layer, schema_prefix, bronze_schema)
    suites = LAYERS[layer]()
    url = trino_sqlalchemy_url(settings, schema)
    connect_args = trino_sqlalchemy_connect_args(settings)
    where = f"{settings.iceberg_catalog}.{schema}"
    log.info("quality gate %s: %d tables in %s", layer, len(suites), where)

    # the trino client's requests session would let REQUESTS_CA_BUNDLE replace `verify`
    with temporary_environment(trino_ca_environment(settings)):
        checked_rows = _row_counts(url, connect_args, schema, list(suites))
        outcomes_by_table: dict[str, list[ExpectationOutcome]] = {}
        units: list[tuple[str, list[Expectation]]] = []
        for table, expectations in suites.items():
            if table not in checked_rows:
                outcomes_by_table[table] = [_missing_table(table, schema)]
                continue
            units.extend((table, chunk) for chunk in _chunks(expectations, CHUNK_SIZE))

        with ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, len(units)))) as pool:
            chunk_outcomes = list(
                pool.map(lambda unit: _validate(url, connect_args, schema, unit[0], unit[1]), units)
            )
    for (table, _), outcomes in zip(units, chunk_outcomes, strict=True):
        outcomes_by_table.setdefault(table, []).extend(outcomes)
    outcomes = [o for table in suites for o in outcomes_by_table.get(table, [])]

    critical_failures = [o.message() for o in outcomes if o.critical and not o.passed]
    warnings = [o.message() for o in outcomes if not o.critical and not o.passed]
    report_path = write_report(
        settings.reports_dir / "quality",
        layer=layer,
        schema=where,
        outcomes=outcomes,
        checked_rows=checked_rows,
        file_stem=schema if schema.endswith(layer) else f"{schema}_{layer}",
    )
    result = GateResult(
        layer=layer,
        passed=not critical_failures,
        critical_failures=critical_failures,
        warnings=warnings,
        report_path=report_path,
        checked_rows=checked_rows,
        outcomes=outcomes,
    )
    log_fn = log.info if result.passed else log.error
    log_fn("%s (%.1fs)", result.summary(), time.monotonic() - started)
    return result


def _row_counts(
    url: str, connect_args: dict[str, Any], schema: str, tables: Sequence[str]
) -> dict[str, int]:
    """Rows of each table of ``tables`` that exists in ``schema`` (absent: not in the dict)."""
    engine = sa.create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            existing = set(
                conn.execute(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = :schema"
                    ),
                    {"schema": schema},
                ).scalars()
            )
            present = [t for t in tables if t in existing]
            if not present:
                return {}
            # one query for all counts; names come from the suites, not from input
            union = " UNION ALL ".join(
                f'SELECT \'{t}\' AS table_name, count(*) AS n FROM "{schema}"."{t}"'
                for t in present
            )
            return {row.table_name: int(row.n) for row in conn.execute(sa.text(union))}
    finally:
        engine.dispose()


def _missing_table(table: str, schema: str) -> ExpectationOutcome:
    return ExpectationOutcome(
        table=table,
        expectation="table_exists",
        critical=True,
        passed=False,
        observed=f"table {schema}.{table} does not exist",
        why="the layer's contract names this table",
    )


def _chunks(items: list[Expectation], size: int) -> list[list[Expectation]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def ephemeral_context() -> Any:
    """A GX context in memory only: no files, no progress bars, no usage statistics."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _validate(
    url: str,
    connect_args: dict[str, Any],
    schema: str,
    table: str,
    expectations: list[Expectation],
) -> list[ExpectationOutcome]:
    """Run ``expectations`` on ``schema.table`` in Trino; one outcome per expectation."""
    context = ephemeral_context()
    source = context.data_sources.add_sql(
        name="trino", connection_string=url, kwargs={"connect_args": connect_args}
    )
    try:
        asset = source.add_table_asset(name=table, table_name=table)
    except TestConnectionError as exc:  # dropped between the count and now, or unreadable
        return [ExpectationOutcome(table, "table_readable", True, False, _first_line(exc), "")]
    batch = asset.add_batch_definition_whole_table("whole_table")
    suite = context.suites.add(gx.ExpectationSuite(name=f"{schema}.{table}"))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{schema}.{table}", data=batch, suite=suite)
    )
    run: ExpectationSuiteValidationResult = definition.run(
        result_format={"result_format": "BASIC", "partial_unexpected_count": SAMPLE_SIZE}
    )
    return [_outcome(table, r) for r in run.results]


def _outcome(table: str, result: ExpectationValidationResult) -> ExpectationOutcome:
    config = result.expectation_config
    if config is None:  # GX always attaches it; fail safe if a version does not
        return ExpectationOutcome(table, "unknown_expectation", True, False, "no config", "")
    meta = config.meta or {}
    error = _exception_message(result.exception_info)
    observed = (
        f"could not be evaluated: {error}"
        if error
        else describe_observation(
            config.type, config.kwargs, result.result or {}, sensitive=bool(meta.get("sensitive"))
        )  # fmt: skip
    )
    return ExpectationOutcome(
        table=table,
        expectation=describe_expectation(config.type, config.kwargs),
        critical=bool(meta.get("critical", True)),  # unflagged counts as critical: fail safe
        passed=bool(result.success) and not error,
        observed=observed,
        why=str(meta.get("why", "")),
    )


def describe_expectation(kind: str, kwargs: dict[str, Any]) -> str:
    """``expect_x(column, mostly=0.95) where cond``: the expectation in one line."""
    if "column_list" in kwargs:
        args = [", ".join(kwargs["column_list"])]
    elif "column_A" in kwargs:
        op = ">=" if kwargs.get("or_equal") else ">"
        args = [f"{kwargs['column_A']} {op} {kwargs['column_B']}"]
    elif "column" in kwargs:
        args = [str(kwargs["column"])]
    else:
        args = []
    for name in ("value_set", "regex"):
        if name in kwargs and kwargs[name] is not None:
            args.append(f"{name}={_short(kwargs[name])}")
    bounds = _bounds(kwargs)
    if bounds:
        args.append(bounds)
    if kwargs.get("mostly") not in (None, 1, 1.0):
        args.append(f"mostly={kwargs['mostly']}")
    text = f"{kind}({', '.join(args)})"
    condition = kwargs.get("row_condition")
    if condition:
        text += f" where {_condition_text(condition)}"
    return text


def _condition_text(condition: Any) -> str:
    """A row condition (Condition object, its dict form, or a legacy string) as text."""
    if isinstance(condition, dict):
        condition = deserialize_row_condition(condition)
    return condition if isinstance(condition, str) else repr(condition)


def describe_observation(
    kind: str, kwargs: dict[str, Any], observed: dict[str, Any], *, sensitive: bool = False
) -> str:
    """What GX saw, in words: counts, shares against ``mostly``, a few unexpected values."""
    if "observed_value" in observed:
        value = observed["observed_value"]
        if kind == "expect_table_row_count_to_be_between":
            return f"{value} rows (expected {_bounds(kwargs) or 'any'})"
        return f"observed {value}"
    if "unexpected_count" not in observed:
        return "no result"
    total = int(observed.get("element_count") or 0)
    unexpected = int(observed.get("unexpected_count") or 0)
    missing = int(observed.get("missing_count") or 0)
    if kind == "expect_column_values_to_not_be_null":
        base, text = total, f"{unexpected} of {total} values are null"
    elif kind in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        base = total - missing
        text = f"{unexpected} duplicate values ({unexpected} of {base} rows share their key"
        text += " with another row)" if unexpected else ")"
    else:
        base = total - missing
        text = f"{unexpected} of {base} non-null values unexpected"
    mostly = kwargs.get("mostly")
    if mostly not in (None, 1, 1.0) and base:
        text += f"; observed share {1 - unexpected / base:.3f}, expected >= {mostly}"
    elif base and unexpected:
        text += f" ({unexpected / base:.1%})"
    samples = observed.get("partial_unexpected_list") or []
    if unexpected and samples:
        text += (
            "; values withheld (may be PII)"
            if sensitive
            else f"; e.g. {_short([_plain(v) for v in samples[:SAMPLE_SIZE]])}"
        )
    return text


def _bounds(kwargs: dict[str, Any]) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is None and high is None:
        return ""
    lo_op = ">" if kwargs.get("strict_min") else ">="
    hi_op = "<" if kwargs.get("strict_max") else "<="
    parts = []
    if low is not None:
        parts.append(f"{lo_op} {_number(low)}")
    if high is not None:
        parts.append(f"{hi_op} {_number(high)}")
    return " and ".join(parts)


def _number(value: Any) -> Any:
    """1.0 -> 1 (GX stores bounds as floats), anything else as is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _plain(value: Any) -> Any:
    """Decimal('1.5') -> 1.5 (Trino decimals), recursively through tuples, lists and dicts."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, tuple | list):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exception_message(info: Any) -> str:
    """GX's exception_info is either one {raised_exception, exception_message} dict or a dict of
    them keyed by metric; the first raised message, or ""."""
    if not isinstance(info, dict):
        return ""
    candidates = [info] if "raised_exception" in info else list(info.values())
    for item in candidates:
        if isinstance(item, dict) and item.get("raised_exception"):
            return _first_line(item.get("exception_message") or "unknown error")
    return ""


def _first_line(error: BaseException | str) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
