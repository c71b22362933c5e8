"""Who may change what in the registry: MLflow of the tests' stack runs with its authentication
on (``commands.stack.mlflow_auth``). Safra's identity writes; the API's identity only reads; a
user without a grant, or nobody at all, can neither register a version of Safra's model nor move
its aliases."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
import uuid

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from commands.stack.mlflow_auth import _as, create_user
from ml.registry import CHAMPION, tracking_client
from safra.settings import Settings

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def safra_model(local_stack: Settings) -> tuple[str, str, str]:
    """A registered model with one version, made by Safra's identity: (name, version, run)."""
    client = tracking_client(local_stack)
    name = f"it-auth-{uuid.uuid4().hex[:8]}"
    run = client.create_run(client.create_experiment(name))
    client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    ).version
    client.set_registered_model_alias(name, CHAMPION, version)
    return name, str(version), run.info.run_id


def _denied(call) -> str:
    with pytest.raises(MlflowException) as caught:
        call()
    return str(caught.value.error_code)


def test_nobody_anonymous_gets_in(local_stack: Settings) -> None:
    uri = local_stack.mlflow_tracking_uri
    with urllib.request.urlopen(f"{uri}/health", timeout=5) as health:  # probes stay open
        assert health.status == 200
    request = urllib.request.Request(f"{uri}/api/2.0/mlflow/registered-models/search", method="GET")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 401


def test_the_api_identity_reads_the_registry_and_changes_nothing(
    local_stack: Settings, safra_model: tuple[str, str, str]
) -> None:
    name, version, run_id = safra_model
    uri = local_stack.mlflow_tracking_uri
    api = (local_stack.mlflow_api_username, local_stack.mlflow_api_password.get_secret_value())
    try:
        with _as(*api):
            client = MlflowClient(uri, uri)
            assert client.get_model_version_by_alias(name, CHAMPION).version == version
            assert _denied(lambda: client.set_registered_model_alias(name, CHAMPION, version)) == (
                "PERMISSION_DENIED"
            )
            assert (
                _denied(lambda: client.create_model_version(name, source="x", run_id=run_id))
                == "PERMISSION_DENIED"
            )
            assert (
                _denied(
                    lambda: client.set_model_version_tag(name, version, "safra.signature", "forged")
                )
                == "PERMISSION_DENIED"
            )
    finally:
        tracking_client(local_stack)  # back to Safra's identity for the rest of the session


def test_a_user_without_a_grant_cannot_register_or_promote(
    local_stack: Settings, safra_model: tuple[str, str, str]
) -> None:
    name, version, run_id = safra_model
    uri = local_stack.mlflow_tracking_uri
    intruder = (f"intruder-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16))
    try:
        assert create_user(local_stack, *intruder)  # a user of the server, without a grant
        with _as(*intruder):
            client = MlflowClient(uri, uri)
            assert (
                _denied(lambda: client.create_model_version(name, source="x", run_id=run_id))
                == "PERMISSION_DENIED"
            )
            assert _denied(lambda: client.set_registered_model_alias(name, CHAMPION, version)) == (
                "PERMISSION_DENIED"
            )
            assert _denied(lambda: client.delete_registered_model_alias(name, CHAMPION)) == (
                "PERMISSION_DENIED"
            )
    finally:
        client = tracking_client(local_stack)
    assert client.get_model_version_by_alias(name, CHAMPION).version == version
