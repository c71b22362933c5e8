"""Running the dbt project (``dbt/``) in-process, with the environment the project reads.

dbt's ``profiles.yml`` and models read ``SAFRA_*`` variables through ``env_var()``; they are set
from the settings object for the duration of one invocation and restored afterwards. dbt writes
its target folder and logs under ``<data_dir>/dbt``, never into the repository. The pseudonym key
is not among those variables: Trino computes pseudonyms with Safra's plugin functions and reads
the key itself (``commands/stack/trino_pseudonym.py``), so no SQL, artifact or log of dbt holds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pipelines
from safra.lakehouse import trino_ca_environment, trino_cursor
from safra.settings import Settings, temporary_environment

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = Path(pipelines.__file__).resolve().parent.parent / "dbt"
"""The dbt project (and its profiles.yml); the project is installed editable."""


@dataclass(frozen=True)
class NodeResult:
    """One dbt node's outcome in an invocation (model, data test, unit test, source test)."""

    unique_id: str
    name: str
    resource_type: str
    status: str
    rows_affected: int | None
    failures: int | None
    seconds: float
    message: str

    @property
    def failed(self) -> bool:
        return self.status in {"error", "fail", "runtime error"}


@dataclass
class DbtInvocation:
    """What one ``dbt`` command did."""

    args: list[str]
    success: bool
    nodes: list[NodeResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def failures(self) -> list[str]:
        """One line per failed node (or the invocation's own error), naming it and why."""
        lines = [
            f"{n.resource_type} {n.name}: {n.status}: {n.message}" for n in self.nodes if n.failed
        ]
        if self.error:
            lines.append(f"dbt {' '.join(self.args[:1])}: {self.error}")
        return lines


def dbt_environment(
    settings: Settings, *, bronze_schema: str | None = None, schema_prefix: str = ""
) -> dict[str, str]:
    """The variables the dbt project reads, from ``settings`` (the ETL identity's password
    among them; the pseudonym key is not: Trino holds it)."""
    user, password, _ = settings.trino_identity("etl")
    verify = settings.trino_verify
    env = {
        "SAFRA_TRINO_HOST": settings.trino_host,
        "SAFRA_TRINO_HTTPS_PORT": str(settings.trino_https_port),
        "SAFRA_TRINO_USER": user,
        "SAFRA_TRINO_PASSWORD": password,
        # dbt-trino reads `cert: true` as the system's trust store
        "SAFRA_TRINO_CA_CERT": "true" if verify is True else str(verify),
        "SAFRA_ICEBERG_CATALOG": settings.iceberg_catalog,
        "SAFRA_SCHEMA_PREFIX": schema_prefix,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_TARGET_PATH": str(dbt_work_dir(settings) / "target"),
        **trino_ca_environment(settings),
    }
    if bronze_schema is not None:
        env["SAFRA_BRONZE_SCHEMA"] = bronze_schema
    return env


def dbt_work_dir(settings: Settings) -> Path:
    """Where dbt's target folder and logs live (outside the repository)."""
    return settings.data_dir / "dbt"


def _node_result(result: Any) -> NodeResult:
    node = result.node
    response = getattr(result, "adapter_response", None) or {}
    rows = response.get("rows_affected") if isinstance(response, Mapping) else None
    return NodeResult(
        unique_id=node.unique_id,
        name=node.name,
        resource_type=str(node.resource_type),
        status=str(result.status),
        rows_affected=int(rows) if isinstance(rows, int) and rows >= 0 else None,
        failures=result.failures,
        seconds=float(result.execution_time or 0.0),
        message=str(result.message or ""),
    )


def _log_event(event: Any) -> None:
    """Progress through this module's logger: one line per finished node."""
    if event.info.name == "NodeFinished":
        data = event.data
        node = data.node_info
        log.info("dbt %s %s: %s", node.resource_type, node.node_name, node.node_status)


def run_dbt(
    args: Sequence[str],
    settings: Settings,
    *,
    bronze_schema: str | None = None,
    schema_prefix: str = "",
) -> DbtInvocation:
    """Run one dbt command (``["build", "--select", "silver"]``...) against the project.

    ``bronze_schema`` and ``schema_prefix`` redirect the sources and the silver/gold schemas
    (tests use their own). Never raises for a failed node: read ``success`` and ``nodes``.
    """
    from dbt.cli.main import dbtRunner

    work = dbt_work_dir(settings)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    env = dbt_environment(settings, bronze_schema=bronze_schema, schema_prefix=schema_prefix)
    full_args = [
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        env["DBT_TARGET_PATH"],
        "--log-path",
        str(work / "logs"),
        "--log-level-file",
        "info",
        "--quiet",
        "--no-partial-parse",
        "--no-use-colors",
    ]
    began = time.perf_counter()
    log.info("dbt %s", " ".join(args))
    with temporary_environment(env):
        outcome = dbtRunner(callbacks=[_log_event]).invoke(full_args)
    seconds = time.perf_counter() - began
    results = getattr(outcome.result, "results", None) or []
    nodes = [_node_result(r) for r in results if hasattr(r, "node")]
    error = None if outcome.exception is None else str(outcome.exception)
    invocation = DbtInvocation(
        args=list(args), success=bool(outcome.success), nodes=nodes, error=error, seconds=seconds
    )
    log.info(
        "dbt %s: %s in %.1fs",
        args[0] if args else "",
        "ok" if invocation.success else "FAILED",
        seconds,
    )
    return invocation


def ensure_schemas(settings: Settings, schemas: Sequence[str]) -> None:
    """Create the layer schemas one at a time before dbt runs.

    dbt creates missing schemas from several threads at once; the local Iceberg REST catalog
    keeps its state in SQLite, where concurrent namespace writes can fail (SQLITE_BUSY).
    """
    with trino_cursor(settings, "safra-dbt") as cur:
        for schema in schemas:
            cur.execute(f'create schema if not exists "{schema}"')
            cur.fetchall()
