"""Logging set-up for the CLI (library modules only ever call logging.getLogger(__name__))."""

from __future__ import annotations

import logging

from rich.logging import RichHandler


def configure(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="%H:%M:%S",
        handlers=[RichHandler(show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("urllib3", "py4j", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
