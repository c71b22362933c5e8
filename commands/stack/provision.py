"""Provisioning: find a Java, fetch artifacts from Maven Central into the cache, check them.

Every download lands in a temporary folder beside its final place and is renamed into place
only when complete, with a manifest of file sizes and SHA-256 digests; a cached folder whose
files do not match its manifest is refused and fetched again. Maven itself is run with
strict checksums (``-C``), so a corrupt transfer fails instead of being cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = ".safra-manifest.json"
MAVEN_TIMEOUT_S = 1800


class ProvisionError(RuntimeError):
    """A service could not be provisioned; the message names the cause and the fix."""


# --- cached folders ---------------------------------------------------------------------------


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path) -> None:
    files = {
        str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": _digest(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != MANIFEST
    }
    (folder / MANIFEST).write_text(json.dumps(files, indent=1))


def verify_manifest(folder: Path, deep: bool = False) -> str | None:
    """None when ``folder`` matches its manifest, else what is wrong with it."""
    manifest = folder / MANIFEST
    if not manifest.exists():
        return "no manifest (an interrupted download?)"
    try:
        files = json.loads(manifest.read_text())
    except ValueError:
        return "unreadable manifest"
    for rel, meta in files.items():
        path = folder / rel
        if not path.is_file():
            return f"{rel} is missing"
        if path.stat().st_size != meta["size"]:
            return f"{rel} has {path.stat().st_size} bytes, expected {meta['size']}"
        if deep and _digest(path) != meta["sha256"]:
            return f"{rel} does not match its SHA-256"
    return None


def cached_folder(target: Path, build: Callable[[Path], None], what: str) -> Path:
    """Return ``target``, building it with ``build(tmp)`` first unless a valid copy is cached.

    The build runs in a temporary sibling folder that is renamed into place only when it is
    complete, so an interrupted or failed download never leaves a half-written cache entry.
    """
    if target.exists():
        problem = verify_manifest(target)
        if problem is None:
            return target
        log.warning("cached %s at %s is unusable (%s): fetching it again", what, target, problem)
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        log.info("provisioning %s into %s (first run only)", what, target)
        build(tmp)
        write_manifest(tmp)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# --- Maven ------------------------------------------------------------------------------------


def _mvn(args: list[str], java_home: Path, cwd: Path, what: str) -> None:
    mvn = shutil.which("mvn")
    if not mvn:
        raise ProvisionError(
            f"Maven (mvn) is needed to fetch {what} from Maven Central and is not on PATH. "
            "Fix: `apt-get install maven`."
        )
    env = {**os.environ, "JAVA_HOME": str(java_home)}
    cmd = [mvn, "-B", "-q", "-C", *args]
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise ProvisionError(
            f"fetching {what} from Maven Central took over {MAVEN_TIMEOUT_S} s and was stopped; "
            "check the network to Maven Central and run again (nothing partial was kept)."
        ) from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ProvisionError(
            f"fetching {what} from Maven Central failed (mvn exit {proc.returncode}); "
            f"nothing partial was kept. Maven said:\n{tail}"
        )


def maven_copy(artifacts: list[str], dest: Path, java_home: Path, what: str) -> list[Path]:
    """Copy exact artifacts (``group:artifact:version[:type[:classifier]]``) into ``dest``."""
    out = []
    for coord in artifacts:
        _mvn(
            [
                "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
                f"-Dartifact={coord}",
                f"-DoutputDirectory={dest}",
            ],
            java_home,
            dest,
            what,
        )
    for path in sorted(dest.iterdir()):
        if path.is_file() and path.stat().st_size == 0:
            raise ProvisionError(f"Maven produced an empty file {path.name} for {what}")
        out.append(path)
    return out


POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>br.com.safra</groupId><artifactId>{name}-deps</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def maven_with_dependencies(artifacts: list[str], dest: Path, java_home: Path, what: str) -> None:
    """Copy ``artifacts`` and their runtime dependencies (the Maven closure) into ``dest``."""
    deps = []
    for coord in artifacts:
        group, artifact, version = coord.split(":")[:3]
        deps.append(
            f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version></dependency>"
        )
    with tempfile.TemporaryDirectory() as work:
        Path(work, "pom.xml").write_text(POM.format(name=dest.name, deps="\n".join(deps)))
        _mvn(
            [
                "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={dest}",
            ],
            java_home,
            Path(work),
            what,
        )
