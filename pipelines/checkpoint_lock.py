"""One ingestion per streaming checkpoint at a time.

Two Spark runs on one checkpoint replay the same micro-batch (same query id, same epoch) and
may both commit it, or write data files another run still writes. A ``kill -9`` of the Python
driver leaves its Spark JVM behind for a moment (pyspark's gateway JVM exits only when it
notices its parent is gone), and that JVM may still commit a batch.

So each checkpoint directory holds ``ingest.lock``: an advisory ``flock`` held by the running
driver (the kernel drops it when the driver dies, even by ``kill -9``) plus, as JSON, who holds
it: the driver's and its JVM's pid and start time, the run id, and whether the run ended
cleanly. A new run refuses a lock another live driver holds, naming it; when the previous run
died without releasing, the new run first waits for that run's JVM to be gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

LOCK_NAME = "ingest.lock"
#: How long a new run waits for the JVM of a killed run to exit before refusing to start.
DEFAULT_JVM_GRACE_S = 60.0
_POLL_S = 0.25


class CheckpointInUse(RuntimeError):
    """Another ingestion (or the JVM a killed one left behind) still uses the checkpoint."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a checkpoint's lock."""

    pid: int
    create_time: float
    run_id: str
    started_at: str
    jvm_pid: int | None = None
    jvm_create_time: float | None = None
    released: bool = False

    @classmethod
    def current(cls, run_id: str, jvm_pid: int | None) -> LockHolder:
        """This process (and its Spark JVM, when known) as a lock holder."""
        me = psutil.Process()
        return cls(
            pid=me.pid,
            create_time=me.create_time(),
            run_id=run_id,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            jvm_pid=jvm_pid,
            jvm_create_time=_create_time(jvm_pid),
        )

    def describe(self) -> str:
        jvm = f", Spark JVM pid {self.jvm_pid}" if self.jvm_pid else ""
        return f"safra ingest pid {self.pid}{jvm}, run {self.run_id} started {self.started_at}"


def _create_time(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def process_alive(pid: int | None, create_time: float | None) -> bool:
    """True when ``pid`` runs and is the process recorded (a reused pid has another start
    time; a zombie has already stopped)."""
    if pid is None or create_time is None:
        return False
    try:
        proc = psutil.Process(pid)
        return (
            abs(proc.create_time() - create_time) <= 1.0 and proc.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False


def _read(fd: int) -> LockHolder | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 1 << 16).decode(errors="replace").strip()
    if not text:
        return None
    try:
        return LockHolder(**json.loads(text))
    except (ValueError, TypeError):
        log.warning("ignoring an unreadable ingestion lock: %r", text[:200])
        return None


def _write(fd: int, holder: LockHolder) -> None:
    data = (json.dumps(asdict(holder), sort_keys=True) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _wait_for_jvm(previous: LockHolder, lock_path: Path, me: LockHolder, grace_s: float) -> None:
    """Wait until the JVM of a run that died holding the lock is gone, or refuse."""
    same_process = previous.pid == me.pid and abs(previous.create_time - me.create_time) <= 1.0
    if previous.released or same_process:
        return
    if not process_alive(previous.jvm_pid, previous.jvm_create_time):
        return
    log.warning(
        "the Spark JVM (pid %s) of an ingestion that ended without releasing %s (%s) still "
        "runs; waiting up to %.0f s for it to exit",
        previous.jvm_pid,
        lock_path,
        previous.describe(),
        grace_s,
    )
    deadline = time.monotonic() + grace_s
    while process_alive(previous.jvm_pid, previous.jvm_create_time):
        if time.monotonic() >= deadline:
            raise CheckpointInUse(
                f"ingestion checkpoint {lock_path.parent} may still be written by the Spark JVM "
                f"pid {previous.jvm_pid} of a killed ingestion ({previous.describe()}): it still "
                f"runs after {grace_s:.0f} s; stop it (kill {previous.jvm_pid}) and retry"
            )
        time.sleep(_POLL_S)


def _acquire(checkpoint: Path, me: LockHolder, jvm_grace_s: float) -> int:
    checkpoint.mkdir(parents=True, exist_ok=True)
    lock_path = checkpoint / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            who = holder.describe() if holder else "another process"
            raise CheckpointInUse(
                f"ingestion checkpoint {checkpoint} is in use by {who}; stop that ingestion "
                f"first{f' (kill {holder.pid})' if holder else ''} or wait for it to finish"
            ) from None
        previous = _read(fd)
        if previous is not None:
            _wait_for_jvm(previous, lock_path, me, jvm_grace_s)
        _write(fd, me)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _release(fd: int, me: LockHolder) -> None:
    try:
        _write(fd, replace(me, released=True))
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class HeldLocks:
    """The checkpoint locks a run holds, and who it is (see :func:`checkpoint_locks`)."""

    def __init__(self, holder: LockHolder) -> None:
        self.holder = holder
        self._fds: list[int] = []

    def record_jvm(self, jvm_pid: int | None) -> None:
        """Record this run's Spark JVM (known once Spark started), so that a run started after
        this one is killed waits for that JVM too."""
        self.holder = replace(self.holder, jvm_pid=jvm_pid, jvm_create_time=_create_time(jvm_pid))
        for fd in self._fds:
            _write(fd, self.holder)


@contextlib.contextmanager
def checkpoint_locks(
    checkpoints: Iterable[Path],
    run_id: str,
    jvm_pid: int | None = None,
    *,
    jvm_grace_s: float = DEFAULT_JVM_GRACE_S,
) -> Iterator[HeldLocks]:
    """Hold the lock of each checkpoint directory while inside (all or none); raise
    :class:`CheckpointInUse`, naming the holder, when another live ingestion holds one. A
    previous holder that died without releasing is waited for until its Spark JVM is gone (at
    most ``jvm_grace_s`` seconds). ``jvm_pid`` is this run's Spark JVM, if already started
    (else call :meth:`HeldLocks.record_jvm` once it is)."""
    held = HeldLocks(LockHolder.current(run_id, jvm_pid))
    try:
        for checkpoint in sorted(set(checkpoints)):
            held._fds.append(_acquire(checkpoint, held.holder, jvm_grace_s))
        yield held
    finally:
        for fd in reversed(held._fds):
            _release(fd, held.holder)
