"""
### lakehouse_silver: Kafka → bronze → silver, every 5 minutes

1. `ingest_bronze` — `safra ingest --once`: Spark drains what is in Kafka into the Iceberg bronze
   tables and stops (exactly once: the checkpoint skips what an earlier run committed).
2. `transform_silver` — `safra transform --layer silver`: dbt merges the new bronze rows into
   silver, then the silver quality gate (Great Expectations) runs; a failed critical expectation
   fails the task, so gold (`lakehouse_gold`) never reads a silver that did not pass.

Why ingest here: silver reads bronze, and the local stack runs no streaming ingestion job, so
each run first drains Kafka. Where `safra ingest` runs as a stream, the drain finds little to do
(turn this task off by pausing the DAG and scheduling silver alone if the stream shares the
checkpoint). One run at a time (`max_active_runs=1`): silver tables are merged, and a MERGE must
not race another writer; `transform_silver` takes the `safra_lakehouse` pool's one slot.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG
from safra_tasks import DEFAULT_ARGS, LAKEHOUSE_POOL, START_DATE, safra_task

with DAG(
    dag_id="lakehouse_silver",
    description="Kafka -> bronze (Spark) -> silver (dbt) -> silver quality gate",
    schedule="*/5 * * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    default_args={**DEFAULT_ARGS, "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["safra", "lakehouse", "silver"],
    doc_md=__doc__,
):
    ingest_bronze = safra_task(
        "ingest_bronze",
        "ingest --once",
        timeout=timedelta(minutes=15),
        doc="Drain Kafka into the Iceberg bronze tables (Spark, exactly once), then exit.",
    )
    transform_silver = safra_task(
        "transform_silver",
        "transform --layer silver",
        timeout=timedelta(minutes=20),
        doc="dbt: merge bronze into silver; then the silver quality gate (fails the task).",
        pool=LAKEHOUSE_POOL,
    )
    ingest_bronze >> transform_silver
