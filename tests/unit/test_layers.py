"""The layers hold where the contract (``lint-imports``, pyproject.toml) cannot see: what the
scoring API loads at run time and what its Bento ships."""

from __future__ import annotations

import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_the_scoring_api_never_loads_the_simulator_or_the_pipelines() -> None:
    code = (
        "import sys, serving.service; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pipelines', 'commands')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_bento_ships_no_simulator_code() -> None:
    bento = yaml.safe_load((REPO / "serving" / "bentofile.yaml").read_text())
    shipped = [
        path.relative_to(REPO).as_posix()
        for path in REPO.rglob("*.py")
        if any(fnmatch(path.relative_to(REPO).as_posix(), p) for p in bento["include"])
    ]
    assert "serving/service.py" in shipped and "safra/contracts.py" in shipped
    assert not [p for p in shipped if p.startswith(("pipelines/", "commands/", "tests/"))]
