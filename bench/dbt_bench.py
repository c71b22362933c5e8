"""Benchmark of the dbt transform: a full refresh over N bronze rows vs an incremental run after
1 % new rows. Prints JSON.

Bronze tables of its own (``bench_bronze_<hex>``) are created through Trino with the columns of
pipelines/bronze.py and filled with simulator events through pyiceberg, in chunks
(pipelines/bronze_seed.py, as the transform tests do); silver and gold land in
``bench_<hex>_silver`` / ``bench_<hex>_gold``. Everything is dropped at the end unless
``--keep``.

    .venv/bin/python bench/dbt_bench.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.bronze_seed import BronzeWriter, create_bronze
from pipelines.simulator import generate_applications, generate_outcomes, live_applications
from pipelines.transform import TransformReport, run_transform
from safra.lakehouse import drop_schemas
from safra.settings import get_settings

log = logging.getLogger("dbt_bench")

START = datetime(2023, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 200_000


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
    tag = uuid.uuid4().hex[:8]
    bronze_schema, prefix = f"bench_bronze_{tag}", f"bench_{tag}_"
    create_bronze(settings, bronze_schema)
    bronze = {t: BronzeWriter(settings, bronze_schema, t) for t in ("applications", "outcomes")}
    try:
        began = time.perf_counter()
        last_chunk: list[dict[str, Any]] = []
        n_outcomes = 0
        cut = int((END - timedelta(days=180)).timestamp() * 1000)  # outcomes known before
        for i, start in enumerate(range(0, args.rows, CHUNK)):
            n = min(CHUNK, args.rows - start)
            apps = generate_applications(n, args.seed + i, START, END, returning_share=0.3)
            bronze["applications"].append(apps, [a["id_solicitacao"] for a in apps])
            outcomes = [o for o in generate_outcomes(apps, args.seed + i)
                        if o["data_solicitacao"] < cut]  # fmt: skip
            bronze["outcomes"].append(outcomes, [o["id_solicitacao"] for o in outcomes])
            n_outcomes += len(outcomes)
            last_chunk = apps
            log.info("seeded %d/%d applications", start + n, args.rows)
        seed_seconds = time.perf_counter() - began

        run = dict(schema_prefix=prefix, bronze_schema=bronze_schema)
        full = run_transform(settings, full_refresh=True, **run)

        n_new = max(1, round(args.rows * args.new_share))
        stream = live_applications(1.0, args.seed + 1000, known_applications=last_chunk,
                                   returning_share=0.5, start=END, batch_size=1024)  # fmt: skip
        new_apps = [next(stream) for _ in range(n_new)]
        bronze["applications"].append(new_apps, [a["id_solicitacao"] for a in new_apps])
        pending = [a for a in last_chunk if a["data_solicitacao"] >= cut][: max(1, n_new // 10)]
        late = generate_outcomes(pending, args.seed + 2000)
        bronze["outcomes"].append(late, [o["id_solicitacao"] for o in late])
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
            drop_schemas(settings, [f"{prefix}gold", f"{prefix}silver", bronze_schema])


if __name__ == "__main__":
    main()
