"""
### model_retraining: training set → challenger → promotion, every 6 hours and on drift

1. `train_challenger` — `safra train`: the point-in-time training set from Feast (labels from
   the outcomes), the candidate models on an out-of-time split, the best one registered in MLflow
   with alias `challenger`.
2. `promote_challenger` — `safra promote`: champion and challenger scored on the same holdout;
   the challenger becomes `champion` only if it beats it by the configured margin with no
   guardrail broken. A refusal is a decision, not a failure: the task succeeds either way, and
   the decision is in MLflow's tags and the promotion log. The scoring API follows `@champion`.

Schedule: `AssetOrTimeSchedule` — a run every 6 hours (`0 */6 * * *`, UTC) **or** whenever
`drift_monitor` emits the `safra_model_drift` asset event (data-aware scheduling). One run at a
time: two trainings would race for the `challenger` alias.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable
from safra_tasks import DEFAULT_ARGS, MODEL_DRIFT, START_DATE, safra_task

with DAG(
    dag_id="model_retraining",
    description="Feast training set -> challenger (MLflow) -> champion/challenger promotion",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 */6 * * *", timezone="UTC"), assets=[MODEL_DRIFT]
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    default_args=DEFAULT_ARGS,
    tags=["safra", "ml", "training"],
    doc_md=__doc__,
):
    train_challenger = safra_task(
        "train_challenger",
        "train",
        timeout=timedelta(minutes=60),
        doc="Training set (Feast point-in-time join), models compared, best one `@challenger`.",
    )
    promote_challenger = safra_task(
        "promote_challenger",
        "promote",
        timeout=timedelta(minutes=20),
        doc="Champion vs challenger on one holdout; promote or refuse (both succeed), logged.",
    )
    train_challenger >> promote_challenger
