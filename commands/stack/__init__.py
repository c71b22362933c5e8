"""The local stack: real services (Kafka, Iceberg REST, Trino, Redis, MLflow) as local processes."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from commands.stack import mlflow_auth
from commands.stack.process import ServiceState, StackError, Supervisor, port_open
from commands.stack.provision import ProvisionError
from commands.stack.services import SPECS
from safra.java import JavaNotFound
from safra.private_files import make_private, use_private_umask
from safra.settings import OPTIONAL_SERVICES, Settings, redact

log = logging.getLogger(__name__)

__all__ = [
    "StackError",
    "ProvisionError",
    "JavaNotFound",
    "up",
    "down",
    "status",
    "logs",
    "service_endpoints",
]


@dataclass
class UpResult:
    name: str
    action: str  # started | already running
    seconds: float


def supervisor(s: Settings) -> Supervisor:
    return Supervisor(s.run_dir, s.logs_dir, s.bind_host)


def service_endpoints(s: Settings) -> dict[str, tuple[int, str]]:
    """Port and URL of every local service, without provisioning anything."""
    return {
        "redis": (s.redis_port, redact(s.redis_url)),
        "kafka": (s.kafka_port, f"kafka://{s.kafka_bootstrap}"),
        "iceberg-rest": (s.iceberg_rest_port, s.iceberg_rest_uri),
        "trino": (s.trino_port, s.trino_url),
        "mlflow": (s.mlflow_port, s.mlflow_tracking_uri),
        "api": (s.serving_port, f"http://{s.bind_host}:{s.serving_port}"),
        "airflow": (s.airflow_port, f"http://{s.bind_host}:{s.airflow_port}"),
    }


def _selected(s: Settings, names: list[str] | None, extra: list[str] | None = None) -> list[str]:
    """``names`` (default: the configured services) plus ``extra`` (optional services), in
    start order."""
    names = [*(names or s.local_services), *(extra or [])]
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise StackError(f"unknown service(s) {unknown}; known: {', '.join(SPECS)}")
    return [n for n in SPECS if n in names]


def up(
    s: Settings,
    names: list[str] | None = None,
    on_step: Callable[[str, str], None] | None = None,
    extra: list[str] | None = None,
) -> list[UpResult]:
    """Provision (first run) and start the selected services in dependency order; idempotent.

    ``extra``: optional services (``api``, ``airflow``) started after the others. The data
    folder is made private first (a tree from before Safra kept it private is repaired), and so
    is everything this process creates from then on (:mod:`safra.private_files`)."""
    use_private_umask()
    t0 = time.monotonic()
    repaired = make_private(s.data_dir)
    if repaired:
        log.info("%s: %d files and folders made private to the user (%.2f s)",
                 s.data_dir, repaired, time.monotonic() - t0)  # fmt: skip
    sup = supervisor(s)
    results = []
    for name in _selected(s, names, extra):
        t0 = time.monotonic()
        if on_step:
            on_step(name, "starting")
        spec = SPECS[name](s)
        action = sup.start(spec)
        if name == "mlflow":
            mlflow_auth.ensure_identities(s)
        results.append(UpResult(name, action, time.monotonic() - t0))
        if on_step:
            on_step(name, action)
        log.debug("%s: %s (%s)", name, action, spec.url)
    return results


def down(s: Settings, names: list[str] | None = None) -> list[str]:
    """Stop what this stack started (in reverse order); never touches other processes."""
    sup = supervisor(s)
    stopped = []
    for name in reversed(_selected(s, names) if names else list(SPECS)):
        if sup.stop(name, timeout=s.stop_timeout_s):
            stopped.append(name)
    return stopped


def status(s: Settings) -> list[ServiceState]:
    sup = supervisor(s)
    states = []
    for name, (port, url) in service_endpoints(s).items():
        proc = sup.process(name)
        if proc is None and name in OPTIONAL_SERVICES and not sup.pid_file(name).exists():
            continue  # not asked for: not listed
        if proc is None:
            stale = sup.pid_file(name).exists()
            states.append(ServiceState(name, "stale" if stale else "stopped", port, url=url))
            continue
        rss = 0
        with contextlib.suppress(psutil.Error):  # the process may end while we look
            rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
        state = "running" if port_open(s.bind_host, port) else "starting"
        states.append(ServiceState(name, state, port, proc.pid, rss, url))
    return states


def logs(s: Settings, name: str, lines: int = 50) -> str:
    if name not in SPECS:
        raise StackError(f"unknown service {name!r}; known: {', '.join(SPECS)}")
    return supervisor(s).tail(name, lines)
