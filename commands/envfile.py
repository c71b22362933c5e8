"""Write the git-ignored ``.env`` that docker-compose.yml reads, from the committed example.

Every ``change-me`` value of the example becomes a fresh random secret; every other example value is
copied as is. A key already present in ``.env`` is never touched (so running it twice changes
nothing, and a hand-set value survives); keys the example gained since are appended. The file is
written with mode 0600.

The model-signing keys (``SAFRA_MODEL_SIGNING_KEY``, ``SAFRA_MODEL_VERIFY_KEY``: :mod:`ml.signing`)
are one Ed25519 pair, not two secrets: both are generated together; a ``.env`` holding the
private key only gains its public key; one holding the public key only (a host that verifies but
never signs) is left so, with a warning.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ml import signing

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
    return set(_values(text))


def _values(text: str) -> dict[str, str]:
    """Each assigned name's value (the first assignment wins, as for the example's keys)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if (parsed := _parse(line)) and parsed[0] not in out:
            out[parsed[0]] = parsed[1]
    return out


SIGNING_KEY, VERIFY_KEY = signing.SIGNING_KEY_ENV, signing.VERIFY_KEY_ENV


def _signing_pair(present: Mapping[str, str]) -> dict[str, str]:
    """Values for whichever of the model-signing pair ``present`` lacks: both fresh, or the
    public key of a present private key. Nothing for a lone public key (its private key cannot
    be made) nor for a private key still at ``change-me`` or unusable (warned)."""
    private, public = present.get(SIGNING_KEY), present.get(VERIFY_KEY)
    if private is None and public is None:
        new_private, new_public = signing.new_key_pair()
        return {SIGNING_KEY: new_private, VERIFY_KEY: new_public}
    if private is not None and public is None:
        if private != PLACEHOLDER:
            try:
                return {VERIFY_KEY: signing.public_key_text(private)}
            except ValueError as exc:
                log.warning("%s is unusable (%s): %s not derived from it", SIGNING_KEY, exc,
                            VERIFY_KEY)  # fmt: skip
        return {}
    if public is not None and private is None:
        log.warning(
            "%s is set without %s: models can be verified here, not signed (training here "
            "fails until you set %s)", VERIFY_KEY, SIGNING_KEY, SIGNING_KEY,
        )  # fmt: skip
    return {}


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
    pair = _signing_pair(_values(existing) if existing is not None else {})

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
        if name in (SIGNING_KEY, VERIFY_KEY):
            if name not in pair:
                continue
            value = pair[name]
            generated.append(name)
        elif value == PLACEHOLDER:
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
