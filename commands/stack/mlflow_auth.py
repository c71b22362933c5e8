"""MLflow with its authentication on (``mlflow server --app-name basic-auth``): who may change what.

Three identities, their passwords generated into ``.env`` by ``safra env``:

- **admin** (``SAFRA_MLFLOW_ADMIN_PASSWORD``): the server's admin, written into its auth config
  (read at the first start: the auth database keeps it afterwards); used only here, to create
  the two others;
- **Safra** (``SAFRA_MLFLOW_USERNAME`` / ``_PASSWORD``): trains, registers, promotes, records —
  the CLI, the demo, Airflow's tasks. It gets MANAGE on every experiment and registered model
  that exists when the authentication is first set up (a stack from before it); what it creates
  later is its own (MLflow gives the creator MANAGE);
- **the scoring API** (``SAFRA_MLFLOW_API_USERNAME`` / ``_PASSWORD``): the server's default
  permission, READ — it reads the registry and moves nothing.

Anyone else (no password, or a user without a grant) cannot register a version of Safra's model
or move its aliases.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from commands.stack.provision import ProvisionError
from safra.settings import Settings

log = logging.getLogger(__name__)

ADMIN = "admin"
DEFAULT_PERMISSION = "READ"
AUTH_CACHE_TTL_S = 60


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
        # a verified password is remembered (HMAC'd, in memory) for a minute: without it every
        # request pays a deliberately slow password hash, ~0.4 s each on 2 cores
        f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}\n"
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


def _basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class AdminCallFailed(RuntimeError):
    def __init__(self, path: str, status: int, body: str) -> None:
        super().__init__(f"{path}: HTTP {status}: {body[:300]}")
        self.status, self.body = status, body


def admin_call(s: Settings, method: str, path: str, payload: dict[str, str]) -> dict[str, Any]:
    """One call of MLflow's auth REST API as the admin (plain HTTP: importing ``mlflow.server``
    would import its Flask app and ``prometheus_client`` into this process)."""
    request = urllib.request.Request(
        s.mlflow_tracking_uri.rstrip("/") + path,
        data=json.dumps(payload).encode(),
        method=method,
        headers={**_basic(ADMIN, _secret(s, "mlflow_admin_password")),
                 "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise AdminCallFailed(path, exc.code, exc.read().decode(errors="replace")) from exc
    return json.loads(body or b"{}")


def _exists(exc: AdminCallFailed) -> bool:
    return "RESOURCE_ALREADY_EXISTS" in exc.body


def create_user(s: Settings, username: str, password: str) -> bool:
    """Create ``username`` (True), or set its password when it exists (False)."""
    try:
        admin_call(s, "POST", "/api/2.0/mlflow/users/create",
                   {"username": username, "password": password})  # fmt: skip
        return True
    except AdminCallFailed as exc:
        if not _exists(exc):
            raise
    admin_call(s, "PATCH", "/api/2.0/mlflow/users/update-password",
               {"username": username, "password": password})  # fmt: skip
    return False


def ensure_identities(s: Settings) -> None:
    """Create (or re-password, from ``.env``) Safra's and the API's users; give Safra MANAGE on
    every experiment and registered model that exists. Idempotent."""
    try:
        _ensure_identities(s)
    except (AdminCallFailed, OSError) as exc:
        raise ProvisionError(
            f"mlflow: cannot set up Safra's identities as {ADMIN!r}: {exc}. The admin password "
            f"is fixed when {s.data_dir / 'mlflow' / 'auth' / 'basic_auth.db'} is first created; "
            "if .env changed since, put the old SAFRA_MLFLOW_ADMIN_PASSWORD back"
        ) from exc


def _password_works(s: Settings, username: str, password: str) -> bool:
    request = urllib.request.Request(
        s.mlflow_tracking_uri.rstrip("/") + "/api/2.0/mlflow/users/current",
        headers=_basic(username, password),
    )
    try:
        with urllib.request.urlopen(request, timeout=30):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return False
        raise


def _ensure_identities(s: Settings) -> None:
    from mlflow import MlflowClient

    for username, field in (
        (s.mlflow_username, "mlflow_password"),
        (s.mlflow_api_username, "mlflow_api_password"),
    ):
        password = _secret(s, field)
        if not _password_works(s, username, password) and create_user(s, username, password):
            log.info("mlflow: user %s created", username)
    # what existed before the authentication was on becomes Safra's, once; what Safra creates
    # later is its own anyway
    granted = s.data_dir / "mlflow" / "auth" / "safra-granted"
    if granted.exists():
        return
    uri = s.mlflow_tracking_uri
    with _as(ADMIN, _secret(s, "mlflow_admin_password")):
        client = MlflowClient(uri, uri)
        grants = [("experiment", e.experiment_id) for e in client.search_experiments()]
        grants += [("registered_model", m.name) for m in client.search_registered_models()]
    for resource_type, resource_id in grants:
        try:
            admin_call(s, "POST", "/api/3.0/mlflow/users/permissions/grant", {
                "username": s.mlflow_username, "resource_type": resource_type,
                "resource_id": str(resource_id), "permission": "MANAGE",
            })  # fmt: skip
        except AdminCallFailed as exc:
            if not _exists(exc):
                raise
    granted.write_text(f"{len(grants)} experiments and registered models granted\n")
