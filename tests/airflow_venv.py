"""Running code in Airflow's own environment (``.venv-airflow``), from the main one's tests.

The main environment has no Airflow (its pins fight the project's fastapi): DAG tests run
small scripts with the Airflow venv's Python in a subprocess, with their own ``AIRFLOW_HOME``
(SQLite), and read back one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
AIRFLOW_VENV = REPO / ".venv-airflow"
AIRFLOW_PYTHON = AIRFLOW_VENV / "bin" / "python"
RESULT_MARK = "SAFRA_RESULT "

#: parse the DAG folder as the dag-processor does, with the network and subprocesses refused
#: while the DAG files import; print what the tests check
PROBE_DAGS = r"""
import builtins, json, os, socket, subprocess, sys, time
from pathlib import Path

dags = Path(sys.argv[1])
# Airflow's own imports first, so that the timing and the guards cover the DAG files only
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, task

blocked = []
real_open = builtins.open

def refuse(what):
    def refused(*args, **kwargs):
        blocked.append(what)
        raise RuntimeError(f"{what} while importing a DAG file")
    return refused

def guarded_open(file, *args, **kwargs):
    path = Path(os.fsdecode(file)) if isinstance(file, (str, bytes, os.PathLike)) else None
    if path is not None and dags not in path.absolute().parents:
        blocked.append(f"open({path})")
    return real_open(file, *args, **kwargs)

saved = (socket.socket.connect, socket.getaddrinfo, subprocess.Popen.__init__, os.system)
socket.socket.connect = refuse("socket.connect")
socket.getaddrinfo = refuse("socket.getaddrinfo")
subprocess.Popen.__init__ = refuse("subprocess")
os.system = refuse("os.system")
builtins.open = guarded_open
began = time.perf_counter()
try:
    bag = BundleDagBag(dag_folder=dags, bundle_path=dags, bundle_name="dags-folder")
finally:
    seconds = time.perf_counter() - began
    socket.socket.connect, socket.getaddrinfo, subprocess.Popen.__init__, os.system = saved
    builtins.open = real_open

def schedule(tt):
    if isinstance(tt, AssetOrTimeSchedule):
        return {"cron": tt.timetable.expression, "timezone": str(tt.timetable.timezone),
                "assets": sorted(a.name for a in tt.asset_condition.objects)}
    return {"cron": getattr(tt, "expression", None), "kind": type(tt).__name__}

def seconds_of(delta):
    return None if delta is None else delta.total_seconds()

dags_out = {}
for dag_id, dag in bag.dags.items():
    tasks = {}
    for t in dag.tasks:
        tasks[t.task_id] = {
            "type": type(t).__name__,
            "retries": t.retries,
            "retry_delay_s": seconds_of(t.retry_delay),
            "execution_timeout_s": seconds_of(t.execution_timeout),
            "pool": t.pool,
            "upstream": sorted(t.upstream_task_ids),
            "outlets": sorted(getattr(o, "name", str(o)) for o in t.outlets),
            "bash_command": getattr(t, "bash_command", None),
            "cwd": getattr(t, "cwd", None),
            "has_doc": bool(t.doc_md or t.doc),
        }
    dags_out[dag_id] = {
        "file": Path(dag.fileloc).name,
        "start_date": None if dag.start_date is None else dag.start_date.isoformat(),
        "params": {k: dag.params[k] for k in dag.params},
        "schedule": schedule(dag.timetable),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "dagrun_timeout_s": seconds_of(dag.dagrun_timeout),
        "tags": sorted(dag.tags),
        "doc_md": dag.doc_md or "",
        "order": [t.task_id for t in dag.topological_sort()],
        "tasks": tasks,
    }
print("SAFRA_RESULT " + json.dumps({
    "import_errors": bag.import_errors, "parse_seconds": seconds, "blocked": blocked,
    "dags": dags_out,
}))
"""

#: run one DAG once with dag.test() (no retries: a failure shows at once; the run's conf as an
#: optional JSON argument) and print each task's state in the order the tasks ran, the return
#: values they pushed and the asset events emitted
DAG_TEST = r"""
import json, sys
from pathlib import Path

from airflow.dag_processing.dagbag import BundleDagBag
from airflow.models.asset import AssetEvent, AssetModel
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import select

dags, dag_id = Path(sys.argv[1]), sys.argv[2]
bag = BundleDagBag(dag_folder=dags, bundle_path=dags, bundle_name="dags-folder")
if bag.import_errors:
    raise SystemExit(f"import errors: {bag.import_errors}")
dag = bag.dags[dag_id]
for t in dag.tasks:
    t.retries = 0
run = dag.test(run_conf=json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)
with create_session() as session:
    tis = session.scalars(
        select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
    ).all()
    tasks = sorted(
        ({"task_id": ti.task_id, "state": str(ti.state),
          "start": ti.start_date.isoformat() if ti.start_date else None,
          "end": ti.end_date.isoformat() if ti.end_date else None} for ti in tis),
        key=lambda t: (t["start"] is None, t["start"] or ""),
    )
    xcoms = {
        x.task_id: x.value
        for x in session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id,
                                    XComModel.key == "return_value")
        ).all()
    }
    events = [
        {"asset": name, "task_id": e.source_task_id, "extra": e.extra}
        for e, name in session.execute(
            select(AssetEvent, AssetModel.name)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run.run_id)
        ).all()
    ]

print("SAFRA_RESULT " + json.dumps(
    {"run_id": run.run_id, "state": str(run.state), "tasks": tasks, "xcoms": xcoms,
     "asset_events": events}, default=str
))
"""


def require_airflow_venv() -> Path:
    """The Airflow venv's Python; AssertionError naming the fix when it is not installed."""
    assert AIRFLOW_PYTHON.exists(), (
        f"{AIRFLOW_PYTHON} is missing: Airflow lives in its own environment. "
        "Fix: `make airflow` (installs requirements-airflow.lock into .venv-airflow)."
    )
    return AIRFLOW_PYTHON


def airflow_environment(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow process with its own home (SQLite metadata DB)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        PATH=os.pathsep.join([str(AIRFLOW_VENV / "bin"), env.get("PATH", "")]),
    )
    env.update(extra)
    return env


def run_airflow_script(
    script: str, args: list[str], env: dict[str, str], timeout: float
) -> dict[str, Any]:
    """Run ``script`` with the Airflow venv's Python; return the JSON it printed."""
    proc = subprocess.run(
        [str(require_airflow_venv()), "-c", script, *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result = json.loads(line.removeprefix(RESULT_MARK))
            if isinstance(result, dict):  # dag.test() logs its tasks here: for failure messages
                lines = (proc.stdout + proc.stderr).splitlines()
                kept = [x for x in lines if "Warning" not in x and not x.startswith(RESULT_MARK)]
                result["output_tail"] = "\n".join(kept)[-12000:]
            return result
    raise AssertionError(
        f"the Airflow script exited with {proc.returncode} and no result; "
        f"stdout tail:\n{proc.stdout[-3000:]}\nstderr tail:\n{proc.stderr[-5000:]}"
    )


def airflow_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> None:
    """Run ``airflow <args>`` from the Airflow venv; AssertionError with its output on failure."""
    proc = subprocess.run(
        [str(AIRFLOW_VENV / "bin" / "airflow"), *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    output = f"{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"airflow {' '.join(args)} exited with {proc.returncode}: {output}"
