"""Airflow's REST API (v2) as `safra demo` drives the DAGs: sign in, unpause, trigger a run with a
conf, follow it to its end, read what its tasks returned, and find the run an asset event started.
The DAGs never import this (they run `safra` commands: dags/safra_tasks.py).

Sign-in: Airflow 3's API takes a JWT bearer token, issued by the auth manager at
``POST /auth/token`` for a user name and password. The local stack runs the simple auth manager
(user ``admin``, password generated at its first start into
``<data_dir>/airflow/simple_auth_manager_passwords.json.generated``); another Airflow takes
``SAFRA_AIRFLOW_URL``, ``SAFRA_AIRFLOW_USERNAME`` and ``SAFRA_AIRFLOW_PASSWORD``. An expired
token (401) is renewed once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from commands.stack.services import airflow_passwords_file
from safra.settings import Settings

log = logging.getLogger(__name__)

FINISHED = ("success", "failed")
"""A DAG run's end states."""


class AirflowError(RuntimeError):
    """Airflow cannot be reached or refused a request, or a DAG run failed; the message names
    the DAG, the run, the failed task and where its log is."""


class AirflowClient:
    """One signed-in client of an Airflow's REST API (``/api/v2``) and the UI links of its runs."""

    def __init__(
        self,
        settings: Settings,
        timeout_s: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.s = settings
        self.base_url = settings.airflow_base_url
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)
        self._token: str | None = None

    def close(self) -> None:
        self._client.close()

    # --- where to look --------------------------------------------------------------------

    def run_url(self, dag_id: str, run_id: str) -> str:
        """The run's page in Airflow's UI (its graph, tasks and their logs)."""
        return f"{self.base_url}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"

    def task_url(self, dag_id: str, run_id: str, task_id: str) -> str:
        """A task instance's page in the UI: its log first."""
        return f"{self.run_url(dag_id, run_id)}/tasks/{quote(task_id)}"

    def task_log_file(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> Path | None:
        """The task log's file on this machine (the local stack's Airflow), when it is there."""
        path = (
            self.s.data_dir / "airflow" / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
            / f"task_id={task_id}" / f"attempt={try_number}.log"
        )  # fmt: skip
        return path if not self.s.airflow_url and path.exists() else None

    # --- requests -------------------------------------------------------------------------

    def _password(self) -> str:
        password = self.s.airflow_password.get_secret_value()
        if password:
            return password
        path = airflow_passwords_file(self.s)
        try:
            return str(json.loads(path.read_text())[self.s.airflow_username])
        except (OSError, ValueError, KeyError) as exc:
            raise AirflowError(
                f"no password for Airflow user {self.s.airflow_username!r}: SAFRA_AIRFLOW_PASSWORD "
                f"is empty and the local stack's {path} does not name it ({exc}); "
                "`safra stack up --with airflow` generates it"
            ) from exc

    def _sign_in(self) -> str:
        response = self._send(
            "POST", "/auth/token",
            json={"username": self.s.airflow_username, "password": self._password()},
        )  # fmt: skip
        if response.status_code not in (200, 201):
            raise AirflowError(
                f"Airflow at {self.base_url} refused the sign-in of {self.s.airflow_username!r}: "
                f"HTTP {response.status_code} {response.text[:200]}"
            )
        return str(response.json()["access_token"])

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            where = (
                f"; the local stack starts it with `safra stack up --with airflow` "
                f"(log: {self.s.logs_dir / 'airflow.log'})"
                if not self.s.airflow_url
                else ""
            )
            raise AirflowError(
                f"Airflow does not answer at {self.base_url} ({type(exc).__name__}: {exc}){where}"
            ) from exc

    def request(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """``method`` on ``/api/v2<path>``, signed in; the JSON answer (None for a 404 when
        ``missing_ok``). AirflowError naming the request and Airflow's answer otherwise."""
        headers = dict(kwargs.pop("headers", {}))
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._sign_in()
            headers["Authorization"] = f"Bearer {self._token}"
            response = self._send(method, f"/api/v2{path}", headers=headers, **kwargs)
            if response.status_code == 401 and attempt == 1:
                self._token = None  # expired: sign in again, once
                continue
            break
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise AirflowError(
                f"Airflow {method} /api/v2{path}: HTTP {response.status_code} {response.text[:300]}"
            )
        return response.json() if response.content else None

    # --- DAGs and runs ----------------------------------------------------------------------

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as Airflow knows it (``is_paused``...), None when its DAG processor has not
        (yet) parsed it."""
        return self.request("GET", f"/dags/{quote(dag_id)}", missing_ok=True)

    def wait_for_dags(self, dag_ids: list[str], timeout_s: float = 180.0) -> dict[str, Any]:
        """Each DAG, once the DAG processor has parsed it; AirflowError naming the import errors
        Airflow reports when one is still missing after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        found: dict[str, Any] = {}
        while True:
            for dag_id in dag_ids:
                if dag_id not in found and (dag := self.dag(dag_id)) is not None:
                    found[dag_id] = dag
            if len(found) == len(dag_ids):
                return found
            if time.monotonic() > deadline:
                errors = self.request("GET", "/importErrors").get("import_errors", [])
                details = "; ".join(
                    f"{e.get('filename')}: {str(e.get('stack_trace', '')).strip()[-300:]}"
                    for e in errors
                )
                missing = sorted(set(dag_ids) - set(found))
                raise AirflowError(
                    f"Airflow at {self.base_url} has no DAG {', '.join(missing)} after "
                    f"{timeout_s:.0f} s; import errors: {details or 'none reported'}"
                )
            time.sleep(2.0)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request(
            "PATCH", f"/dags/{quote(dag_id)}", params={"update_mask": "is_paused"},
            json={"is_paused": paused},
        )  # fmt: skip

    def trigger(
        self, dag_id: str, conf: dict[str, Any], run_id: str | None = None, note: str | None = None
    ) -> dict[str, Any]:
        """A manual run of ``dag_id`` with ``conf`` (no logical date: runs now); the new run."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        if note:
            body["note"] = note
        return self.request("POST", f"/dags/{quote(dag_id)}/dagRuns", json=body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}")

    def active_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's queued and running runs."""
        answer = self.request(
            "GET", f"/dags/{quote(dag_id)}/dagRuns", params={"state": ["queued", "running"]}
        )
        return list(answer.get("dag_runs", []))

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """The run's task instances by task id (``state``, ``try_number``...)."""
        answer = self.request(
            "GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        )
        return {ti["task_id"]: ti for ti in answer.get("task_instances", [])}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """What a task returned (its ``return_value`` XCom), as JSON."""
        answer = self.request(
            "GET",
            f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
            f"{quote(task_id)}/xcomEntries/{quote(key)}",
        )
        value = answer.get("value")
        return json.loads(value) if isinstance(value, str) else value

    def asset_events(self, *, source_dag_id: str, source_run_id: str) -> list[dict[str, Any]]:
        """The asset events a run emitted, each with the runs it started (``created_dagruns``)."""
        answer = self.request(
            "GET", "/assets/events",
            params={"source_dag_id": source_dag_id, "source_run_id": source_run_id},
        )  # fmt: skip
        return list(answer.get("asset_events", []))

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The asset events that triggered a run."""
        answer = self.request(
            "GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/upstreamAssetEvents"
        )
        return list(answer.get("asset_events", []))

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        timeout_s: float,
        on_progress: Callable[[str], None] = lambda line: None,
        until: Callable[[dict[str, dict[str, Any]]], bool] | None = None,
        poll_s: float = 2.0,
        every_s: float = 30.0,
    ) -> dict[str, Any]:
        """Follow a run until it ends (or ``until(task instances)`` holds); the run with its
        ``tasks``. A progress line on each change of its tasks' states, and every ``every_s``.
        AirflowError when it fails (naming the failed task, its log and its last error) or
        has not ended after ``timeout_s``."""
        began = time.monotonic()
        shown, shown_at = "", 0.0
        while True:
            run = self.dag_run(dag_id, run_id)
            tasks = self.task_instances(dag_id, run_id)
            run["tasks"] = tasks
            states = ", ".join(f"{t} {ti.get('state') or 'waiting'}" for t, ti in tasks.items())
            line = f"{dag_id} {run['state']}: {states or 'no task started yet'}"
            now = time.monotonic()
            if line != shown or now - shown_at >= every_s:
                on_progress(f"{line} ({now - began:.0f} s)")
                for task_id, ti in tasks.items():
                    if ti.get("state") == "up_for_retry" and f"{task_id} up_for_retry" not in shown:
                        on_progress(self._retry_line(dag_id, run_id, ti))
                shown, shown_at = line, now
            if run["state"] == "failed":
                raise AirflowError(self.failure(dag_id, run_id, tasks))
            if run["state"] == "success" or (until is not None and until(tasks)):
                return run
            if now - began > timeout_s:
                raise AirflowError(
                    f"{dag_id} run {run_id} is still {run['state']} after {timeout_s:.0f} s "
                    f"({states}); see {self.run_url(dag_id, run_id)}"
                )
            time.sleep(poll_s)

    def _retry_line(self, dag_id: str, run_id: str, ti: dict[str, Any]) -> str:
        task_id, tries = ti["task_id"], int(ti.get("try_number") or 1)
        error = self.last_error(dag_id, run_id, task_id, tries)
        return (
            f"{task_id} failed (try {tries}); Airflow retries it. Log: "
            f"{self.task_url(dag_id, run_id, task_id)}" + (f"; error: {error}" if error else "")
        )

    def failure(self, dag_id: str, run_id: str, tasks: dict[str, dict[str, Any]]) -> str:
        """What failed in a run, and where to read why."""
        failed = [ti for ti in tasks.values() if ti.get("state") == "failed"]
        if not failed:
            return f"{dag_id} run {run_id} failed; see {self.run_url(dag_id, run_id)}"
        parts = []
        for ti in failed:
            task_id, tries = ti["task_id"], int(ti.get("try_number") or 1)
            where = self.task_url(dag_id, run_id, task_id)
            path = self.task_log_file(dag_id, run_id, task_id, tries)
            error = self.last_error(dag_id, run_id, task_id, tries)
            parts.append(
                f"task {task_id} failed (try {tries}); log: {where}"
                + (f" (file {path})" if path else "")
                + (f"; last error: {error}" if error else "")
            )
        return f"{dag_id} run {run_id} failed: " + "; ".join(parts)

    def last_error(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The last error lines of a task's log ("" when the log cannot be read)."""
        try:
            answer = self.request(
                "GET",
                f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
                f"{quote(task_id)}/logs/{try_number}",
                params={"full_content": "true"}, headers={"Accept": "application/json"},
            )  # fmt: skip
        except AirflowError as exc:
            log.info("log of %s/%s/%s unreadable: %s", dag_id, run_id, task_id, exc)
            return ""
        content = answer.get("content", []) if isinstance(answer, dict) else []
        errors: list[str] = []
        for line in content:
            if not isinstance(line, dict) or str(line.get("level")) not in ("error", "critical"):
                continue
            details = line.get("error_detail") or []  # "Task failed with exception": which one
            errors.extend(
                f"{d.get('exc_type')}: {d.get('exc_value')}" for d in details if isinstance(d, dict)
            )
            if not details:
                errors.append(str(line.get("event", "")))
        return " | ".join(errors[-2:])[-800:]
