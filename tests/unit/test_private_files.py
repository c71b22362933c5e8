"""Private files: the umask every Safra process and service gets, the repair of an old tree, the
Redis password in a private config file instead of on the command line."""

from __future__ import annotations

import os
import secrets
import stat
import sys
from pathlib import Path

import pytest

from commands.stack.process import ServiceSpec, Supervisor
from commands.stack.services import redis_spec
from safra.private_files import PRIVATE_UMASK, make_private, readable_by_others, use_private_umask
from safra.processes import free_port
from safra.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask_restored():
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


def test_make_private_repairs_a_world_readable_tree(tmp_path: Path, umask_restored) -> None:
    os.umask(0o022)
    root = tmp_path / "data"
    (root / "kafka" / "logs").mkdir(parents=True)
    (root / "kafka" / "logs" / "00000.log").write_text("cpf")
    (root / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o775)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    (root / "link").symlink_to(outside)
    assert set(readable_by_others(root)) == {
        root, root / "kafka", root / "kafka" / "logs", root / "kafka" / "logs" / "00000.log",
        root / "run.sh",
    }  # fmt: skip
    assert make_private(root) == 5
    assert [mode(p) for p in (root, root / "kafka", root / "kafka" / "logs")] == [0o700] * 3
    assert mode(root / "kafka" / "logs" / "00000.log") == 0o600
    assert mode(root / "run.sh") == 0o700  # the owner's bits are kept
    assert mode(outside) == 0o644  # a symlink's target is not ours to change
    assert readable_by_others(root) == []
    assert make_private(root) == 0  # idempotent


def test_make_private_creates_a_missing_data_folder_private(tmp_path: Path, umask_restored) -> None:
    os.umask(0o022)
    assert make_private(tmp_path / "new" / "data") == 0
    assert mode(tmp_path / "new" / "data") == 0o700


def test_what_a_process_creates_after_use_private_umask_is_private(
    tmp_path: Path, umask_restored
) -> None:
    os.umask(0o022)
    assert use_private_umask() == 0o022
    assert os.umask(PRIVATE_UMASK) == PRIVATE_UMASK
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    assert (mode(tmp_path / "d"), mode(tmp_path / "d" / "f")) == (0o700, 0o600)


def test_services_create_private_files_whatever_the_callers_umask(
    tmp_path: Path, umask_restored
) -> None:
    os.umask(0o022)
    sup = Supervisor(tmp_path / "run", tmp_path / "logs", port_grace_s=1.0)
    port = free_port()
    made = tmp_path / "made-by-the-service"
    script = (
        f"import os, http.server; os.mkdir({str(made)!r}); open({str(made / 'f')!r}, 'w'); "
        f"http.server.test(http.server.SimpleHTTPRequestHandler, port={port}, bind='127.0.0.1')"
    )
    sup.start(ServiceSpec("web", port, [sys.executable, "-c", script], ready_timeout_s=20))
    try:
        assert (mode(made), mode(made / "f")) == (0o700, 0o600)
    finally:
        sup.stop("web")


def test_redis_password_is_in_a_private_config_file_not_on_the_command_line(
    tmp_path: Path, umask_restored
) -> None:
    os.umask(0o022)
    password = secrets.token_urlsafe(16)
    s = Settings(_env_file=None, data_dir=tmp_path / "data", redis_password=password)
    spec = redis_spec(s)
    assert password not in " ".join(spec.command)
    config = Path(spec.command[-1])
    assert config == s.data_dir / "redis" / "redis.conf"
    assert mode(config) == 0o600
    assert f'requirepass "{password}"' in config.read_text().splitlines()


def test_an_execute_bit_alone_is_not_reading(tmp_path: Path) -> None:
    jar = tmp_path / "a-public.jar"  # what Spark's `chmod a+x` leaves on the jars it copies
    jar.write_text("jar")
    os.chmod(tmp_path, 0o700)
    os.chmod(jar, 0o711)
    assert readable_by_others(tmp_path) == []
    os.chmod(jar, 0o714)
    assert readable_by_others(tmp_path) == [jar]
