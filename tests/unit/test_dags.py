"""DAG integrity: every file in dags/ parses in Airflow's own environment, as the dag-processor
parses it, with no import errors, no I/O at import time, and the schedules, retries, tags and
task order the design asks for. No services needed (Airflow runs in a subprocess)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_venv import DAGS, PROBE_DAGS, airflow_environment, run_airflow_script

SAFRA = "/opt/safra/.venv/bin/safra"
PROJECT = "/opt/safra"
EXPECTED_ORDER = {
    "lakehouse_silver": ["ingest_bronze", "transform_silver"],
    "lakehouse_gold": ["transform_gold", "materialize_features"],
    "drift_monitor": [
        "audit_aliases",
        "check_performance",
        "check_drift",
        "retraining_needed",
        "request_retraining",
    ],
    "model_retraining": ["train_challenger", "promote_challenger"],
    "raw_retention": ["null_raw_identity"],
}
INDEPENDENT = {"check_performance", "check_drift"}
"""drift_monitor's two checks: both after the alias audit, neither waits for the other."""
COMMANDS = {
    "ingest_bronze": "ingest --once",
    "transform_silver": "transform --layer silver",
    "transform_gold": "transform --layer gold",
    "materialize_features": "features",
    "null_raw_identity": "retention --json",
}
#: tasks whose `safra ... --json` answer is their XCom (read by the DAG or by `safra demo`)
JSON_TASKS = {
    "drift_monitor": ["audit_aliases", "check_drift"],
    "model_retraining": ["train_challenger", "promote_challenger"],
}


def _probe(dags: Path, home: Path) -> dict[str, Any]:
    env = airflow_environment(home, SAFRA_BIN=SAFRA, SAFRA_PROJECT_DIR=PROJECT)
    return run_airflow_script(PROBE_DAGS, [str(dags)], env, timeout=180)


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _probe(DAGS, tmp_path_factory.mktemp("airflow-home"))


@pytest.fixture(scope="module")
def dags(parsed: dict[str, Any]) -> dict[str, Any]:
    return parsed["dags"]


def test_every_dag_file_imports_without_errors(parsed: dict[str, Any]) -> None:
    assert parsed["import_errors"] == {}
    assert sorted(parsed["dags"]) == sorted(EXPECTED_ORDER)
    assert {d["file"] for d in parsed["dags"].values()} == {
        f"{dag_id}.py" for dag_id in EXPECTED_ORDER
    }


def test_no_io_at_import_time_and_parsing_is_fast(parsed: dict[str, Any]) -> None:
    assert parsed["blocked"] == []  # no socket, subprocess or file outside dags/ opened
    assert parsed["parse_seconds"] < 1.0


def test_the_io_guard_catches_a_dag_that_connects_at_import(tmp_path: Path) -> None:
    """The guard above can fail: a DAG file opening a socket at import is reported."""
    bad = tmp_path / "dags"
    shutil.copytree(DAGS, bad)
    (bad / "talkative_dag.py").write_text(
        "import socket\nfrom airflow.sdk import DAG\n"
        "socket.create_connection(('127.0.0.1', 8080), timeout=1)\n"
        "dag = DAG(dag_id='talkative', schedule=None)\n"
    )
    result = _probe(bad, tmp_path / "home")
    assert "talkative_dag.py" in " ".join(result["import_errors"])
    assert "socket.connect" in result["blocked"] or "socket.getaddrinfo" in result["blocked"]
    assert sorted(result["dags"]) == sorted(EXPECTED_ORDER)  # the others still parse


def test_schedules(dags: dict[str, Any]) -> None:
    cron = "CronTriggerTimetable"
    assert dags["lakehouse_silver"]["schedule"] == {"cron": "*/5 * * * *", "kind": cron}
    assert dags["lakehouse_gold"]["schedule"] == {"cron": "0 * * * *", "kind": cron}
    assert dags["drift_monitor"]["schedule"] == {"cron": "0 * * * *", "kind": cron}
    assert dags["raw_retention"]["schedule"] == {"cron": "0 0 * * *", "kind": cron}
    # every 6 hours, or when drift_monitor emits the drift asset
    assert dags["model_retraining"]["schedule"] == {
        "cron": "0 */6 * * *",
        "timezone": "UTC",
        "assets": ["safra_model_drift"],
    }


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_ORDER))
def test_dag_settings(dags: dict[str, Any], dag_id: str) -> None:
    dag = dags[dag_id]
    assert dag["catchup"] is False
    assert dag["max_active_runs"] == 1
    assert "safra" in dag["tags"] and len(dag["tags"]) >= 3
    assert dag["doc_md"].lstrip().startswith(f"### {dag_id}")
    assert dag["dagrun_timeout_s"] is not None and dag["dagrun_timeout_s"] <= 2 * 3600
    for task_id, task in dag["tasks"].items():
        assert task["retries"] >= 1, task_id
        assert task["retry_delay_s"] >= 60, task_id
        assert task["execution_timeout_s"] is not None, task_id
        assert task["execution_timeout_s"] <= dag["dagrun_timeout_s"], task_id
        assert task["has_doc"], task_id


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_ORDER))
def test_tasks_run_in_order(dags: dict[str, Any], dag_id: str) -> None:
    dag = dags[dag_id]
    assert dag["order"] == EXPECTED_ORDER[dag_id]
    order = EXPECTED_ORDER[dag_id]
    for before, after in zip(order, order[1:], strict=False):
        if {before, after} <= INDEPENDENT:
            assert before not in dag["tasks"][after]["upstream"], (before, after)
            continue
        assert before in dag["tasks"][after]["upstream"], (before, after)
    assert dag["tasks"][order[0]]["upstream"] == []


