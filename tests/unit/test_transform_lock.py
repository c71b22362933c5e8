"""One transform at a time per set of schemas: a second run waits, then fails naming the lock."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipelines.transform import TransformBusy, exclusive
from safra.settings import Settings


def test_a_second_transform_of_the_same_schemas_waits_then_gives_up(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    with exclusive(s, ""):
        t0 = time.monotonic()
        with pytest.raises(TransformBusy, match="transform-main.lock"), exclusive(s, "", 1.0):
            pass
        assert 1.0 <= time.monotonic() - t0 < 5.0


def test_other_schemas_and_a_released_lock_do_not_wait(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    with exclusive(s, ""), exclusive(s, "e2e_ab12_", wait_s=0.0):
        pass
    with exclusive(s, "", wait_s=0.0):  # released on exit
        pass
