"""The Feast repo's declarations (no services: the repo is only parsed)."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta

import pytest
from pydantic import SecretStr

from ml.feature_store import (
    FEATURE_SERVICE,
    HISTORY_VIEW,
    PROFILE_FIELDS,
    feast_environment,
    redis_connection_string,
    repo_contents,
)
from ml.features import HISTORY_INPUTS, HISTORY_SOURCE_COLUMNS, LAST_APPLICATION
from safra.settings import Settings


@pytest.fixture(scope="module")
def contents():
    return repo_contents(Settings(schema_prefix="", feast_project="unit"))


def test_entities_and_their_join_keys(contents) -> None:
    keys = {e.name: e.join_key for e in contents.entities if e.name != "__dummy"}
    assert keys == {
        "proponente": "proponente_id",
        "localizacao_uf": "uf",
        "localizacao_municipio": "municipio",
        "segmento_faixa_risco": "faixa_risco_credito",
        "segmento_cultura": "cultura_principal",
    }


def test_views_read_gold_in_place_with_their_ttls(contents) -> None:
    views = {v.name: v for v in contents.feature_views}
    assert set(views) == {HISTORY_VIEW, "localizacao_perfil", "segmento_risco_perfil"}
    assert views[HISTORY_VIEW].ttl == timedelta(days=5 * 365)
    assert views["localizacao_perfil"].ttl == timedelta(days=365)
    assert views["segmento_risco_perfil"].ttl == timedelta(days=365)
    assert views[HISTORY_VIEW].entities == ["proponente"]
    assert views["localizacao_perfil"].entities == ["localizacao_uf", "localizacao_municipio"]
    assert views["segmento_risco_perfil"].entities == ["segmento_faixa_risco", "segmento_cultura"]
    tables = {v.name: v.batch_source.get_table_query_string() for v in views.values()}
    at_published = "(SELECT * FROM gold.{} FOR VERSION AS OF 'published')"
    assert tables == {  # the audited state only (pipelines/publish.py)
        HISTORY_VIEW: at_published.format("proponente_features"),
        "localizacao_perfil": at_published.format("location_features"),
        "segmento_risco_perfil": at_published.format("risk_features"),
    }
    assert {v.batch_source.timestamp_field for v in views.values()} == {"feature_timestamp"}
    assert all(v.online for v in views.values())


def test_the_gold_schema_follows_the_schema_prefix() -> None:
    prefixed = repo_contents(Settings(schema_prefix="it_x_", feast_project="unit"))
    tables = {v.batch_source.get_table_query_string() for v in prefixed.feature_views}
    assert "(SELECT * FROM it_x_gold.proponente_features FOR VERSION AS OF 'published')" in tables


def test_feast_settings_do_not_leak_into_the_environment(monkeypatch) -> None:
    """Feast reads its ``${VAR}`` values from the environment; they are ``SAFRA_*`` settings too,
    so a leak would move every later ``safra`` command (a child process) to another schema."""
    monkeypatch.delenv("SAFRA_FEAST_PROJECT", raising=False)
    monkeypatch.setenv("SAFRA_SCHEMA_PREFIX", "outer_")
    repo_contents(Settings(schema_prefix="it_y_", feast_project="unit"))
    assert os.environ["SAFRA_SCHEMA_PREFIX"] == "outer_"
    assert "SAFRA_FEAST_PROJECT" not in os.environ


def test_the_model_service_lists_exactly_the_history_and_profile(contents) -> None:
    services = {s.name: s for s in contents.feature_services}
    assert list(services) == [FEATURE_SERVICE]
    (projection,) = services[FEATURE_SERVICE].feature_view_projections
    assert projection.name == HISTORY_VIEW  # the model reads one view: one online read
    assert [f.name for f in projection.features] == [
        "n_solicitacoes",
        "valor_medio",
        "valor_max",
        "valor_desvio",
        "score_medio",
        "share_ibama",
        "ultima_solicitacao",
        "inadimplencias_anteriores",
        "desfechos_conhecidos",
        "perfil_volatilidade",
        "perfil_frequencia",
        "area_total_hectares",
        "cultura_principal",
        "anos_experiencia",
        "serasa_score",
    ]


def test_the_service_carries_every_column_the_history_inputs_read(contents) -> None:
    """One name per concept: a history input is ``hist_`` + the gold (= Feast) column it reads."""
    (service,) = contents.feature_services
    (projection,) = service.feature_view_projections
    served = {f.name for f in projection.features}
    assert set(HISTORY_SOURCE_COLUMNS.values()) | {LAST_APPLICATION} | set(PROFILE_FIELDS) == served
    assert set(HISTORY_SOURCE_COLUMNS) | {"hist_dias_desde_ultima"} == set(HISTORY_INPUTS)
    assert all(hist == f"hist_{gold}" for hist, gold in HISTORY_SOURCE_COLUMNS.items())


def test_feast_environment_comes_from_settings(tmp_path) -> None:
    ml_password, redis_password = secrets.token_urlsafe(12), secrets.token_hex(8)  # per run
    s = Settings(
        data_dir=tmp_path, feast_project="p1", trino_host="trino.example", trino_https_port=9443,
        trino_ml_password=SecretStr(ml_password),
        redis_url=f"redis://:{redis_password}@redis.example:6380/2", schema_prefix="pre_",
    )  # fmt: skip
    env = feast_environment(s)
    assert env["SAFRA_FEAST_PROJECT"] == "p1"
    assert env["SAFRA_FEAST_REGISTRY"] == str(tmp_path.resolve() / "feast" / "p1" / "registry.db")
    assert env["SAFRA_FEAST_TRINO_HOST"] == "trino.example"
    assert env["SAFRA_FEAST_TRINO_PORT"] == "9443"
    assert env["SAFRA_FEAST_TRINO_USER"] == "safra-ml"  # reads only
    assert env["SAFRA_FEAST_TRINO_PASSWORD"] == ml_password
    assert env["SAFRA_FEAST_TRINO_VERIFY"] == str(tmp_path.resolve() / "trino" / "tls" / "cert.pem")
    assert env["SAFRA_FEAST_TRINO_CATALOG"] == "iceberg"
    assert env["SAFRA_FEAST_REDIS"] == f"redis.example:6380,password={redis_password},db=2"
    assert env["SAFRA_SCHEMA_PREFIX"] == "pre_"


def test_redis_connection_string() -> None:
    assert redis_connection_string("redis://127.0.0.1:6379/0") == "127.0.0.1:6379,db=0"
    word = secrets.token_hex(4)  # per run; "%40" must come back as "@"
    assert (
        redis_connection_string(f"rediss://u:{word}%40x@h:1/3")
        == f"h:1,password={word}@x,username=u,db=3,ssl=true"
    )
    with pytest.raises(ValueError, match="SAFRA_REDIS_URL"):
        redis_connection_string("http://h:1")
