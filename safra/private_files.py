"""Private files: Safra's data folder (raw bronze with CPFs and names, Kafka logs, Redis data,
MLflow artifacts, secrets of the services) is readable by its owner only.

Two halves: :func:`use_private_umask` makes every file and folder this process (and every child
it starts afterwards: the services, Spark's JVM) creates private (folders 0700, files 0600);
:func:`make_private` repairs a tree made before, taking group and other permissions off every
entry (``chmod -R go-rwx``, symlinks not followed).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
"""No permission for group or others on anything created."""
_READ_WRITE_BY_OTHERS = stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH


def use_private_umask() -> int:
    """Set this process's umask to :data:`PRIVATE_UMASK`; the previous umask."""
    return os.umask(PRIVATE_UMASK)


def make_private(root: Path) -> int:
    """Take group and other permissions off ``root`` and everything under it (symlinks are left
    alone); the number of entries changed. A missing ``root`` is created, mode 0700."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    changed = 0
    pending = [root]
    while pending:
        folder = pending.pop()
        mode = folder.lstat().st_mode
        if mode & PRIVATE_UMASK:
            os.chmod(folder, stat.S_IMODE(mode) & ~PRIVATE_UMASK)
            changed += 1
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                    continue
                if entry.is_symlink():
                    continue
                mode = entry.stat(follow_symlinks=False).st_mode
                if mode & PRIVATE_UMASK:
                    os.chmod(entry.path, stat.S_IMODE(mode) & ~PRIVATE_UMASK)
                    changed += 1
    return changed


def readable_by_others(root: Path) -> list[Path]:
    """Every file under ``root`` that group or others may read or write, and every folder (``root``
    included) they may list, write or enter; symlinks are skipped. (Spark marks the jars it copies
    executable for everyone, ``a+x``: an execute bit alone on a file reveals nothing.)"""
    found = []
    for folder, _dirs, files in os.walk(root):
        base = Path(folder)
        if base.lstat().st_mode & PRIVATE_UMASK:
            found.append(base)
        for name in files:
            path = base / name
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & _READ_WRITE_BY_OTHERS:
                found.append(path)
    return found
