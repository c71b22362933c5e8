"""Benchmark of the dbt transform: a full refresh over N bronze rows vs an incremental run after
1 % new rows. Prints JSON.

Bronze tables of its own (``bench_bronze_<hex>``) are created through Trino with the columns of
pipelines/bronze.py and filled with simulator events through pyiceberg, in chunks; silver and
gold land in ``bench_<hex>_silver`` / ``bench_<hex>_gold``. Everything is dropped at the end
unless ``--keep``.

    .venv/bin/python bench/dbt_bench.py --rows 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines import bronze
from pipelines.simulator import generate_applications, generate_outcomes, live_applications
from pipelines.transform import TransformReport, run_transform
from safra.lakehouse import iceberg_catalog
from safra.settings import Settings, get_settings

log = logging.getLogger("dbt_bench")

START = datetime(2023, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 1, tzinfo=UTC)
PARTITIONS = 3
CHUNK = 200_000


def _trino_type(spark_type: str) -> str:
    t = re.sub(r"\s+", " ", spark_type.strip())
    t = re.sub(r"\bSTRUCT<", "ROW(", t).replace(">", ")")
    t = re.sub(r"(\w+): ", r"\1 ", t)
    names = {"STRING": "varchar", "INT": "integer", "BIGINT": "bigint", "DOUBLE": "double",
             "BOOLEAN": "boolean", "BINARY": "varbinary",
             "TIMESTAMP": "timestamp(6) with time zone"}  # fmt: skip
    return re.sub(r"\b(STRING|INT|BIGINT|DOUBLE|BOOLEAN|BINARY|TIMESTAMP)\b",
                  lambda m: names[m.group(1)], t)  # fmt: skip


def _trino_columns(spark_columns: str) -> str:
    columns, depth, current = [], 0, ""
    for ch in spark_columns:
        depth += (ch == "<") - (ch == ">")
        if ch == "," and depth == 0:
            columns.append(current)
            current = ""
        else:
            current += ch
    columns.append(current)
    out = []
    for col in (c.strip() for c in columns if c.strip()):
        name, _, spark_type = col.partition(" ")
        not_null = " NOT NULL" if "NOT NULL" in spark_type else ""
        out.append(f"{name} {_trino_type(spark_type.replace('NOT NULL', ''))}{not_null}")
    return ", ".join(out)


class Bench:
    def __init__(self, settings: Settings, tag: str) -> None:
        import trino

        self.settings = settings
        self.bronze_schema = f"bench_bronze_{tag}"
        self.prefix = f"bench_{tag}_"
        self.conn = trino.dbapi.connect(
            host=settings.trino_host, port=settings.trino_port, user=settings.trino_user,
            catalog=settings.iceberg_catalog,
        )  # fmt: skip
        self.offsets = {t: [0] * PARTITIONS for t in ("applications", "outcomes")}

    def sql(self, query: str) -> list[Any]:
        cur = self.conn.cursor()
        cur.execute(query)
        return cur.fetchall()

    def create_bronze(self) -> None:
        cat = self.settings.iceberg_catalog
        self.sql(f'create schema if not exists {cat}."{self.bronze_schema}"')
        for table in ("applications", "outcomes"):
            columns, _ = bronze.TABLES[table]
            self.sql(
                f'create table if not exists {cat}."{self.bronze_schema}"."{table}" '
                f"({_trino_columns(columns)}) "
                # unpartitioned: pyiceberg appends to month() partitions only with pyiceberg-core
                "with (format_version = 2)"
            )
        catalog = iceberg_catalog(self.settings)
        self.tables = {t: catalog.load_table(f"{self.bronze_schema}.{t}")
                       for t in ("applications", "outcomes")}  # fmt: skip

    def append(self, table: str, events: list[dict[str, Any]], keys: list[str]) -> None:
        import pyarrow as pa

        now = datetime.now(UTC)
        offsets = self.offsets[table]
        rows = []
        for event, key in zip(events, keys, strict=True):
            partition = int(hashlib.md5(key.encode()).hexdigest()[:8], 16) % PARTITIONS
            rows.append({**event, "kafka_topic": f"safra.{table}", "kafka_partition": partition,
                         "kafka_offset": offsets[partition], "kafka_timestamp": now,
                         "kafka_key": key, "schema_version": 2 if table == "applications" else 1,
                         "ingested_at": now})  # fmt: skip
            offsets[partition] += 1
        arrow = self.tables[table].schema().as_arrow()
        self.tables[table].append(pa.Table.from_pylist(rows, schema=arrow))

    def drop(self) -> None:
        cat = self.settings.iceberg_catalog
        for schema in (f"{self.prefix}gold", f"{self.prefix}silver", self.bronze_schema):
            for (table,) in self.sql(
                f"select table_name from information_schema.tables where table_schema = '{schema}'"
            ):
                self.sql(f'drop table if exists {cat}."{schema}"."{table}"')
            self.sql(f'drop schema if exists {cat}."{schema}"')


def _summary(report: TransformReport) -> dict[str, Any]:
    models = {m.model: {"rows_in": m.rows_in, "rows_out": m.rows_out, "seconds": m.seconds}
              for m in report.models}  # fmt: skip
    return {
        "seconds_total": round(report.seconds, 2),
        "seconds_models": round(sum(m.seconds for m in report.models), 2),
        "tests_run": report.tests_run,
        "gates_passed": {layer: g.passed for layer, g in report.gates.items()},
        "models": models,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="bronze applications")
    parser.add_argument("--new-share", type=float, default=0.01, help="new rows, share of --rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the bench schemas")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)

    settings = get_settings()
    bench = Bench(settings, uuid.uuid4().hex[:8])
    bench.create_bronze()
    try:
        began = time.perf_counter()
        last_chunk: list[dict[str, Any]] = []
        n_outcomes = 0
        cut = int((END - timedelta(days=180)).timestamp() * 1000)  # outcomes known before
        for i, start in enumerate(range(0, args.rows, CHUNK)):
            n = min(CHUNK, args.rows - start)
            apps = generate_applications(n, args.seed + i, START, END, returning_share=0.3)
            bench.append("applications", apps, [a["id_solicitacao"] for a in apps])
            outcomes = [o for o in generate_outcomes(apps, args.seed + i)
                        if o["data_solicitacao"] < cut]  # fmt: skip
            bench.append("outcomes", outcomes, [o["id_solicitacao"] for o in outcomes])
            n_outcomes += len(outcomes)
            last_chunk = apps
            log.info("seeded %d/%d applications", start + n, args.rows)
        seed_seconds = time.perf_counter() - began

        run = dict(schema_prefix=bench.prefix, bronze_schema=bench.bronze_schema)
        full = run_transform(settings, full_refresh=True, **run)

        n_new = max(1, round(args.rows * args.new_share))
        stream = live_applications(1.0, args.seed + 1000, known_applications=last_chunk,
                                   returning_share=0.5, start=END, batch_size=1024)  # fmt: skip
        new_apps = [next(stream) for _ in range(n_new)]
        bench.append("applications", new_apps, [a["id_solicitacao"] for a in new_apps])
        pending = [a for a in last_chunk if a["data_solicitacao"] >= cut][: max(1, n_new // 10)]
        late = generate_outcomes(pending, args.seed + 2000)
        bench.append("outcomes", late, [o["id_solicitacao"] for o in late])
        incremental = run_transform(settings, **run)

        full_s, inc_s = _summary(full), _summary(incremental)
        print(json.dumps({
            "bronze_applications": args.rows,
            "bronze_outcomes": n_outcomes,
            "new_applications": n_new,
            "new_outcomes": len(late),
            "seed_seconds": round(seed_seconds, 1),
            "full_refresh": full_s,
            "incremental": inc_s,
            "ratio_models": round(inc_s["seconds_models"] / full_s["seconds_models"], 4),
            "ratio_total": round(inc_s["seconds_total"] / full_s["seconds_total"], 4),
            "goal_ratio": 0.1,
        }, indent=2))  # fmt: skip
    finally:
        if not args.keep:
            bench.drop()


if __name__ == "__main__":
    main()
