"""Write the git-ignored ``.env`` that docker-compose.yml reads, from the committed example.

Every ``change-me`` value of the example becomes a fresh random secret; every other example value is
copied as is. A key already present in ``.env`` is never touched (so running it twice changes
nothing, and a hand-set value survives); keys the example gained since are appended. The file is
written with mode 0600.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PLACEHOLDER = "change-me"

# NAME=value, optionally preceded by `export `; comments and blank lines are kept verbatim.
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


def _parse(line: str) -> tuple[str, str] | None:
    """``(name, value)`` of an assignment line (quotes stripped), or None for anything else."""
    match = _ASSIGNMENT.match(line)
    if not match:
        return None
    value = match.group(2).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return match.group(1), value


def _keys(text: str) -> set[str]:
    return {parsed[0] for line in text.splitlines() if (parsed := _parse(line))}


def new_secret() -> str:
    """A random secret: 32 URL-safe characters, usable unquoted in URLs and shell files."""
    return secrets.token_urlsafe(24)


def write_env_file(path: Path, example: Path) -> list[str]:
    """Create or complete ``path`` from ``example``; return the names given a generated secret.

    Without ``path``, the result is the example with each ``change-me`` replaced. With ``path``,
    its content is kept byte for byte and only the example's missing keys are appended (after a
    comment). Either way the file ends up with mode 0600.
    """
    example_lines = example.read_text(encoding="utf-8").splitlines()
    existing = path.read_text(encoding="utf-8") if path.exists() else None
    present = _keys(existing) if existing is not None else set()

    generated: list[str] = []
    out: list[str] = []
    for line in example_lines:
        parsed = _parse(line)
        if parsed is None:
            if existing is None:
                out.append(line)
            continue
        name, value = parsed
        if name in present:
            continue
        present.add(name)
        if value == PLACEHOLDER:
            value = new_secret()
            generated.append(name)
        out.append(f"{name}={value}")

    if existing is None:
        text = "\n".join(out) + "\n"
    elif out:
        text = existing
        if text and not text.endswith("\n"):
            text += "\n"
        text += f"# added from {example.name}\n" + "\n".join(out) + "\n"
    else:
        text = existing

    if existing is not None:
        still_placeholder = [
            p[0] for line in existing.splitlines() if (p := _parse(line)) and p[1] == PLACEHOLDER
        ]
        if still_placeholder:
            log.warning(
                "%s keeps %s at %r (existing keys are never overwritten): set real values",
                path, ", ".join(still_placeholder), PLACEHOLDER,
            )  # fmt: skip

    if text != existing:
        _write_private(path, text)
    else:
        os.chmod(path, 0o600)
    log.info("%s: %d secret(s) generated%s", path, len(generated),
             f" ({', '.join(generated)})" if generated else "")  # fmt: skip
    return generated


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically to ``path``, mode 0600 (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
