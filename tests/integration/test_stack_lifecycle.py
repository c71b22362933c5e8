"""`stack up` is idempotent and brings back a service killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import time

import pytest

from commands import stack
from commands.stack.process import ServiceState
from safra.settings import Settings

pytestmark = pytest.mark.stack


def _states(settings: Settings) -> dict[str, ServiceState]:
    return {st.name: st for st in stack.status(settings)}


def _pids(settings: Settings) -> dict[str, int | None]:
    return {st.name: st.pid for st in stack.status(settings)}


def test_up_twice_changes_nothing(local_stack: Settings) -> None:
    before = _pids(local_stack)
    results = stack.up(local_stack)
    assert [r.action for r in results] == ["already running"] * len(local_stack.local_services)
    assert _pids(local_stack) == before
    assert all(st.state == "running" for st in stack.status(local_stack))


def test_up_brings_back_a_killed_service(local_stack: Settings) -> None:
    old = _pids(local_stack)["kafka"]
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _states(local_stack)["kafka"].pid is not None:
        time.sleep(0.2)
    assert _states(local_stack)["kafka"].state == "stale"  # pid file left, process gone

    results = {r.name: r.action for r in stack.up(local_stack)}
    assert results["kafka"] == "started"
    assert all(action == "already running" for name, action in results.items() if name != "kafka")
    states = _states(local_stack)
    assert states["kafka"].state == "running"
    assert states["kafka"].pid not in (None, old)
