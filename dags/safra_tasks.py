"""What Safra's DAGs share: how a task runs one `safra` command, default task arguments, the pool
that serializes lakehouse writers, and the asset the drift monitor emits.

Airflow runs from its own environment (``.venv-airflow``, ``requirements-airflow.lock``) and never
imports Safra: each task runs one command of the project's CLI, ``SAFRA_BIN`` (set by
``safra stack up --with airflow``; default: ``.venv/bin/safra`` of the repository holding this
folder), in ``SAFRA_PROJECT_DIR`` (default: that repository), whose ``.env`` the CLI reads itself.
No credentials here, and nothing at import time beyond reading those two variables: no network,
no subprocess, no files.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Asset

log = logging.getLogger(__name__)

PROJECT_DIR = Path(os.environ.get("SAFRA_PROJECT_DIR") or Path(__file__).parent.parent).absolute()
SAFRA_BIN = Path(os.environ.get("SAFRA_BIN") or PROJECT_DIR / ".venv" / "bin" / "safra")

#: a fixed start in the past; with catchup off, a DAG's first run is its latest interval
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)

#: no start date: unpausing the DAG (as `safra demo` does for its loop) starts no run for the
#: latest past tick, the first scheduled run is the next tick (`CronTriggerTimetable` with
#: ``run_immediately=False``); the DAGs the demo triggers itself and waits for use it
ON_DEMAND_START = None

#: dbt's target folder is shared and Trino must not MERGE a table another writer commits to:
#: one lakehouse transform at a time across DAGs (`safra stack up --with airflow` creates it)
LAKEHOUSE_POOL = "safra_lakehouse"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "safra",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
}

#: emitted by `drift_monitor` when `safra drift` finds drift; `model_retraining` is scheduled on it
MODEL_DRIFT = Asset(
    name="safra_model_drift", uri="x-safra://monitoring/model-drift", group="monitoring"
)


def _environment() -> dict[str, str]:
    """What a `safra` command runs with, on top of the worker's environment: the project venv's
    `bin` first on PATH (Spark and dbt must not find Airflow's Python), and a wide terminal so
    that the CLI's JSON and tables are never wrapped at 80 columns."""
    path = os.pathsep.join([str(SAFRA_BIN.parent), os.environ.get("PATH", "")])
    return {"PATH": path, "COLUMNS": "250"}


def safra_task(task_id: str, command: str, timeout: timedelta, doc: str, **kwargs) -> BashOperator:
    """A task running ``safra <command>`` in the project folder; a non-zero exit fails it."""
    return BashOperator(
        task_id=task_id,
        bash_command=f"{shlex.quote(str(SAFRA_BIN))} {command}",
        cwd=str(PROJECT_DIR),
        env=_environment(),
        append_env=True,
        execution_timeout=timeout,
        doc_md=doc,
        **kwargs,
    )


def run_safra_json(*args: str, timeout: timedelta) -> dict[str, Any]:
    """Run ``safra <args>`` (a command printing a JSON object on stdout) and return that object.

    For the tasks whose answer steers the DAG (a BashOperator keeps only the last output line).
    A non-zero exit or an output without a JSON object raises, naming the command.
    """
    cmd = [str(SAFRA_BIN), *args]
    shown = "safra " + " ".join(args)
    log.info("running %s in %s", shown, PROJECT_DIR)
    proc = subprocess.run(
        cmd,
        cwd=PROJECT_DIR,
        env={**os.environ, **_environment()},
        capture_output=True,
        text=True,
        timeout=timeout.total_seconds(),
        check=False,
    )
    for line in (proc.stderr + proc.stdout).splitlines():
        log.info("%s", line)
    if proc.returncode != 0:
        # the CLI prints its `error: ...` line on stdout: last, so that the tail keeps it
        output = f"{proc.stderr.strip()}\n{proc.stdout.strip()}".strip()
        raise RuntimeError(f"`{shown}` exited with {proc.returncode}: {output[-2000:]}")
    return parse_json_object(proc.stdout, shown)


def drift_window_start(events: Any) -> str | None:
    """The start of the window the drift check judged, from the asset events that triggered a
    retraining run (Airflow's ``triggering_asset_events[MODEL_DRIFT]``: each event's ``extra``
    holds ``drift_summary.window.since``, an ISO time); the earliest when several events
    collapsed into one run. None when no event names one (a scheduled run, a check of the
    newest rows without a lower bound): then training keeps its default window."""
    starts = []
    for event in events or []:
        extra = getattr(event, "extra", None) or {}
        window = (extra.get("drift_summary") or {}).get("window") or {}
        if window.get("since"):
            starts.append(str(window["since"]))

    def moment(iso: str) -> datetime:
        parsed = datetime.fromisoformat(iso)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed

    return min(starts, key=moment, default=None)


def parse_json_object(stdout: str, shown: str) -> dict[str, Any]:
    """The last JSON object in ``stdout`` (a CLI may print progress lines before it)."""
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    pos = stdout.find("{")
    while pos != -1:
        try:
            value, end = decoder.raw_decode(stdout, pos)
        except ValueError:
            pos = stdout.find("{", pos + 1)
            continue
        if isinstance(value, dict):
            found = value
        pos = stdout.find("{", end)
    if found is None:
        raise RuntimeError(f"`{shown}` printed no JSON object; its output: {stdout[-2000:]!r}")
    return found
