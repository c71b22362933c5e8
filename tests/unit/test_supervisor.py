"""The supervisor's logic on real, tiny processes (no stack services needed)."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from commands.stack.process import ServiceSpec, StackError, Supervisor
from commands.stack.provision import (
    ProvisionError,
    cached_folder,
    verify_manifest,
)
from safra.java import JavaNotFound, find_java, java_major
from safra.processes import free_port


def http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


@pytest.fixture
def sup(tmp_path: Path) -> Supervisor:
    return Supervisor(tmp_path / "run", tmp_path / "logs", port_grace_s=1.0)


def test_start_is_idempotent_and_stop_stops(sup: Supervisor) -> None:
    port = free_port()
    spec = ServiceSpec("web", port, http_server(port), ready_timeout_s=20)
    assert sup.start(spec) == "started"
    pid = json.loads(sup.pid_file("web").read_text())["pid"]
    assert sup.start(spec) == "already running"
    assert json.loads(sup.pid_file("web").read_text())["pid"] == pid
    assert sup.log_file("web").exists()
    assert sup.stop("web") is True
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not sup.pid_file("web").exists()
    assert sup.stop("web") is False


def test_port_taken_by_someone_else_names_the_fix(sup: Supervisor) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        spec = ServiceSpec("web", port, http_server(port), ready_timeout_s=5)
        with pytest.raises(StackError, match=rf"port {port} .* already taken .*SAFRA_WEB_PORT"):
            sup.start(spec)
    assert not sup.pid_file("web").exists()


def test_process_that_dies_reports_its_log(sup: Supervisor) -> None:
    port = free_port()
    cmd = [sys.executable, "-c", "import sys; print('bad config: kaput'); sys.exit(3)"]
    t0 = time.monotonic()
    with pytest.raises(StackError, match=r"(?s)exited with code 3.*bad config: kaput"):
        sup.start(ServiceSpec("dies", port, cmd, ready_timeout_s=30))
    assert time.monotonic() - t0 < 10  # noticed at once, not after the timeout


def test_never_ready_is_bounded_and_cleaned_up(sup: Supervisor) -> None:
    port = free_port()
    cmd = [sys.executable, "-c", "import time; time.sleep(60)"]
    t0 = time.monotonic()
    with pytest.raises(StackError, match="did not become ready within 2 s"):
        sup.start(ServiceSpec("sleepy", port, cmd, ready_timeout_s=2))
    assert time.monotonic() - t0 < 15
    assert sup.process("sleepy") is None


def test_recycled_pid_is_not_ours(sup: Supervisor) -> None:
    """A pid file whose start time does not match is stale: down never kills that process."""
    sup.run_dir.mkdir(parents=True)
    me = psutil.Process(os.getpid())
    sup.pid_file("ghost").write_text(json.dumps({"pid": me.pid, "create_time": 12345.0}))
    assert sup.process("ghost") is None
    assert sup.stop("ghost") is False
    assert me.is_running()


def test_cached_folder_is_atomic_and_checked(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "thing-1"

    def failing(tmp: Path) -> None:
        (tmp / "half.jar").write_bytes(b"x" * 100)
        raise ProvisionError("download interrupted")

    with pytest.raises(ProvisionError):
        cached_folder(target, failing, "thing")
    assert not target.exists()
    assert list((tmp_path / "cache").iterdir()) == []  # no half-written folder left

    calls = []

    def build(tmp: Path) -> None:
        calls.append(1)
        (tmp / "lib").mkdir()
        (tmp / "lib" / "a.jar").write_bytes(b"a" * 1000)

    assert cached_folder(target, build, "thing") == target
    assert cached_folder(target, build, "thing") == target
    assert len(calls) == 1  # reused
    (target / "lib" / "a.jar").write_bytes(b"a" * 10)  # truncated behind our back
    assert "expected 1000" in (verify_manifest(target) or "")
    cached_folder(target, build, "thing")
    assert len(calls) == 2 and verify_manifest(target, deep=True) is None


def test_find_java_reads_release_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_jdk(name: str, version: str) -> Path:
        home = tmp_path / name
        (home / "bin").mkdir(parents=True)
        (home / "bin" / "java").write_text("")
        (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
        return home

    jdk17, jdk25 = fake_jdk("jdk17", "17.0.15"), fake_jdk("jdk25", "25.0.1")
    assert java_major(jdk25) == 25
    monkeypatch.setattr("safra.java._java_candidates", lambda p: [jdk17, jdk25])
    assert find_java(17) == jdk17
    assert find_java(24) == jdk25
    monkeypatch.setattr("safra.java._java_candidates", lambda p: [jdk17])
    with pytest.raises(JavaNotFound, match=r"No Java 24\+ found for Trino.*jdk17 \(17\)"):
        find_java(24, purpose="Trino")
