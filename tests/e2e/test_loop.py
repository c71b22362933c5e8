"""The loop end to end on the real stack, scaled down: drift injected → detected → retraining →
promotion decision → the API answers with the champion, and no request failed during the load.
The alias switch under load itself is also tested with a forced move in
tests/integration/test_serving.py.

It runs ``safra demo --scale ci`` (the CLI, as a user does) on the test stack's main tables and
model, and reads its ``--json`` summary and its console output. The loop after the drift runs in
the test stack's Airflow (started by the demo): the runs it names are checked in Airflow itself,
through its REST API.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from commands.airflow_api import AirflowClient
from commands.demo import ScoringClient
from safra.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SAFRA_BIN = REPO / ".venv" / "bin" / "safra"

# the demo (its subprocess timeout below) runs in the first test's setup: the same bound, not
# the suite's default of 900 s (the loop in Airflow adds task start-ups and the alias audit)
pytestmark = [pytest.mark.stack, pytest.mark.timeout(1800)]


ANSI_ESCAPE = re.compile(r"\x1b\[")
JAVA_TRACE = re.compile(
    r"^\s+at [\w$.]+\(|Exception in thread|^(java|org\.apache)\.\S+(Exception|Error)"
)
THIRD_PARTY = re.compile(
    r"\b(WARN|INFO|DEBUG)\b.*\b(org\.apache|py4j|feast|mlflow|alembic)\b|View run|it/s\]"
)


@pytest.fixture(scope="module")
def demo_run(local_stack: Settings) -> subprocess.CompletedProcess[str]:
    """``safra demo --scale ci`` as a user runs it (the test stack's settings are inherited)."""
    proc = subprocess.run(
        [str(SAFRA_BIN), "demo", "--scale", "ci", "--seed", "2026", "--json"],
        capture_output=True, text=True, timeout=1800, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def summary(demo_run: subprocess.CompletedProcess[str]) -> SimpleNamespace:
    data = json.loads(demo_run.stdout[demo_run.stdout.index("\n{\n") :])
    data["stages"] = [SimpleNamespace(**stage) for stage in data["stages"]]
    return SimpleNamespace(**data)


def test_the_console_shows_safras_lines_only(demo_run, local_stack: Settings) -> None:
    """No Java stack trace, ANSI escape or third-party log line on the console: they are in the
    demo's log file (which the console names)."""
    console = demo_run.stdout + demo_run.stderr
    assert str(local_stack.logs_dir / "demo.log") in console
    for line in console.splitlines():
        assert not ANSI_ESCAPE.search(line), line
        assert not JAVA_TRACE.search(line), line
        assert not THIRD_PARTY.search(line), line
    assert "▶ promote under load" in console
    log = (local_stack.logs_dir / "demo.log").read_text(errors="replace")
    # the rest went to the file: more lines there than in the progress display (the --json
    # summary after it is not display; the loop's tasks log in Airflow's task logs)
    display = demo_run.stdout[: demo_run.stdout.index("\n{\n")]
    assert len(log.splitlines()) > len(display.splitlines())


def test_the_recalibrated_bureau_is_detected_as_drift(summary) -> None:
    drift = summary.figures["drift"]
    assert drift["drift"] is True
    assert "serasa_score" in drift["drifted_columns"]
    assert drift["drifted_share"] >= drift["threshold"]
    assert drift["population_drift"] is True and drift["drifted_segments"]


def test_the_realized_performance_of_the_old_champion_alarms(summary) -> None:
    """The matured window (the 90 days before a year ago) is the drift window's end: the old
    champion over-estimates the recalibrated applicants' risk, on outcomes that are all known."""
    performance = summary.figures["performance"]
    assert performance["matured"] is True, performance["message"]
    assert performance["alarm"] is True, performance
    metrics = performance["sources"]["applications"]["metrics"]
    assert metrics["mean_prob"] > metrics["observed_rate"]


def test_the_post_drift_challenger_is_promoted_by_the_rule(summary, local_stack: Settings) -> None:
    """The bureau recalibration leaves the old champion over-estimating risk; the challenger
    trained on the new world keeps the guardrails and is promoted (10 of 10 seeds with the
    logistic learner in bench/promotion_bench.py: 8 because the old champion breaks the
    calibration guardrail, 2 on a significant F1 gain). Whichever basis the rule names, the
    figures behind it hold."""
    promotion = summary.figures["promotion"]
    assert str(promotion["challenger_version"]) == str(summary.figures["retraining"]["version"])
    assert promotion["action"] == "promoted", promotion["reasons"]
    comparison = promotion["comparison"]
    if promotion["basis"] == "replaces-failing-champion":
        assert promotion["champion_metrics"]["calibration_gap"] > 0.05
        assert comparison["brier_gain"]["low"] > 0 and comparison["f1_gain"]["high"] >= 0
    else:
        assert promotion["basis"] == "f1-gain", promotion["basis"]
        assert comparison["f1_gain"]["low"] > local_stack.promotion_margin
    assert comparison["rows"] == promotion["holdout_rows"] and comparison["seed"] == 2026
    assert str(promotion["champion_version_after"]) == str(promotion["challenger_version"])
    assert promotion["previous_champion_version"] == promotion["champion_version_before"]


def test_no_request_failed_and_the_api_serves_the_champion(summary, local_stack: Settings) -> None:
    load = summary.figures["load"]
    promotion = summary.figures["promotion"]
    champion = str(promotion["champion_version_after"])
    assert load["failed"] == 0, load["errors"]
    assert load["sent"] == load["ok"] > 0
    assert load["versions"].get(champion, 0) > 0  # answers carried it before the load stopped
    assert "loop_seconds" in summary.figures
    # every worker follows the alias on its own: within the watch interval (and a load), all of
    # them answer with the champion; several calls reach both workers
    deadline = time.monotonic() + 2 * local_stack.champion_poll_s + 60
    client = ScoringClient(local_stack)
    try:
        while True:
            seen = {str(client.model_info()["model_version"]) for _ in range(6)}
            if seen == {champion} or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert seen == {champion}
    finally:
        client.close()


def test_the_story_ends_with_where_to_look(summary) -> None:
    assert [s.name for s in summary.stages][:3] == ["stack", "history", "ingest (history)"]
    assert summary.stages[-1].name == "promote under load"
    assert {"MLflow registry", "Evidently reports", "scoring API docs", "Airflow"} <= set(
        summary.urls
    )
    airflow = summary.figures["airflow"]
    assert summary.urls["Airflow drift_monitor run"] == airflow["drift_monitor"]["url"]
    assert summary.urls["Airflow model_retraining run"] == airflow["model_retraining"]["url"]


@pytest.fixture(scope="module")
def airflow(local_stack: Settings):
    client = AirflowClient(local_stack)
    yield client
    client.close()


def test_drift_was_checked_by_an_airflow_run_on_the_drift_window(
    summary, airflow: AirflowClient, demo_run
) -> None:
    """The demo triggered drift_monitor with its drift window; the run checked that window and
    emitted the drift asset. Airflow itself (not only the summary) says so."""
    run = summary.figures["airflow"]["drift_monitor"]
    since = run["conf"]["since"]
    assert summary.figures["drift"]["window"]["since"] == since  # `safra drift --since` got it
    assert run["state"] == "success" and run["run_type"] == "manual"
    assert run["asset_event"]["asset"] == "safra_model_drift"
    in_airflow = airflow.dag_run("drift_monitor", run["run_id"])
    assert (in_airflow["state"], in_airflow["conf"]) == ("success", {"since": since})
    tasks = airflow.task_instances("drift_monitor", run["run_id"])
    for task_id in ("audit_aliases", "check_drift", "check_performance", "retraining_needed",
                    "request_retraining"):  # fmt: skip
        assert tasks[task_id]["state"] == "success", task_id
    assert airflow.xcom("drift_monitor", run["run_id"], "check_drift") == summary.figures["drift"]
    performance = airflow.xcom("drift_monitor", run["run_id"], "check_performance")
    assert performance == summary.figures["performance"]
    console = demo_run.stdout  # progress lines while the demo waited on the runs
    assert "triggered drift_monitor run" in console and run["run_id"] in console


def test_the_drift_event_started_the_retraining_run_that_promoted(
    summary, airflow: AirflowClient
) -> None:
    """model_retraining ran because of drift_monitor's event (asset-triggered, that event
    upstream), trained on the window the drift check judged, and its promotion task made the
    challenger champion: the promotion in the summary is that task's answer."""
    drift_run = summary.figures["airflow"]["drift_monitor"]
    run = summary.figures["airflow"]["model_retraining"]
    assert run["run_type"] == "asset_triggered" and run["state"] == "success"
    assert run["tasks"] == {"train_challenger": "success", "promote_challenger": "success"}
    in_airflow = airflow.dag_run("model_retraining", run["run_id"])
    assert (in_airflow["run_type"], in_airflow["state"]) == ("asset_triggered", "success")
    upstream = airflow.upstream_asset_events("model_retraining", run["run_id"])
    assert [(e["source_dag_id"], e["source_run_id"], e["id"]) for e in upstream] == [
        ("drift_monitor", drift_run["run_id"], drift_run["asset_event"]["id"])
    ]
    # trained on the window the drift check judged, not on the whole history
    assert summary.figures["retraining"]["since"] == drift_run["conf"]["since"]
    trained = airflow.xcom("model_retraining", run["run_id"], "train_challenger")
    assert str(trained["version"]) == str(summary.figures["retraining"]["version"])
    decision = airflow.xcom("model_retraining", run["run_id"], "promote_challenger")
    assert decision["action"] == "promoted"
    assert decision == summary.figures["promotion"]
    # the loop's DAGs are paused again as the demo found them (a fresh stack: paused)
    for dag_id, was_paused in summary.figures["airflow"]["paused_before"].items():
        assert airflow.dag(dag_id)["is_paused"] == was_paused, dag_id