def test_each_bash_task_runs_one_safra_command_in_the_project(dags: dict[str, Any]) -> None:
    tasks = {tid: t for dag in dags.values() for tid, t in dag["tasks"].items()}
    for task_id, command in COMMANDS.items():
        assert tasks[task_id]["type"] == "BashOperator"
        assert tasks[task_id]["bash_command"] == f"{SAFRA} {command}"
        assert tasks[task_id]["cwd"] == PROJECT


def test_the_json_tasks_are_python_tasks_returning_the_commands_answer(
    dags: dict[str, Any],
) -> None:
    for dag_id, task_ids in JSON_TASKS.items():
        for task_id in task_ids:
            assert dags[dag_id]["tasks"][task_id]["type"] == "_PythonDecoratedOperator", task_id


def test_the_loop_dags_start_no_run_when_unpaused(dags: dict[str, Any]) -> None:
    """No start date: unpausing them (`safra demo` does for its loop) starts no run for their
    latest past tick; the others keep their fixed start in the past."""
    assert dags["drift_monitor"]["start_date"] is None
    assert dags["model_retraining"]["start_date"] is None
    assert dags["lakehouse_silver"]["start_date"] is not None


def test_drift_monitor_takes_the_window_to_judge_as_a_param(dags: dict[str, Any]) -> None:
    assert dags["drift_monitor"]["params"] == {"since": None}  # None: the newest rows


def test_lakehouse_writers_share_one_pool(dags: dict[str, Any]) -> None:
    pools = {tid: t["pool"] for dag in dags.values() for tid, t in dag["tasks"].items()}
    assert pools["transform_silver"] == pools["transform_gold"] == "safra_lakehouse"
    assert pools["null_raw_identity"] == "safra_lakehouse"  # rewrites bronze's history
    assert pools["ingest_bronze"] == "default_pool"


def test_drift_monitor_emits_the_asset_only_after_the_short_circuit(dags: dict[str, Any]) -> None:
    tasks = dags["drift_monitor"]["tasks"]
    assert tasks["retraining_needed"]["type"] == "_ShortCircuitDecoratedOperator"
    # drift or a realized-performance alarm: both checks feed the short-circuit and the event
    assert tasks["retraining_needed"]["upstream"] == ["check_drift", "check_performance"]
    assert tasks["request_retraining"]["upstream"] == [
        "check_drift", "check_performance", "retraining_needed",
    ]  # fmt: skip
    assert tasks["request_retraining"]["outlets"] == ["safra_model_drift"]
    assert tasks["check_drift"]["outlets"] == tasks["retraining_needed"]["outlets"] == []
    assert tasks["check_performance"]["outlets"] == []


def test_no_credentials_in_dag_files() -> None:
    text = "\n".join(p.read_text() for p in DAGS.glob("*.py")).lower()
    for needle in ("password", "secret", "api_key", "token", "redis://", "http://"):
        assert needle not in text, needle


PARSE_JSON = r"""
import json, sys
sys.path.insert(0, sys.argv[1])  # what Airflow's bundle loader does for the dags folder
from safra_tasks import parse_json_object

out = "drift check of version 3\n{\n  \"drift\": true,\n  \"share\": 0.18\n}\n"
results = [parse_json_object(out, "safra drift --json"), parse_json_object('{"drift": false}', "x")]
try:
    parse_json_object("no json here {oops", "safra drift --json")
except RuntimeError as exc:
    results.append(str(exc))
print("SAFRA_RESULT " + json.dumps(results))
"""


def test_the_drift_summary_is_read_from_pretty_printed_output(tmp_path: Path) -> None:
    env = airflow_environment(tmp_path)
    first, second, error = run_airflow_script(PARSE_JSON, [str(DAGS)], env, timeout=120)
    assert first == {"drift": True, "share": 0.18}
    assert second == {"drift": False}
    assert error.startswith("`safra drift --json` printed no JSON object")


DRIFT_WINDOW = r"""
import json, sys
from types import SimpleNamespace
sys.path.insert(0, sys.argv[1])
from safra_tasks import drift_window_start

def event(since):
    window = {} if since is None else {"since": since}
    return SimpleNamespace(extra={"drift_summary": {"drift": True, "window": window}})

print("SAFRA_RESULT " + json.dumps([
    drift_window_start([event("2025-06-01T00:00:00+00:00")]),
    # several drift events collapsed into one run: the earliest window (offsets compared)
    drift_window_start([event("2025-06-01T00:00:00+00:00"), event("2025-05-31T23:00:00-02:00"),
                        event("2025-03-01"), event(None)]),
    drift_window_start([event(None)]),  # a check of the newest rows: the default window
    drift_window_start([SimpleNamespace(extra={})]),  # an event from elsewhere
    drift_window_start([]),  # a scheduled run: no event
    drift_window_start(None),
]))
"""


def test_the_retraining_window_is_the_earliest_the_drift_events_name(tmp_path: Path) -> None:
    env = airflow_environment(tmp_path)
    results = run_airflow_script(DRIFT_WINDOW, [str(DAGS)], env, timeout=120)
    assert results == [
        "2025-06-01T00:00:00+00:00", "2025-03-01", None, None, None, None
    ]  # fmt: skip
