"""
### raw_retention: bronze raw identity older than the retention is nulled, daily

1. `null_raw_identity` — `safra retention --json`: the CPF/CNPJ, name and land registry number
   of bronze rows (and the raw bytes of rejected records) ingested more than
   `SAFRA_RAW_RETENTION_DAYS` ago are nulled; the snapshots that still hold them are expired.
   Silver keeps its pseudonyms. The command holds the transform lock of the schemas, so it waits
   for a running transform; the JSON report (no identity) is in the task log and the audit file.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG
from safra_tasks import DEFAULT_ARGS, LAKEHOUSE_POOL, START_DATE, safra_task

with DAG(
    dag_id="raw_retention",
    description="null bronze raw identity older than SAFRA_RAW_RETENTION_DAYS; expire snapshots",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    default_args=DEFAULT_ARGS,
    tags=["safra", "lakehouse", "bronze", "privacy"],
    doc_md=__doc__,
):
    safra_task(
        "null_raw_identity",
        "retention --json",
        timeout=timedelta(minutes=45),
        doc="Null raw CPF/CNPJ, names and registry numbers older than the retention in bronze.",
        pool=LAKEHOUSE_POOL,
    )
