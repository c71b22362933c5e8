"""Write–audit–publish on the real stack: a batch that fails its audit is quarantined and never
seen downstream, gold refuses an unpublished silver and says why, and the fixed batch is
published by the next run — nothing lost."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from pipelines import publish
from pipelines.bronze_seed import BronzeWriter, create_bronze
from pipelines.simulator import generate_applications
from pipelines.transform import run_transform
from safra.lakehouse import drop_schemas, published, trino_query
from safra.settings import Settings
from tests.integration.test_transform import _invalidate

pytestmark = pytest.mark.stack

SEED = 7117
START, END = datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
GOOD, BAD, INVALID = 120, 200, 60  # 30 % of the second batch has a zero amount: the gate fails


def _count(settings: Settings, table: str, at_published: bool = False) -> int:
    sql_table = published(table) if at_published else table
    return int(trino_query(settings, f"select count(*) from {sql_table}")[0][0])


def test_a_failed_audit_quarantines_the_batch_until_it_is_fixed(local_stack: Settings) -> None:
    settings = local_stack
    tag = uuid.uuid4().hex[:10]
    bronze, prefix = f"it_wap_bronze_{tag}", f"it_wap_{tag}_"
    silver, gold = f"{prefix}silver", f"{prefix}gold"
    apps_table = f'{settings.iceberg_catalog}."{silver}".silver_applications'
    create_bronze(settings, bronze)
    writer = BronzeWriter(settings, bronze, "applications")
    try:
        first = generate_applications(GOOD, SEED, START, END)
        writer.append(first, [a["id_solicitacao"] for a in first])
        assert run_transform(settings, schema_prefix=prefix, bronze_schema=bronze).passed
        published_before = publish.require_published(settings, silver, "silver")
        gold_before = publish.current_snapshots(settings, gold, "gold")

        batch = generate_applications(BAD, SEED + 1, START, END)
        for i in range(INVALID):
            batch[i] = _invalidate(batch[i], "amount")
        writer.append(batch, [a["id_solicitacao"] for a in batch])

        # 1. the gate fails: the batch is kept under a quarantine tag, main is rolled back
        failed = run_transform(
            settings, select_layers=["silver"], schema_prefix=prefix, bronze_schema=bronze,
            raise_on_failure=False,
        )  # fmt: skip
        assert failed.stopped_at == "silver quality gate"
        quarantined = {q.table: q for q in failed.quarantined["silver"]}
        qtag = quarantined["silver_applications"].tag
        assert qtag is not None and qtag.startswith("quarantine-silver-")
        assert (
            quarantined["silver_applications"].rolled_back_to
            == (published_before["silver_applications"])
        )
        assert _count(settings, apps_table) == GOOD  # main: rolled back
        assert _count(settings, apps_table, at_published=True) == GOOD
        assert int(trino_query(
            settings, f"select count(*) from {apps_table} for version as of '{qtag}'"
        )[0][0]) == GOOD + BAD  # fmt: skip

        # 2. gold refuses, naming the failed audit, the quarantine tag and the gate's report
        refused = run_transform(
            settings,
            select_layers=["gold"],
            schema_prefix=prefix,
            bronze_schema=bronze,
            raise_on_failure=False,
        )
        assert refused.stopped_at == "gold: silver is not published"
        assert qtag in (refused.reason or "")
        assert str(failed.gates["silver"].report_path) in (refused.reason or "")
        assert refused.models == []  # dbt never ran
        assert publish.current_snapshots(settings, gold, "gold") == gold_before

        # 3. the cause is fixed at the source; a gate that cannot run (Trino down) is no pass.
        #    While it "runs", readers of the published state still see only the audited rows.
        trino_query(
            settings,
            f'update {settings.iceberg_catalog}."{bronze}".applications '
            "set valor_solicitado_credito = 50000.0 where valor_solicitado_credito <= 0",
        )
        seen: dict[str, int] = {}

        def unreachable_gate(layer: str, s: Settings, **_: Any) -> Any:
            seen["main"] = _count(s, apps_table)
            seen["published"] = _count(s, apps_table, at_published=True)
            raise ConnectionError("Trino is down")

        down = run_transform(
            settings, select_layers=["silver"], schema_prefix=prefix, bronze_schema=bronze,
            raise_on_failure=False, gate=unreachable_gate,
        )  # fmt: skip
        assert seen == {"main": GOOD + BAD, "published": GOOD}
        assert down.stopped_at == "silver quality gate"
        assert "the gate could not run: Trino is down" in (down.reason or "")
        assert _count(settings, apps_table) == GOOD
        with pytest.raises(publish.Unpublished, match="could not run"):
            publish.require_published(settings, silver, "silver")

        # 4. the real gate passes: the whole batch is published, then gold runs on it
        fixed = run_transform(
            settings, select_layers=["silver"], schema_prefix=prefix, bronze_schema=bronze
        )
        assert _count(settings, apps_table, at_published=True) == GOOD + BAD
        assert fixed.published["silver"] == publish.require_published(settings, silver, "silver")
        assert run_transform(
            settings, select_layers=["gold"], schema_prefix=prefix, bronze_schema=bronze
        ).passed
        gold_apps = f'{settings.iceberg_catalog}."{gold}".proponente_features'
        assert _count(settings, gold_apps, at_published=True) == GOOD + BAD
        # the quarantined batch stays readable under its tag for inspection
        assert qtag in publish.quarantine_tags(settings, silver, "silver")["silver_applications"]
    finally:
        drop_schemas(settings, [gold, silver, bronze])


def test_gold_refuses_a_silver_changed_after_its_audit(local_stack: Settings) -> None:
    """A silver whose main moved past its published tag (a run killed before its verdict, a
    write by hand) is refused by gold; the next silver run audits and publishes it."""
    settings = local_stack
    tag = uuid.uuid4().hex[:10]
    bronze, prefix = f"it_wap2_bronze_{tag}", f"it_wap2_{tag}_"
    silver = f"{prefix}silver"
    apps_table = f'{settings.iceberg_catalog}."{silver}".silver_applications'
    create_bronze(settings, bronze)
    writer = BronzeWriter(settings, bronze, "applications")
    try:
        apps = generate_applications(80, SEED + 2, START, END)
        writer.append(apps, [a["id_solicitacao"] for a in apps])
        silver_only: dict[str, Any] = {"schema_prefix": prefix, "bronze_schema": bronze}
        assert run_transform(settings, select_layers=["silver"], **silver_only).passed
        first = trino_query(settings, f"select min(id_solicitacao) from {apps_table}")[0][0]
        trino_query(settings, f"delete from {apps_table} where id_solicitacao = ?", [first])

        refused = run_transform(
            settings, select_layers=["gold"], raise_on_failure=False, **silver_only
        )
        assert refused.stopped_at == "gold: silver is not published"
        assert "holds changes no audit has passed" in (refused.reason or "")
        assert _count(settings, apps_table, at_published=True) == _count(settings, apps_table) + 1

        assert run_transform(settings, select_layers=["silver"], **silver_only).passed
        assert _count(settings, apps_table, at_published=True) == _count(settings, apps_table)
        assert run_transform(settings, select_layers=["gold"], **silver_only).passed
    finally:
        drop_schemas(settings, [f"{prefix}gold", silver, bronze])
