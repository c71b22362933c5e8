"""Logging and console for the CLI (library modules only ever call logging.getLogger(__name__)).

The console shows Safra's own lines; everything else goes to a log file: third-party loggers
(MLflow, Feast, py4j...), and whatever anything writes to the process's stdout and stderr —
Feast's coloured banners, tqdm bars, MLflow's run links, and the JVM under Spark, which writes
to file descriptor 2 directly. That is why the redirect is done on the file descriptors, not on
``sys.stdout``: children (the JVM) inherit it. ``verbose`` leaves the console as it is and shows
every logger at DEBUG.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.logging import RichHandler

SAFRA_PACKAGES = ("safra", "commands", "pipelines", "quality", "ml", "serving")
"""Loggers whose lines the console shows (and their children)."""

_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def is_safra_logger(name: str) -> bool:
    return name.split(".", 1)[0] in SAFRA_PACKAGES


class _SafraOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return is_safra_logger(record.name)


def _owns_the_terminal() -> bool:
    """Whether ``sys.stdout`` is this process's fd 1 (not a test runner's in-memory stream, where
    the command runs in-process and must not take the process's file descriptors)."""
    try:
        return sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def configure(
    verbose: bool = False, log_file: Path | None = None, console_level: int = logging.INFO
) -> tuple[TextIO, Callable[[], None]]:
    """Set up logging for one CLI command; returns the terminal's stdout (for the command's own
    output: tables, JSON) and a function that undoes the set-up (for in-process callers).

    With ``log_file`` and not ``verbose``: fds 1 and 2 point at ``log_file`` until undone, every
    logger writes there at INFO, and only Safra's loggers at ``console_level`` and above reach the
    terminal (stderr). Otherwise,
    and when run in-process by a test runner, every logger goes to stderr as before."""
    root = logging.getLogger()
    if verbose or log_file is None or not _owns_the_terminal():
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.INFO,
            format="%(message)s",
            datefmt="%H:%M:%S",
            handlers=[
                RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
            ],
            force=True,
        )
        for noisy in ("urllib3", "py4j", "httpx", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        return sys.stdout, lambda: None

    log_file.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal_out = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8")
    terminal_err = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding="utf-8")
    sink = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    os.close(sink)

    to_file = logging.StreamHandler(sys.stderr)  # fd 2 is the log file now
    to_file.setFormatter(logging.Formatter(_FILE_FORMAT))
    to_console = RichHandler(
        console=Console(file=terminal_err), show_path=False, rich_tracebacks=False
    )
    to_console.addFilter(_SafraOnly())
    to_console.setLevel(console_level)
    to_console.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[to_file, to_console], force=True)
    logging.captureWarnings(True)  # warnings.warn(...) into the log file, not the console

    def restore() -> None:
        for stream in (sys.stdout, sys.stderr, terminal_out, terminal_err):
            stream.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        root.handlers.clear()
        logging.captureWarnings(False)

    return terminal_out, restore
