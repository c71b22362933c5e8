from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from safra.settings import LOCAL_SERVICES, Settings, redact
from tests.own_stack import ENVIRONMENT


@pytest.fixture(autouse=True)
def _defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings as a user gets them: without the test stack's environment (tests.own_stack)."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def test_local_defaults_are_derived_from_ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    s = Settings(_env_file=None)
    assert s.data_dir == tmp_path / ".safra"
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.iceberg_rest_uri == "http://127.0.0.1:8181"
    assert s.trino_url == "https://127.0.0.1:8443"
    assert s.trino_verify == str(tmp_path / ".safra" / "trino" / "tls" / "cert.pem")
    assert s.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.iceberg_warehouse == (tmp_path / ".safra" / "warehouse").as_uri()
    assert s.local_services == list(LOCAL_SERVICES)
    assert not (tmp_path / ".safra").exists()  # building settings creates nothing


def test_environment_overrides_with_one_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SAFRA_KAFKA_PORT", "19092")
    monkeypatch.setenv("SAFRA_TRINO_HOST", "trino.internal")
    monkeypatch.setenv("SAFRA_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("SAFRA_REDIS_PASSWORD", "s3cret")
    s = Settings(_env_file=None)
    assert s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.trino_url == "https://trino.internal:8443"
    assert s.data_dir == tmp_path / "d"
    assert s.redis_url == "redis://:s3cret@127.0.0.1:6379/0"
    assert "s3cret" not in redact(s.redis_url)
    assert "s3cret" not in repr(s)


def test_real_clusters_need_no_local_services(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SAFRA_STACK_SERVICES", "")
    monkeypatch.setenv("SAFRA_KAFKA_BOOTSTRAP", "broker-1:9092,broker-2:9092")
    s = Settings(_env_file=None)
    assert s.local_services == []
    assert s.kafka_bootstrap == "broker-1:9092,broker-2:9092"


def test_services_keep_dependency_order_and_reject_unknown(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SAFRA_STACK_SERVICES", "trino, redis")
    assert Settings(_env_file=None).local_services == ["redis", "trino"]
    monkeypatch.setenv("SAFRA_STACK_SERVICES", "redis,postgres")
    with pytest.raises(ValidationError, match="postgres"):
        Settings(_env_file=None)


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    env = tmp_path / ".env"
    env.write_text("SAFRA_MLFLOW_PORT=5055\n")
    assert Settings(_env_file=env).mlflow_tracking_uri == "http://127.0.0.1:5055"


def test_trino_identities_and_their_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    password = secrets.token_urlsafe(16)  # made up per run: no password-like literal in git
    monkeypatch.setenv("SAFRA_TRINO_ML_PASSWORD", password)
    monkeypatch.setenv("SAFRA_TRINO_CA_CERT", "system")
    s = Settings(_env_file=None)
    assert s.trino_identity("ml") == ("safra-ml", password, "SAFRA_TRINO_ML_PASSWORD")
    assert s.trino_verify is True  # the system's trust store; never False
    with pytest.raises(ValueError, match=r"SAFRA_TRINO_ANALYST_PASSWORD is empty.*make env"):
        s.trino_identity("analyst")
    with pytest.raises(ValueError, match="unknown Trino identity 'admin'"):
        s.trino_identity("admin")
    assert password not in repr(s)
