"""MLflow with its authentication on (``mlflow server --app-name basic-auth``): who may change what.

Three identities, their passwords generated into ``.env`` by ``safra env``:

- **admin** (``SAFRA_MLFLOW_ADMIN_PASSWORD``): the server's admin, written into its auth config
  (read at the first start: the auth database keeps it afterwards); used only here, to create
  the two others;
- **Safra** (``SAFRA_MLFLOW_USERNAME`` / ``_PASSWORD``): trains, registers, promotes, records —
  the CLI, the demo, Airflow's tasks. It gets MANAGE on every experiment and registered model
  that exists when the stack starts (what it creates later is its own: MLflow gives the creator
  MANAGE);
- **the scoring API** (``SAFRA_MLFLOW_API_USERNAME`` / ``_PASSWORD``): the server's default
  permission, READ — it reads the registry and moves nothing.

Anyone else (no password, or a user without a grant) cannot register a version of Safra's model
or move its aliases.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from commands.stack.provision import ProvisionError
from safra.settings import Settings

log = logging.getLogger(__name__)

ADMIN = "admin"
DEFAULT_PERMISSION = "READ"


def _secret(s: Settings, field: str) -> str:
    value = getattr(s, field).get_secret_value()
    if not value:
        raise ProvisionError(
            f"mlflow: its authentication is on and SAFRA_{field.upper()} is empty. Fix: "
            "`.venv/bin/safra env` (or `make env`) generates the missing secrets into .env"
        )
    return value


def server_config(s: Settings, data: Path) -> dict[str, str]:
    """Write the server's auth config (mode 0600) and return the environment that turns the
    authentication on."""
    admin = _secret(s, "mlflow_admin_password")
    for field in ("mlflow_password", "mlflow_api_password"):
        _secret(s, field)
    auth = data / "auth"
    auth.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = auth / "basic_auth.ini"
    config.touch(mode=0o600)
    config.write_text(
        "[mlflow]\n"
        f"default_permission = {DEFAULT_PERMISSION}\n"
        f"database_uri = sqlite:///{auth / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        f"admin_password = {admin}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    key = auth / "flask_secret_key"
    if not key.exists():  # the UI's CSRF protection signs with it; generated once
        key.touch(mode=0o600)
        key.write_text(secrets.token_urlsafe(32))
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": key.read_text().strip(),
    }


@contextlib.contextmanager
def _as(username: str, password: str) -> Iterator[None]:
    """MLflow's clients read their identity from the environment: this one for the block."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = (
        username,
        password,
    )
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _exists(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_ALREADY_EXISTS"


def ensure_identities(s: Settings) -> None:
    """Create (or re-password, from ``.env``) Safra's and the API's users; give Safra MANAGE on
    every experiment and registered model that exists. Idempotent."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    uri = s.mlflow_tracking_uri
    with _as(ADMIN, _secret(s, "mlflow_admin_password")):
        auth = get_app_client("basic-auth", tracking_uri=uri)
        for username, field in (
            (s.mlflow_username, "mlflow_password"),
            (s.mlflow_api_username, "mlflow_api_password"),
        ):
            password = _secret(s, field)
            try:
                auth.create_user(username, password)
                log.info("mlflow: user %s created", username)
            except MlflowException as exc:
                if not _exists(exc):
                    raise
                auth.update_user_password(username, password)
        client = MlflowClient(uri, uri)
        grants = [("experiment", e.experiment_id) for e in client.search_experiments()]
        grants += [("registered_model", m.name) for m in client.search_registered_models()]
        for resource_type, resource_id in grants:
            try:
                auth.grant_user_permission(s.mlflow_username, resource_type, resource_id, "MANAGE")
            except MlflowException as exc:
                if not _exists(exc):
                    raise
