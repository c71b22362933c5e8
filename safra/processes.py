"""Short-lived child processes of tests and benchmarks: a free local port, and a command run in a
process group of its own for the length of a block (its output in a log file).

The stack's long-lived services have their supervisor (``commands.stack.process``); this is for
a server a test or a benchmark starts, talks to and stops.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process_group(
    command: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    stop_timeout_s: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (stdout and stderr to ``log``) in a session of its own; when the block
    ends, SIGTERM its whole process group, then SIGKILL after ``stop_timeout_s``."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            list(command),
            env=dict(env) if env is not None else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(stop_timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
