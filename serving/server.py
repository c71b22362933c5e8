"""Running the scoring API: the ``bentoml serve`` command line and its environment (the API's
own, read-only MLflow identity), shared by ``safra serve`` (foreground) and ``safra stack up
--with api`` (supervised: ``commands.stack.services``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from safra.settings import Settings

SERVICE_IMPORT = "serving.service:CreditScoring"


def bentoml_command(settings: Settings, port: int | None = None) -> list[str]:
    """``bentoml serve`` of :data:`SERVICE_IMPORT` on ``settings.bind_host`` and ``port``
    (default ``settings.serving_port``). ValueError when the API key is missing, before any
    process starts (the service refuses to start without one)."""
    settings.require_api_key()
    bentoml = Path(sys.executable).parent / "bentoml"
    return [
        str(bentoml), "serve", SERVICE_IMPORT, "--host", settings.bind_host,
        "--port", str(port or settings.serving_port),
    ]  # fmt: skip


def api_environment(settings: Settings) -> dict[str, str]:
    """The API's own MLflow identity, for its process: the reader (``SAFRA_MLFLOW_API_*``), not
    Safra's writer; empty when none is configured."""
    password = settings.mlflow_api_password.get_secret_value()
    if not password:
        return {}
    return {
        "SAFRA_MLFLOW_USERNAME": settings.mlflow_api_username,
        "SAFRA_MLFLOW_PASSWORD": password,
    }


def serve_foreground(settings: Settings, port: int | None = None) -> None:
    """Replace this process with ``bentoml serve`` (Ctrl+C stops it), as the API's identity."""
    command = bentoml_command(settings, port)
    os.execve(command[0], command, {**os.environ, **api_environment(settings)})
