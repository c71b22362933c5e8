"""Supervising one service as a local process: pid file, log file, readiness, stop, status.

A pid file records the pid *and* the process start time, so a recycled pid is never taken for
ours and ``down`` stops only what the stack started. Services run in their own session
(process group), so stopping one stops its children too (Trino's launcher, MLflow's workers),
with umask 077: what they create is private to the user.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from safra.private_files import PRIVATE_UMASK

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A service could not be started or stopped; the message names the cause and the fix."""


@dataclass
class ServiceSpec:
    """What the supervisor needs to run one service."""

    name: str
    port: int
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ready: Callable[[], bool] | None = None  # beyond "the port accepts connections"
    ready_timeout_s: float = 120.0
    nofile: int | None = None  # open-files limit the service needs (Trino: 4096+)
    url: str = ""


@dataclass
class ServiceState:
    name: str
    state: str  # running | starting | stopped | stale
    port: int
    pid: int | None = None
    rss_bytes: int = 0
    url: str = ""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def who_listens(port: int) -> str:
    """A description of the process listening on ``port``, when the OS tells us."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid:
                    try:
                        proc = psutil.Process(conn.pid)
                        return f"pid {conn.pid} ({' '.join(proc.cmdline()[:3])[:120]})"
                    except psutil.Error:
                        return f"pid {conn.pid}"
                return "another process"
    except psutil.Error:
        pass
    return "another process"


class Supervisor:
    """Start, check and stop services, keeping pid and log files under one data folder."""

    def __init__(
        self, run_dir: Path, logs_dir: Path, host: str = "127.0.0.1", port_grace_s: float = 15.0
    ) -> None:
        self.port_grace_s = port_grace_s
        self.run_dir = run_dir
        self.logs_dir = logs_dir
        self.host = host

    # -- files ---------------------------------------------------------------------------------

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def _read_pid(self, name: str) -> dict | None:
        path = self.pid_file(name)
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def process(self, name: str) -> psutil.Process | None:
        """The live process this stack started for ``name``, or None (stale pid files are ours
        to ignore: a pid reused by another program never matches the recorded start time)."""
        info = self._read_pid(name)
        if not info:
            return None
        try:
            proc = psutil.Process(info["pid"])
            if abs(proc.create_time() - info["create_time"]) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (psutil.Error, KeyError):
            return None

    # -- lifecycle -----------------------------------------------------------------------------

    def is_ready(self, spec: ServiceSpec) -> bool:
        if not port_open(self.host, spec.port):
            return False
        if spec.ready is None:
            return True
        try:
            return spec.ready()
        except Exception:  # a readiness probe that errors means "not ready yet"
            return False

    def start(self, spec: ServiceSpec) -> str:
        """Start ``spec`` unless it already runs; wait until ready. Returns what was done."""
        proc = self.process(spec.name)
        if proc is not None:
            if self.wait_ready(spec, proc, timeout=spec.ready_timeout_s):
                return "already running"
            if proc.is_running():
                raise StackError(
                    f"{spec.name} runs (pid {proc.pid}) but is not ready after "
                    f"{spec.ready_timeout_s:.0f} s. Its log is {self.log_file(spec.name)}. "
                    f"Fix: `safra stack logs {spec.name}`, then `safra stack down` and `up`."
                )
        if self._port_still_taken(spec.port):
            raise StackError(
                f"{spec.name}: port {spec.port} on {self.host} is already taken by "
                f"{who_listens(spec.port)}. Fix: stop that process, or give {spec.name} another "
                f"port with SAFRA_{spec.name.upper().replace('-', '_')}_PORT."
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_file(spec.name)
        nofile = spec.nofile

        def _limits() -> None:  # runs in the child, before exec
            os.umask(PRIVATE_UMASK)  # what the service creates is its user's only
            if nofile:
                soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                want = nofile if hard == resource.RLIM_INFINITY else min(nofile, hard)
                resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))

        if nofile:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if hard != resource.RLIM_INFINITY and hard < nofile:
                raise StackError(
                    f"{spec.name} needs {nofile} open files but the hard limit is {hard}. "
                    f"Fix: raise it (ulimit -Hn {nofile}, or limits.conf) and run again."
                )
        with log_path.open("ab") as log_fh:
            log_fh.write(f"\n--- safra: starting {spec.name} at {time.ctime()} ---\n".encode())
            log_fh.flush()
            try:
                popen = subprocess.Popen(
                    spec.command,
                    cwd=spec.cwd,
                    env={**os.environ, **spec.env},
                    stdin=subprocess.DEVNULL,
                    stdout=log_fh,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_limits,
                )
            except OSError as exc:
                raise StackError(f"{spec.name}: could not run {spec.command[0]}: {exc}") from exc
        proc = psutil.Process(popen.pid)
        self.pid_file(spec.name).write_text(
            json.dumps(
                {"pid": popen.pid, "create_time": proc.create_time(), "cmd": spec.command[:4]}
            )
        )
        if not self.wait_ready(spec, proc, timeout=spec.ready_timeout_s):
            tail = self.tail(spec.name, 20)
            alive = proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
            self.stop(spec.name)
            reason = (
                f"did not become ready within {spec.ready_timeout_s:.0f} s"
                if alive
                else f"exited with code {popen.poll()} before becoming ready"
            )
            raise StackError(
                f"{spec.name} {reason}. Its log is {log_path}; last lines:\n{tail}\n"
                f"Fix what the log names, or raise SAFRA_READY_TIMEOUT_S on a slow machine."
            )
        return "started"

    def _port_still_taken(self, port: int) -> bool:
        """True when ``port`` stays taken for ``port_grace_s``: a process killed a moment ago (its
        leader already a zombie while its other threads exit) still holds its sockets briefly."""
        deadline = time.monotonic() + self.port_grace_s
        while port_open(self.host, port):
            if time.monotonic() > deadline:
                return True
            time.sleep(0.25)
        return False

    def wait_ready(self, spec: ServiceSpec, proc: psutil.Process, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return False
            if self.is_ready(spec):
                return True
            time.sleep(0.5)
        return False

    def stop(self, name: str, timeout: float = 30.0) -> bool:
        """Stop ``name``'s process group: SIGTERM, then SIGKILL after ``timeout``."""
        proc = self.process(name)
        self.pid_file(name).unlink(missing_ok=True)
        if proc is None:
            return False
        try:
            group = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            group = [proc]
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return True
        except PermissionError:
            proc.terminate()
        _gone, alive = psutil.wait_procs(group, timeout=timeout)
        for p in alive:
            log.warning("%s (pid %s) ignored SIGTERM for %.0f s: killing it", name, p.pid, timeout)
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        return True

    def tail(self, name: str, lines: int = 50) -> str:
        path = self.log_file(name)
        if not path.exists():
            return f"(no log yet at {path})"
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])
