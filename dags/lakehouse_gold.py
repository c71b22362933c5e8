"""
### lakehouse_gold: silver → gold → online features, hourly

1. `transform_gold` — `safra transform --layer gold`: dbt rebuilds the gold feature tables for
   the keys whose silver rows changed, then the gold quality gate runs; a failed critical
   expectation fails the task and nothing is materialized.
2. `materialize_features` — `safra features`: Feast applies the feature repo and materializes
   gold into the Redis online store incrementally (since the last materialization).

One run at a time (`max_active_runs=1`): gold tables are merged; `transform_gold` shares the
`safra_lakehouse` pool's one slot with `lakehouse_silver`'s transform.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG
from safra_tasks import DEFAULT_ARGS, LAKEHOUSE_POOL, START_DATE, safra_task

with DAG(
    dag_id="lakehouse_gold",
    description="silver -> gold (dbt) -> gold quality gate -> Feast materialization",
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=50),
    default_args=DEFAULT_ARGS,
    tags=["safra", "lakehouse", "gold", "features"],
    doc_md=__doc__,
):
    transform_gold = safra_task(
        "transform_gold",
        "transform --layer gold",
        timeout=timedelta(minutes=20),
        doc="dbt: gold feature tables from silver; then the gold quality gate (fails the task).",
        pool=LAKEHOUSE_POOL,
    )
    materialize_features = safra_task(
        "materialize_features",
        "features",
        timeout=timedelta(minutes=20),
        doc="Feast: apply the feature repo, materialize gold into Redis incrementally.",
    )
    transform_gold >> materialize_features
