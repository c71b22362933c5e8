"""The tests' own stack: its own data folder (``.safra-test/``) and ports (the defaults + 20000),
so that ``make test`` never reads or writes the user's stack (``.safra/``, the default ports),
whether it runs or not. The conftest applies :data:`ENVIRONMENT` before any settings are built;
child processes (the DAG tests' ``safra`` commands, the API) inherit it.

    .venv/bin/python -m tests.own_stack reset   # stop the test stack, delete its data (make test)
    .venv/bin/python -m tests.own_stack down    # stop the test stack, keep its data and logs
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from safra.settings import default_ports

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / ".safra-test"
PORT_OFFSET = int(os.environ.get("SAFRA_TEST_PORT_OFFSET", "20000"))
"""Ports of the test stack: the defaults + this (another worktree's tests can use another)."""
ENVIRONMENT: dict[str, str] = {
    "SAFRA_DATA_DIR": str(DATA_DIR),
    **{name: str(port + PORT_OFFSET) for name, port in default_ports().items()},
    # derived from the ports above: empty, so that a value in .env or the shell cannot point the
    # tests at another stack
    "SAFRA_KAFKA_BOOTSTRAP": "",
    "SAFRA_ICEBERG_REST_URI": "",
    "SAFRA_ICEBERG_WAREHOUSE": "",
    "SAFRA_TRINO_HOST": "",
    "SAFRA_TRINO_CA_CERT": "",
    "SAFRA_REDIS_URL": "",
    "SAFRA_MLFLOW_TRACKING_URI": "",
    "SAFRA_AIRFLOW_URL": "",
    "SAFRA_AIRFLOW_PASSWORD": "",
}


def apply() -> None:
    """Point this process (and its children) at the test stack; what they create there is
    private to the user, as under the ``safra`` CLI."""
    from safra.private_files import use_private_umask

    use_private_umask()
    os.environ.update(ENVIRONMENT)
    from safra.settings import get_settings

    get_settings.cache_clear()


def main(argv: list[str]) -> int:
    if argv not in (["reset"], ["down"]):
        print(__doc__)
        return 2
    apply()
    from commands import stack
    from safra.settings import get_settings

    settings = get_settings()
    stopped = stack.down(settings)
    print(f"test stack: stopped {', '.join(stopped) or 'nothing (it was not running)'}")
    if argv == ["reset"] and DATA_DIR.exists():
        shutil.rmtree(DATA_DIR)
        print(f"test stack: {DATA_DIR} deleted (the user's stack and .safra/ are left alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
