"""Each DAG run once with ``dag.test()`` against the real local stack, tasks succeeding in order;
and ``safra stack up --with airflow`` serving the UI on 127.0.0.1, ``stack down airflow``
stopping it and nothing else.

dag.test() runs in Airflow's own venv with its own AIRFLOW_HOME (SQLite, migrated once here);
the tasks run the real ``.venv/bin/safra`` commands in the repository. Training and drift use a
model name of their own (``SAFRA_MODEL_NAME``), deleted at the end, so the shared registry's
champion is never touched. Silver and gold are incremental over what the lakehouse already holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from commands import stack
from safra.processes import free_port
from safra.settings import Settings
from tests.airflow_venv import (
    DAG_TEST,
    DAGS,
    REPO,
    airflow_cli,
    airflow_environment,
    require_airflow_venv,
    run_airflow_script,
)

pytestmark = pytest.mark.stack

SAFRA_BIN = REPO / ".venv" / "bin" / "safra"
SEED_APPLICATIONS, SEED = 3_000, 4242  # fixed: the e2e loop runs on what these leave


@pytest.fixture(scope="module")
def model_name(local_stack: Settings) -> Any:
    name = f"safra-dagtest-{uuid.uuid4().hex[:8]}"
    yield name
    from mlflow import MlflowClient

    with contextlib.suppress(Exception):  # nothing registered when training failed
        MlflowClient(local_stack.mlflow_tracking_uri).delete_registered_model(name)


@pytest.fixture(scope="module")
def seeded(local_stack: Settings) -> int:
    """Applications (with every outcome known) waiting in the main topics: the DAGs run on the
    main tables, which a fresh stack has empty. A year old and more, so training may use them."""
    from pipelines.producer import produce

    now = datetime.now(UTC)
    report = produce(
        local_stack, SEED_APPLICATIONS, seed=SEED,
        start=now - timedelta(days=900), end=now - timedelta(days=400), outcomes_until=now,
    )  # fmt: skip
    assert report.failed == 0
    return report.applications


@pytest.fixture(scope="module")
def airflow_env(
    local_stack: Settings,
    model_name: str,
    seeded: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    require_airflow_venv()
    env = airflow_environment(
        tmp_path_factory.mktemp("airflow-home"),
        SAFRA_BIN=str(SAFRA_BIN),
        SAFRA_PROJECT_DIR=str(REPO),
        SAFRA_MODEL_NAME=model_name,
    )
    airflow_cli(["db", "migrate"], env)
    return env


def run_dag(
    dag_id: str, env: dict[str, str], timeout: float = 900, conf: dict[str, Any] | None = None
) -> dict[str, Any]:
    args = [str(DAGS), dag_id, *([json.dumps(conf)] if conf is not None else [])]
    return run_airflow_script(DAG_TEST, args, env, timeout=timeout)


def assert_ran_in_order(result: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    ran = [(t["task_id"], t["state"]) for t in result["tasks"]]
    assert ran == expected, f"{ran}\n{result['output_tail']}"
    finished = [t for t in result["tasks"] if t["state"] == "success"]
    for before, after in zip(finished, finished[1:], strict=False):
        assert before["end"] <= after["start"], (before, after)


def _gate_report(settings: Settings, layer: str) -> Path:
    return settings.reports_dir / "quality" / f"{layer}-latest.html"


def test_lakehouse_silver_ingests_then_builds_silver(
    airflow_env: dict[str, str], local_stack: Settings
) -> None:
    began = time.time()
    result = run_dag("lakehouse_silver", airflow_env)
    assert_ran_in_order(result, [("ingest_bronze", "success"), ("transform_silver", "success")])
    assert result["state"] == "success"
    assert _gate_report(local_stack, "silver").stat().st_mtime > began  # the gate ran


def test_lakehouse_gold_builds_gold_then_materializes(
    airflow_env: dict[str, str], local_stack: Settings
) -> None:
    began = time.time()
    result = run_dag("lakehouse_gold", airflow_env)
    assert_ran_in_order(
        result, [("transform_gold", "success"), ("materialize_features", "success")]
    )
    assert result["state"] == "success"
    assert _gate_report(local_stack, "gold").stat().st_mtime > began


def test_a_failed_silver_gate_fails_the_gold_dag_with_its_reason(
    airflow_env: dict[str, str], local_stack: Settings
) -> None:
    """A batch failing the silver gate arrives through Kafka: the silver DAG's transform fails
    and quarantines it; the gold DAG's transform then refuses to run on the unpublished silver,
    saying why, and nothing is materialized. Afterwards the batch is removed at its source and
    silver published again, so the tests after this one run on what they would have."""
    from pipelines.producer import AvroEncoder, make_producer
    from pipelines.simulator import generate_applications
    from pipelines.transform import run_transform
    from safra.lakehouse import trino_query
    from tests.integration.test_transform import _invalidate

    now = datetime.now(UTC)
    # the gate judges the whole table: 300 zero amounts beside the 3,000 seeded rows is 9 % invalid
    apps = generate_applications(
        300, SEED + 7, now - timedelta(days=900), now - timedelta(days=400)
    )
    apps = [_invalidate(a, "amount") for a in apps]
    encoder, producer = AvroEncoder("application", 2), make_producer(local_stack)
    for app in apps:
        producer.produce(local_stack.topic_applications, encoder(app),
                         app["id_solicitacao"].encode(), headers=encoder.headers)  # fmt: skip
    assert producer.flush(30) == 0
    bronze = f'{local_stack.iceberg_catalog}."{local_stack.bronze_schema}".applications'
    try:
        verbose = {**airflow_env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}  # the task's output
        silver = run_dag("lakehouse_silver", verbose)
        assert_ran_in_order(silver, [("ingest_bronze", "success"), ("transform_silver", "failed")])
        tail = silver["output_tail"]
        assert "registro_valido" in tail, tail[-4000:]
        assert "quarantined as tag 'quarantine-silver-" in tail, tail[-4000:]

        gold = run_dag("lakehouse_gold", verbose)
        ran = {t["task_id"]: t["state"] for t in gold["tasks"]}
        assert ran == {"transform_gold": "failed", "materialize_features": "upstream_failed"}
        assert "silver is not published" in gold["output_tail"], gold["output_tail"][-4000:]
        assert "quarantine-silver-" in gold["output_tail"]
    finally:
        keys = ", ".join(f"'{a['id_solicitacao']}'" for a in apps)
        trino_query(local_stack, f"delete from {bronze} where id_solicitacao in ({keys})")
        assert run_transform(local_stack, select_layers=["silver"]).passed


def test_model_retraining_trains_then_promotes(
    airflow_env: dict[str, str], local_stack: Settings, model_name: str
) -> None:
    from mlflow import MlflowClient

    result = run_dag("model_retraining", airflow_env, timeout=1800)
    assert_ran_in_order(
        result, [("train_challenger", "success"), ("promote_challenger", "success")]
    )
    from ml.alias_history import promotion_log

    # the DAG's own model: training registered version 1 as challenger (on record), and the
    # promotion made it the first champion: it keeps the guardrails on the rows it did not train on
    client = MlflowClient(local_stack.mlflow_tracking_uri)
    assert client.get_model_version_by_alias(model_name, "challenger").version == "1"
    log = promotion_log(client, model_name)
    assert log["action"].tolist() == ["trained", "first-champion"], log["reason"].tolist()
    assert log["challenger_version"].tolist() == ["1", "1"]
    assert client.get_registered_model(model_name).aliases.get("champion") == "1"
    # the tasks' answers are their XComs: a run no drift event started trains on all history
    trained, decision = result["xcoms"]["train_challenger"], result["xcoms"]["promote_challenger"]
    assert (trained["model_name"], trained["version"]) == (model_name, "1")
    assert "training_set.since" not in trained["lineage"]
    assert (decision["action"], str(decision["champion_version_after"])) == ("first-champion", "1")


def test_drift_monitor_emits_the_retraining_asset_only_on_drift(
    airflow_env: dict[str, str], local_stack: Settings, model_name: str
) -> None:
    """Runs after the retraining test: the DAG's model has a version to check, made champion
    here if the promotion refused it."""
    from mlflow import MlflowClient

    client = MlflowClient(local_stack.mlflow_tracking_uri)
    if "champion" not in client.get_registered_model(model_name).aliases:
        client.set_registered_model_alias(model_name, "champion", "1")
    # triggered with a window, as `safra demo` does: `safra drift --since` judges it
    since = (datetime.now(UTC) - timedelta(days=1000)).replace(microsecond=0)
    result = run_dag("drift_monitor", airflow_env, conf={"since": since.isoformat()})
    summary = result["xcoms"]["check_drift"]
    assert summary["window"]["since"] == since.isoformat(), result["output_tail"][-3000:]
    performance = result["xcoms"]["check_performance"]
    drift, alarm = summary["drift"], performance["alarm"]
    assert isinstance(drift, bool) and isinstance(alarm, bool)
    # the seeded applications are 400-900 days old, all outcomes known: some are matured
    assert performance["matured"] is True, performance["message"]
    assert performance["model_name"] == model_name
    # the two checks are independent (either may run first); then the short-circuit, the event
    ran = [t["task_id"] for t in result["tasks"]]
    checks = sorted(ran[1:3])
    assert checks == ["check_drift", "check_performance"], ran
    assert_ran_in_order(
        result,
        [
            ("audit_aliases", "success"),
            *((check, "success") for check in ran[1:3]),
            ("retraining_needed", "success"),
            ("request_retraining", "success" if drift or alarm else "skipped"),
        ],
    )
    # the evidence travels with the event into the retraining run: both checks' summaries
    expected_events = (
        [{"asset": "safra_model_drift", "task_id": "request_retraining",
          "extra": {"drift_summary": summary, "performance_summary": performance}}]
        if drift or alarm else []
    )  # fmt: skip
    assert result["asset_events"] == expected_events


def test_stack_up_with_airflow_serves_the_ui_and_down_stops_only_airflow(
    local_stack: Settings, tmp_path: Path
) -> None:
    """An Airflow of its own (own data folder and port, no other local service), so that the
    shared stack, and an Airflow already running on it, are left alone."""
    require_airflow_venv()
    shared_before = {st.name: st.pid for st in stack.status(local_stack)}
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "SAFRA_DATA_DIR": str(tmp_path / "data"),
        "SAFRA_TRINO_CA_CERT": local_stack.trino_ca_cert,  # the shared stack's certificate
        "SAFRA_STACK_SERVICES": "",
        "SAFRA_AIRFLOW_PORT": str(port),
    }

    def safra(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SAFRA_BIN), *args], env=env, cwd=REPO, capture_output=True, text=True,
            timeout=600, check=False,
        )  # fmt: skip

    up = safra("stack", "up", "--with", "airflow")
    group: list[psutil.Process] = []
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "airflow" in up.stdout and "started" in up.stdout
        pid = json.loads((tmp_path / "data" / "run" / "airflow.pid").read_text())["pid"]
        leader = psutil.Process(pid)
        group = [leader, *leader.children(recursive=True)]
        commands = " ".join(" ".join(p.cmdline()) for p in group)
        # the four components in one process group (the API server retitles its process)
        for component in ("api_server", "scheduler", "dag-processor", "triggerer"):
            assert component in commands, component
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5) as resp:
            health = json.loads(resp.read())
        assert health["metadatabase"]["status"] == "healthy"
        assert health["scheduler"]["status"] == "healthy"
        with urllib.request.urlopen(f"{base}/", timeout=5) as resp:  # the UI
            assert resp.status == 200
            assert "<html" in resp.read().decode().lower()
        # only 127.0.0.1 listens on the port
        listeners = {
            c.laddr.ip
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
        assert listeners == {"127.0.0.1"}
        # the admin password is generated into the data folder, readable by its owner only
        passwords = tmp_path / "data" / "airflow" / "simple_auth_manager_passwords.json.generated"
        assert passwords.stat().st_mode & 0o077 == 0
        password = json.loads(passwords.read_text())["admin"]
        login = urllib.request.Request(
            f"{base}/auth/token", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"username": "admin", "password": password}).encode(),
        )  # fmt: skip
        with urllib.request.urlopen(login, timeout=10) as resp:
            assert json.loads(resp.read())["access_token"]
        assert password not in (tmp_path / "data" / "logs" / "airflow.log").read_text()
    finally:
        down = safra("stack", "down", "airflow")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped: airflow" in down.stdout
    _gone, alive = psutil.wait_procs(group, timeout=30)
    assert alive == []  # the whole process group is gone
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    # the shared stack is as it was
    assert {st.name: st.pid for st in stack.status(local_stack)} == shared_before
