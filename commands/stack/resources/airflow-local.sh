#!/usr/bin/env bash
# Airflow 3 on the local stack: its four components as one process group, supervised as one
# service by `safra stack up --with airflow` (which sets AIRFLOW_HOME, AIRFLOW__* and PATH).
# The first component to exit ends the service (and the others with it); `safra stack up` starts
# it again. The log servers are skipped: with the LocalExecutor the API server reads task logs
# from AIRFLOW_HOME/logs directly, and Airflow binds them to every interface.
set -euo pipefail
trap 'trap - TERM INT EXIT; kill 0 2>/dev/null || true' TERM INT EXIT

airflow db migrate >/dev/null
airflow pools set "$SAFRA_AIRFLOW_POOL" 1 \
  "one lakehouse transform at a time (dbt's target folder, Trino MERGE)" >/dev/null

airflow api-server &
airflow scheduler --skip-serve-logs &
airflow dag-processor &
airflow triggerer --skip-serve-logs &
wait -n
