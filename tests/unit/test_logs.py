"""The CLI's console shows Safra's lines only; the rest goes to the log file (a real process, real
file descriptors, a real child writing to stderr as the JVM under Spark does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import logging, os, subprocess, sys
from pathlib import Path
from safra import logs

out, restore = logs.configure(sys.argv[2] == "verbose", Path(sys.argv[1]))
logging.getLogger("ml.train").info("safra line")
logging.getLogger("mlflow.tracking").warning("third-party line")
print("\x1b[1m\x1b[32mFeast banner\x1b[0m")
subprocess.run(["sh", "-c", "echo 'Exception in thread main java.lang.IllegalStateException' >&2"])
os.write(2, b"100%|#####| 3/3 [00:01<00:00, 2.9it/s]\n")
print('{"json": 1}', file=out)
restore()
print("after restore")
"""


def run(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess[str], str]:
    log = tmp_path / "cli.log"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log), mode], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc, log.read_text() if log.exists() else ""


def test_the_console_shows_safra_lines_and_the_log_file_the_rest(tmp_path: Path) -> None:
    proc, log = run(tmp_path, "quiet")
    assert proc.stdout == '{"json": 1}\nafter restore\n'
    assert "safra line" in proc.stderr
    for noise in ("third-party line", "Feast banner", "java.lang", "it/s", "\x1b["):
        assert noise not in proc.stderr + proc.stdout
        assert noise in log
    assert "safra line" in log and "mlflow.tracking: third-party line" in log
    assert (tmp_path / "cli.log").stat().st_mode & 0o077 == 0  # private to its user


def test_verbose_shows_everything_on_the_console(tmp_path: Path) -> None:
    proc, log = run(tmp_path, "verbose")
    assert "third-party line" in proc.stderr and "java.lang" in proc.stderr
    assert "Feast banner" in proc.stdout
    assert log == ""
