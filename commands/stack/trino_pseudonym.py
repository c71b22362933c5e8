"""Safra's Trino plugin: the functions that compute pseudonyms inside Trino, keyed by a secret
only the Trino process reads.

``safra_pseudonym(varchar)`` and ``safra_tax_id_pseudonym(varchar)`` (Java, in
``resources/trino-pseudonym/``) equal :mod:`safra.pseudonyms`. The plugin is compiled once against
the cached Trino's own SPI jars and cached by its sources' hash. At every ``stack up`` the key is
written to a 0600 file under Trino's etc folder and only that file's *path* is on Trino's command
line (``-Dsafra.pseudonym-key-file``): the key is never in query text, dbt's files or a log.
Trino takes one plugin folder, so Trino's is mirrored by symlinks beside this one.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import subprocess
import zipfile
from pathlib import Path

from commands.stack.provision import ProvisionError, cached_folder
from safra.settings import Settings

KEY_FILE_PROPERTY = "safra.pseudonym-key-file"
"""The JVM system property naming the key file (read by ``PseudonymFunctions.java``)."""

PLUGIN_NAME = "safra-pseudonym"
SOURCES = ("SafraPseudonymPlugin.java", "PseudonymFunctions.java")
PLUGIN_CLASS = "safra.trino.SafraPseudonymPlugin"
JAVA_RELEASE = "24"  # Trino 476's own minimum
# what the sources compile against, from the Trino install's lib/ (the SPI and its Slice)
COMPILE_JARS = ("io.trino_trino-spi-{version}.jar", "io.airlift_slice-*.jar")


def _source(name: str) -> str:
    folder = importlib.resources.files("commands.stack").joinpath("resources", "trino-pseudonym")
    return folder.joinpath(name).read_text()


def pseudonym_plugin(s: Settings, java_home: Path, trino_home: Path) -> Path:
    """The plugin's folder (one jar), compiled on first use and cached by the sources' hash."""
    sources = {name: _source(name) for name in SOURCES}
    digest = hashlib.sha256(
        "\n".join([s.trino_version, JAVA_RELEASE, *sources.values()]).encode()
    ).hexdigest()[:10]

    def build(tmp: Path) -> None:
        javac = java_home / "bin" / "javac"
        if not javac.exists():
            raise ProvisionError(
                f"trino: {java_home} is a JRE without javac, needed once to compile Safra's "
                "pseudonym plugin. Fix: install a JDK 24+ (e.g. Temurin 25) and point "
                "SAFRA_TRINO_JAVA_HOME at it."
            )
        src = tmp / "src"
        src.mkdir()
        for name, text in sources.items():
            (src / name).write_text(text)
        classpath = []
        for pattern in COMPILE_JARS:
            found = sorted((trino_home / "lib").glob(pattern.format(version=s.trino_version)))
            if not found:
                raise ProvisionError(
                    f"trino: no {pattern} in {trino_home / 'lib'} to compile against"
                )
            classpath.append(str(found[-1]))
        classes = tmp / "classes"
        proc = subprocess.run(
            [str(javac), "--release", JAVA_RELEASE, "-nowarn", "-d", str(classes),
             "-cp", os.pathsep.join(classpath), *(str(src / n) for n in SOURCES)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if proc.returncode != 0:
            raise ProvisionError(f"trino: compiling the pseudonym plugin failed: {proc.stderr}")
        # Trino loads every file of a plugin's folder: the jar sits alone in plugin/
        (tmp / "plugin").mkdir()
        with zipfile.ZipFile(tmp / "plugin" / f"{PLUGIN_NAME}.jar", "w") as jar:
            jar.writestr("META-INF/services/io.trino.spi.Plugin", PLUGIN_CLASS + "\n")
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())

    target = s.cache_dir / f"trino-{PLUGIN_NAME}-{s.trino_version}-{digest}"
    return cached_folder(target, build, "Safra's Trino pseudonym plugin") / "plugin"


def plugin_dir(s: Settings, trino_home: Path, plugin: Path) -> Path:
    """Trino's ``plugin.dir``: a folder under the data folder holding a symlink to each of the
    Trino install's plugins and one to Safra's."""
    folder = s.data_dir / "trino" / "plugin"
    folder.mkdir(parents=True, exist_ok=True)
    links = {p.name: p for p in sorted((trino_home / "plugin").iterdir()) if p.is_dir()}
    links[PLUGIN_NAME] = plugin
    for entry in folder.iterdir():  # stale links (an older plugin build, a removed plugin)
        if entry.is_symlink() and entry.readlink() != links.get(entry.name):
            entry.unlink()
    for name, target in links.items():
        if not (folder / name).exists():
            (folder / name).symlink_to(target, target_is_directory=True)
    return folder


def write_key_file(s: Settings, etc: Path) -> Path:
    """Write the pseudonym key to ``<etc>/pseudonym.key`` (mode 0600; rewritten only when it
    changed) and return its path. ProvisionError naming SAFRA_PSEUDONYM_KEY when unset."""
    try:
        key = s.require_pseudonym_key().encode()
    except ValueError as exc:
        raise ProvisionError(f"trino: {exc}") from exc
    path = etc / "pseudonym.key"
    etc.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also when the file existed with a looser mode
        with os.fdopen(fd, "r+b", closefd=False) as f:
            if f.read() != key:
                f.seek(0)
                f.truncate()
                f.write(key)
    finally:
        os.close(fd)
    return path
