"""The demo's Airflow client against Airflow's REST API as recorded answers (the edge Safra does
not own): a failed run is reported with its DAG, run, failed task, log and last error; an
expired token is renewed once; an Airflow that does not answer is named with the fix."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest

from commands.airflow_api import AirflowClient, AirflowError
from safra.processes import free_port
from safra.settings import Settings

RUN = "safra_demo__20260101T000000Z"
GENERATED = secrets.token_urlsafe(16)
"""What Airflow would have generated at its first start (made up per test run)."""


def _settings(tmp_path: Path, **extra: str) -> Settings:
    passwords = tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated"
    passwords.parent.mkdir(parents=True)
    passwords.write_text(json.dumps({"admin": GENERATED}))
    return Settings(_env_file=None, data_dir=tmp_path, **{"airflow_port": 8088, **extra})


class FakeAirflow:
    """Answers like Airflow 3.3's API: a run that fails in ``check_drift``."""

    def __init__(self) -> None:
        self.sign_ins: list[dict[str, str]] = []
        self.polls = 0
        self.expire_next = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/auth/token":
            self.sign_ins.append(json.loads(request.content))
            return httpx.Response(201, json={"access_token": f"token-{len(self.sign_ins)}"})
        assert request.headers["Authorization"] == f"Bearer token-{len(self.sign_ins)}"
        if self.expire_next:
            self.expire_next = False
            return httpx.Response(401, json={"detail": "expired"})
        if path == f"/api/v2/dags/drift_monitor/dagRuns/{RUN}":
            self.polls += 1
            state = "running" if self.polls == 1 else "failed"
            return httpx.Response(200, json={"dag_run_id": RUN, "state": state, "conf": {}})
        if path == f"/api/v2/dags/drift_monitor/dagRuns/{RUN}/taskInstances":
            state = "running" if self.polls == 1 else "failed"
            return httpx.Response(
                200,
                json={"task_instances": [
                    {"task_id": "audit_aliases", "state": "success", "try_number": 1},
                    {"task_id": "check_drift", "state": state, "try_number": 3},
                ]},
            )  # fmt: skip
        if path.endswith("/taskInstances/check_drift/logs/3"):
            return httpx.Response(
                200,
                json={"content": [
                    {"event": "running safra drift --json", "level": "info"},
                    {"event": "Task failed with exception", "level": "error",
                     "error_detail": [{"exc_type": "RuntimeError",
                                       "exc_value": "`safra drift --json` exited with 1: ..."}]},
                ]},
            )  # fmt: skip
        return httpx.Response(404, json={"detail": f"no {path}"})


def test_a_failed_run_names_the_dag_the_run_the_task_its_log_and_its_error(
    tmp_path: Path,
) -> None:
    fake = FakeAirflow()
    client = AirflowClient(_settings(tmp_path), transport=httpx.MockTransport(fake))
    lines: list[str] = []
    with pytest.raises(AirflowError) as failure:
        client.wait_for_run("drift_monitor", RUN, timeout_s=60, on_progress=lines.append,
                            poll_s=0.01)  # fmt: skip
    message = str(failure.value)
    assert message.startswith(f"drift_monitor run {RUN} failed: task check_drift failed (try 3)")
    assert f"http://127.0.0.1:8088/dags/drift_monitor/runs/{RUN}/tasks/check_drift" in message
    assert "last error: RuntimeError: `safra drift --json` exited with 1: ..." in message
    # a progress line per change of the tasks' states
    assert lines[0].startswith("drift_monitor running: audit_aliases success, check_drift running")
    assert lines[1].startswith("drift_monitor failed: audit_aliases success, check_drift failed")
    # signed in once, as the local stack's admin with its generated password
    assert fake.sign_ins == [{"username": "admin", "password": GENERATED}]


def test_an_expired_token_is_renewed_once(tmp_path: Path) -> None:
    fake = FakeAirflow()
    client = AirflowClient(_settings(tmp_path), transport=httpx.MockTransport(fake))
    assert client.dag_run("drift_monitor", RUN)["state"] == "running"
    fake.expire_next = True
    assert client.dag_run("drift_monitor", RUN)["state"] == "failed"
    assert len(fake.sign_ins) == 2
    assert client.dag("no_such_dag") is None  # a 404 the caller expects
    with pytest.raises(AirflowError, match="HTTP 404"):
        client.dag_run("drift_monitor", "another-run")


def test_an_airflow_that_does_not_answer_is_named_with_the_fix(tmp_path: Path) -> None:
    client = AirflowClient(_settings(tmp_path, airflow_port=free_port()), timeout_s=2)
    with pytest.raises(AirflowError, match=r"Airflow does not answer at http://127\.0\.0\.1:\d+"):
        client.dag("drift_monitor")
    with pytest.raises(AirflowError, match=r"safra stack up --with airflow"):
        client.dag("drift_monitor")


def test_the_run_links_are_the_ui_pages(tmp_path: Path) -> None:
    client = AirflowClient(_settings(tmp_path, airflow_url="https://airflow.example/"))
    run = "asset_triggered__2026-01-01T00:00:00.123+00:00"
    assert client.run_url("model_retraining", run) == (
        "https://airflow.example/dags/model_retraining/runs/"
        "asset_triggered__2026-01-01T00%3A00%3A00.123%2B00%3A00"
    )
