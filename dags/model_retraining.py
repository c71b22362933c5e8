"""
### model_retraining: training set → challenger → promotion, every 6 hours and on drift

1. `train_challenger` — `safra train --json`: the point-in-time training set from Feast (labels
   from the outcomes), the candidate models on an out-of-time split, the best one registered in
   MLflow with alias `challenger`; the training report is the task's XCom. A run started by the
   drift asset trains on the window the drift check judged (`--since`, from the triggering
   events' `drift_summary.window.since`: the earliest when several events collapsed into the
   run); a scheduled run, or an event naming no window, trains on all labelled history.
2. `promote_challenger` — `safra promote --json`: champion and challenger scored on the same
   holdout; the challenger becomes `champion` only if it beats it by the configured margin with
   no guardrail broken. A refusal is a decision, not a failure: the task succeeds either way,
   and the decision is its XCom, in MLflow's tags and the promotion log. The scoring API follows
   `@champion`.

Schedule: `AssetOrTimeSchedule` — a run every 6 hours (`0 */6 * * *`, UTC) **or** whenever
`drift_monitor` emits the `safra_model_drift` asset event (data-aware scheduling). One run at a
time: two trainings would race for the `challenger` alias.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, task
from safra_tasks import (
    DEFAULT_ARGS,
    MODEL_DRIFT,
    ON_DEMAND_START,
    drift_window_start,
    run_safra_json,
)

TRAIN_TIMEOUT = timedelta(minutes=60)
PROMOTE_TIMEOUT = timedelta(minutes=20)

with DAG(
    dag_id="model_retraining",
    description="Feast training set -> challenger (MLflow) -> champion/challenger promotion",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 */6 * * *", timezone="UTC"), assets=[MODEL_DRIFT]
    ),
    start_date=ON_DEMAND_START,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    default_args=DEFAULT_ARGS,
    tags=["safra", "ml", "training"],
    doc_md=__doc__,
):

    @task(execution_timeout=TRAIN_TIMEOUT)
    def train_challenger(*, triggering_asset_events=None) -> dict[str, Any]:
        """`safra train --json [--since <the drift window>]`: training set (Feast point-in-time
        join), models compared, best one `@challenger`; returns the training report."""
        since = drift_window_start((triggering_asset_events or {}).get(MODEL_DRIFT, []))
        window = ["--since", since] if since else []
        return run_safra_json("train", "--json", *window, timeout=TRAIN_TIMEOUT)

    @task(execution_timeout=PROMOTE_TIMEOUT)
    def promote_challenger() -> dict[str, Any]:
        """`safra promote --json`: champion vs challenger on one holdout; promote or refuse
        (both succeed), logged; returns the decision."""
        return run_safra_json("promote", "--json", timeout=PROMOTE_TIMEOUT)

    train_challenger() >> promote_challenger()
