"""Benchmark of write–audit–publish: what publishing, quarantining and refusing cost beside the
transform they guard, and that a quarantined batch is published whole once fixed. Prints JSON.

Bronze of its own (``bench_bronze_<hex>``, pipelines/bronze_seed.py) with N applications; a full
transform publishes silver and gold; then a batch of 10 % more rows, all with a zero amount,
fails the silver gate (it judges the whole table: 9 % invalid is past its 5 %), so the batch is
quarantined; gold refuses; the amounts are fixed in bronze and silver runs again. Everything
is dropped at the end.

    .venv/bin/python bench/publish_bench.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipelines import publish
from pipelines.bronze_seed import BronzeWriter, create_bronze
from pipelines.simulator import generate_applications
from pipelines.transform import run_transform
from safra.lakehouse import drop_schemas, published, trino_query
from safra.settings import get_settings

START, END = datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 100_000


def _median_seconds(call: Callable[[], Any], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return round(statistics.median(times), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="bronze applications")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    settings = get_settings()
    tag = uuid.uuid4().hex[:8]
    bronze, prefix = f"bench_bronze_{tag}", f"bench_{tag}_"
    silver, gold = f"{prefix}silver", f"{prefix}gold"
    apps_table = f'{settings.iceberg_catalog}."{silver}".silver_applications'
    create_bronze(settings, bronze)
    writer = BronzeWriter(settings, bronze, "applications")
    run: dict[str, Any] = {
        "schema_prefix": prefix,
        "bronze_schema": bronze,
        "raise_on_failure": False,
    }
    try:
        for i, start in enumerate(range(0, args.rows, CHUNK)):
            apps = generate_applications(min(CHUNK, args.rows - start), args.seed + i, START, END)
            writer.append(apps, [a["id_solicitacao"] for a in apps])
        full = run_transform(settings, **run)
        assert full.passed, full.reason

        timed: dict[str, float] = {}
        real_quarantine = publish.quarantine

        def quarantine(*a: Any, **k: Any) -> Any:
            began = time.perf_counter()
            try:
                return real_quarantine(*a, **k)
            finally:
                timed["quarantine_seconds"] = round(time.perf_counter() - began, 4)

        publish.quarantine = quarantine  # type: ignore[assignment]
        n_bad = max(100, args.rows // 10)
        batch = generate_applications(n_bad, args.seed + 999, START, END)
        for app in batch:
            app["valor_solicitado_credito"] = 0.0
        writer.append(batch, [a["id_solicitacao"] for a in batch])
        failed = run_transform(settings, select_layers=["silver"], **run)
        publish.quarantine = real_quarantine  # type: ignore[assignment]
        refused = run_transform(settings, select_layers=["gold"], **run)

        trino_query(settings, f'update {settings.iceberg_catalog}."{bronze}".applications '
                    "set valor_solicitado_credito = 50000.0 "
                    "where valor_solicitado_credito <= 0")  # fmt: skip
        fixed = run_transform(settings, select_layers=["silver"], **run)
        rows = int(trino_query(settings, f"select count(*) from {published(apps_table)}")[0][0])
        print(json.dumps({
            "bronze_applications": args.rows,
            "bad_batch": n_bad,
            "full_transform_seconds": round(full.seconds, 2),
            "publish_seconds": {
                layer: _median_seconds(lambda layer=layer: publish.publish(
                    settings, f"{prefix}{layer}", layer))
                for layer in ("silver", "gold")
            },
            "require_published_seconds": _median_seconds(
                lambda: publish.require_published(settings, silver, "silver")),
            "failed_silver_run": {"stopped_at": failed.stopped_at,
                                  "seconds": round(failed.seconds, 2), **timed},
            "gold_refused": {"stopped_at": refused.stopped_at,
                             "seconds": round(refused.seconds, 2)},
            "fixed_silver_run": {"passed": fixed.passed, "seconds": round(fixed.seconds, 2)},
            "published_rows_after_fix": rows,
            "nothing_lost": rows == args.rows + n_bad,
        }, indent=2))  # fmt: skip
    finally:
        drop_schemas(settings, [gold, silver, bronze])


if __name__ == "__main__":
    main()
