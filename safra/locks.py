"""One holder at a time on this machine: an advisory ``flock`` on a file under ``.safra/locks/``.

The kernel releases a ``flock`` when its holder dies, however it dies (a killed process cannot
leave the lock held), and the file records who holds it. It keeps processes of one machine apart
(the DAGs' tasks, the demo, a hand-run command); across machines, the orchestrator's
one-run-at-a-time is what keeps them apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)


class Busy(RuntimeError):
    """Another holder kept the lock for longer than the wait."""


@contextlib.contextmanager
def exclusive(path: Path, what: str, wait_s: float) -> Iterator[None]:
    """Hold the lock ``path`` for the block, waiting up to ``wait_s`` seconds for it.

    ``what`` names the work in the messages ("a transform of these schemas"). :class:`Busy`
    names the file and its holder when the wait runs out.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        deadline = time.monotonic() + wait_s
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    log.info("%s is running: waiting (%s)", what, path)
                    waiting = True
                if time.monotonic() > deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise Busy(
                        f"{what} held {path} for over {wait_s:g} s (holder: {holder}); is one "
                        "stuck? (`fuser` on the file names its pid)"
                    ) from None
                time.sleep(min(1.0, max(wait_s / 10, 0.05)))
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
