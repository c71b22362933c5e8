"""
### drift_monitor: is live data drifting, is the champion still right? Hourly

1. `audit_aliases` — `safra promotions --json`: completes or reverts a promotion left half-done,
   and records any change of the registry's aliases made outside Safra (the MLflow UI), judging
   a new champion against the guardrails; returns what it found. Then the check is about a
   champion on record.
2. `check_drift` — `safra drift --json`: Evidently compares the champion's reference sample with
   the recent scored requests and silver/gold rows, keeps the HTML report, logs it to MLflow and
   prints a JSON summary (`"drift": true|false`, the drifted segments, the `window` it
   judged, ...), returned here as the task's XCom. A run triggered with
   `{"since": "<ISO date or time>"}` (the `since` param; `safra demo` passes its drift window)
   checks `safra drift --since <it>`: the rows from then on, and the retraining the event starts
   trains on that window.
3. `check_performance` — `safra performance --json`: the champion's realized AUC, KS, Brier and
   calibration (by score band and segment) on matured outcomes, logged to MLflow; `"alarm":
   true|false` (false, and `"matured": false`, while no outcome has matured).
4. `retraining_needed` — short-circuit: drift **or** a realized-performance alarm; neither
   skips what follows.
5. `request_retraining` — emits the `safra_model_drift` asset event, both summaries attached as
   its `extra` (`drift_summary`, `performance_summary`): the evidence the retraining run shows.

Why an asset and not a TriggerDagRunOperator: `model_retraining` is scheduled on
`AssetOrTimeSchedule` (every 6 hours *or* on this asset), so the monitor does not need to know
which DAG retrains, the asset graph in the UI shows the link, each retraining run lists the
drift event (and its figures) that caused it, and several drift events while a training runs
collapse into one next run instead of piling up triggered runs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, task
from safra_tasks import DEFAULT_ARGS, MODEL_DRIFT, ON_DEMAND_START, run_safra_json

DRIFT_TIMEOUT = timedelta(minutes=15)

with DAG(
    dag_id="drift_monitor",
    description="Drift and realized-performance checks of the champion; on either, the "
    "model_retraining asset",
    schedule="@hourly",
    start_date=ON_DEMAND_START,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    default_args=DEFAULT_ARGS,
    tags=["safra", "ml", "monitoring", "drift"],
    doc_md=__doc__,
    params={
        "since": Param(
            None,
            type=["null", "string"],
            description="check only rows from this ISO date/time on (default: the newest rows)",
        )
    },
):

    @task(execution_timeout=DRIFT_TIMEOUT)
    def check_drift(*, params=None) -> dict[str, Any]:
        """`safra drift --json [--since <the run's since>]`: the drift summary of the champion
        (report in MLflow)."""
        since = (params or {}).get("since")
        window = ["--since", str(since)] if since else []
        return run_safra_json("drift", "--json", *window, timeout=DRIFT_TIMEOUT)

    @task(execution_timeout=DRIFT_TIMEOUT)
    def check_performance() -> dict[str, Any]:
        """`safra performance --json`: realized performance on matured outcomes (MLflow)."""
        return run_safra_json("performance", "--json", timeout=DRIFT_TIMEOUT)

    @task.short_circuit(execution_timeout=timedelta(minutes=1))
    def retraining_needed(summary: dict[str, Any], performance: dict[str, Any]) -> bool:
        """True when the drift check found drift or the performance check alarmed."""
        if "drift" not in summary:
            raise ValueError(f"`safra drift --json` printed no 'drift' key: {summary}")
        if "alarm" not in performance:
            raise ValueError(f"`safra performance --json` printed no 'alarm' key: {performance}")
        return bool(summary["drift"]) or bool(performance["alarm"])

    @task(outlets=[MODEL_DRIFT], execution_timeout=timedelta(minutes=1))
    def request_retraining(
        summary: dict[str, Any], performance: dict[str, Any], *, outlet_events=None
    ) -> None:
        """Emit the drift asset event (model_retraining is scheduled on it), with the evidence."""
        outlet_events[MODEL_DRIFT].extra = {
            "drift_summary": summary,
            "performance_summary": performance,
        }

    @task(execution_timeout=DRIFT_TIMEOUT)
    def audit_aliases() -> dict[str, Any]:
        """`safra promotions --json`: the alias audit; the aliases and what it recorded."""
        report = run_safra_json("promotions", "--json", timeout=DRIFT_TIMEOUT)
        return {"aliases": report.get("aliases"), "audit": report.get("audit")}

    summary = check_drift()
    audit = audit_aliases()
    audit >> summary
    performance = check_performance()
    audit >> performance
    retraining_needed(summary, performance) >> request_retraining(summary, performance)
