"""What keeps a restarted ingestion from touching files a killed one wrote or still writes:
per-run data folders and the checkpoint lock (no services: real processes, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipelines.checkpoint_lock import LOCK_NAME, CheckpointInUse, checkpoint_locks
from pipelines.ingest import new_run_id, run_data_path


def test_run_data_path_is_a_folder_of_its_own_under_the_table_data() -> None:
    assert (
        run_data_path("file:/warehouse/bronze/applications", "20261120T225100Z-1a2b3c4d")
        == "file:/warehouse/bronze/applications/data/run-20261120T225100Z-1a2b3c4d"
    )
    assert run_data_path("s3://lake/bronze/t/", "r1") == "s3://lake/bronze/t/data/run-r1"


@pytest.mark.parametrize(("location", "run_id"), [("", "r1"), ("file:/w/t", "")])
def test_run_data_path_needs_a_location_and_a_run_id(location: str, run_id: str) -> None:
    with pytest.raises(ValueError, match="need a table location and a run id"):
        run_data_path(location, run_id)


def test_run_ids_are_unique_and_ordered_by_time() -> None:
    at = datetime(2026, 11, 20, 22, 51, 0, tzinfo=timezone(timedelta(hours=-3)))
    first, second = new_run_id(at), new_run_id(at)
    assert first != second
    assert first.startswith("20261121T015100Z-") and len(first) == len("20261121T015100Z-") + 8
    assert new_run_id(datetime(2026, 11, 21, 2, 0, tzinfo=UTC)) > first


def _lock_file(checkpoint: Path) -> dict:
    return json.loads((checkpoint / LOCK_NAME).read_text())


def _spawn_sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_live_ingestion_holding_the_checkpoint_is_named_in_the_refusal(tmp_path: Path) -> None:
    checkpoint = tmp_path / "cp" / "bronze"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from pipelines.checkpoint_lock import checkpoint_locks\n"
            "with checkpoint_locks([Path(sys.argv[1])], 'run-a', None):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n",
            str(checkpoint),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(CheckpointInUse, match=rf"in use by safra ingest pid {holder.pid},"),
            checkpoint_locks([checkpoint], "run-b"),
        ):
            pytest.fail("entered a checkpoint another live ingestion holds")
        assert _lock_file(checkpoint)["run_id"] == "run-a"  # the refusal changed nothing
    finally:
        holder.kill()
        holder.wait(10)
    # kill -9 drops the lock with its holder: the next run proceeds and records itself.
    with checkpoint_locks([checkpoint], "run-c") as me:
        assert me.holder.pid == os.getpid()
        assert _lock_file(checkpoint)["run_id"] == "run-c"
    assert _lock_file(checkpoint)["released"] is True


def test_a_run_after_a_killed_one_waits_for_its_jvm_to_exit(tmp_path: Path) -> None:
    checkpoint = tmp_path / "bronze"
    jvm = _spawn_sleeper()  # stands in for the Spark JVM a kill -9'd driver leaves behind
    try:
        with checkpoint_locks([checkpoint], "killed") as locks:
            locks.record_jvm(jvm.pid)  # once its Spark started
            assert _lock_file(checkpoint)["jvm_pid"] == jvm.pid
        killed = _lock_file(checkpoint)
        # As if the driver had died holding the lock: a dead pid, never released.
        (checkpoint / LOCK_NAME).write_text(
            json.dumps({**killed, "pid": 2**22 + 7, "released": False})
        )
        began = time.monotonic()
        with (
            pytest.raises(CheckpointInUse, match=rf"Spark JVM pid {jvm.pid} of a killed ingestion"),
            checkpoint_locks([checkpoint], "too-soon", jvm_grace_s=0.5),
        ):
            pytest.fail("entered while the killed run's JVM still runs")
        assert 0.5 <= time.monotonic() - began < 5

        # The JVM exits a moment later: the next run waits for it, then proceeds.
        subprocess.Popen(
            [sys.executable, "-c", f"import os, time; time.sleep(1); os.kill({jvm.pid}, 9)"]
        )
        began = time.monotonic()
        with checkpoint_locks([checkpoint], "after", jvm_grace_s=30):
            waited = time.monotonic() - began
            assert jvm.wait(5) == -9  # gone before the run went on
        assert 0.5 < waited < 10
    finally:
        jvm.kill()
        jvm.wait(10)


def test_a_cleanly_ended_run_leaves_nothing_to_wait_for(tmp_path: Path) -> None:
    checkpoint = tmp_path / "bronze"
    jvm = _spawn_sleeper()  # a JVM still alive, but its run released the lock
    try:
        with checkpoint_locks([checkpoint], "clean", jvm.pid):
            pass
        began = time.monotonic()
        with checkpoint_locks([checkpoint], "next", jvm_grace_s=30):
            assert time.monotonic() - began < 1
    finally:
        jvm.kill()
        jvm.wait(10)


def test_all_checkpoints_or_none(tmp_path: Path) -> None:
    free, taken = tmp_path / "a", tmp_path / "b"
    with checkpoint_locks([taken], "other"):
        with (
            pytest.raises(CheckpointInUse, match=str(taken)),
            checkpoint_locks([free, taken], "mine"),
        ):
            pass
        # The lock already taken on ``free`` was given back.
        with checkpoint_locks([free], "third"):
            assert _lock_file(free)["run_id"] == "third"
