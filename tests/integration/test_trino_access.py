"""Who may read what in the real local Trino: each identity logs in (HTTPS, its password from
.env) and reads, or is refused, tables of this module's own bronze, silver and gold schemas.

ETL (``safra``) reads and writes every layer, raw identity columns included; the analyst reads
silver and gold only; the ML identity reads gold, the two silver tables training reads and the
scored requests, nothing else of bronze. No password, a wrong one, and the plain HTTP port are
refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
import trino
from pydantic import SecretStr

from safra.lakehouse import TrinoPasswordRefused, drop_schemas, trino_query
from safra.settings import Settings

pytestmark = pytest.mark.stack

DENIED = "Access Denied"


@pytest.fixture(scope="module")
def lake(local_stack: Settings) -> Iterator[dict[str, str]]:
    """``<p>bronze``, ``<p>silver``, ``<p>gold`` with one row per table, made by the ETL
    identity; dropped at the end."""
    prefix = f"it_access_{uuid.uuid4().hex[:8]}_"
    cat = local_stack.iceberg_catalog
    names = {layer: f'{cat}."{prefix}{layer}"' for layer in ("bronze", "silver", "gold")}
    statements = [f"create schema {name}" for name in names.values()] + [
        f"create table {names['bronze']}.applications as select 'p1' as proponente_id, "
        "'123.456.789-09' as cpf_cnpj, 'Maria da Silva' as nome_razao_social, "
        "cast(row(700, 'MAT-1') as row(serasa_score integer, numero_matricula_imovel varchar)) "
        "as fontes_dados_adicionais",
        f"create table {names['bronze']}.scored_requests as select 'r1' as id_requisicao, "
        "0.12e0 as probabilidade_inadimplencia",
        f"create table {names['silver']}.silver_applications as select 'a1' as id_solicitacao, "
        "'h-p1' as proponente_hash",
        f"create table {names['silver']}.silver_outcomes as select 'a1' as id_solicitacao, "
        "false as inadimplente",
        f"create table {names['silver']}.silver_notes as select 'a1' as id_solicitacao",
        f"create table {names['gold']}.proponente_features as select 'h-p1' as proponente_hash, "
        "1 as hist_n",
    ]
    try:
        for sql in statements:
            trino_query(local_stack, sql, source="it-access")
        yield names
    finally:
        drop_schemas(local_stack, [f"{prefix}{layer}" for layer in names], source="it-access")


def _reads(settings: Settings, identity: str, sql: str) -> bool:
    """True when ``identity`` may run ``sql``; False when Trino denies it (anything else fails
    the test)."""
    try:
        trino_query(settings, sql, source="it-access", identity=identity)
    except trino.exceptions.TrinoUserError as exc:
        assert DENIED in exc.message, exc.message
        return False
    return True


def test_each_identity_reads_exactly_its_tables(local_stack: Settings, lake) -> None:
    b, s, g = lake["bronze"], lake["silver"], lake["gold"]
    tables = {
        "raw identity": f"select cpf_cnpj, nome_razao_social, "
        f"fontes_dados_adicionais.numero_matricula_imovel from {b}.applications",
        "bronze applications": f"select proponente_id from {b}.applications",
        "scored requests": f"select probabilidade_inadimplencia from {b}.scored_requests",
        "silver applications": f"select * from {s}.silver_applications",
        "silver outcomes": f"select * from {s}.silver_outcomes",
        "silver snapshots": f'select snapshot_id from {s}."silver_outcomes$refs"',
        "other silver": f"select * from {s}.silver_notes",
        "gold": f"select * from {g}.proponente_features",
    }
    readable = {
        identity: sorted(name for name, sql in tables.items() if _reads(local_stack, identity, sql))
        for identity in ("etl", "analyst", "ml")
    }
    assert readable == {
        "etl": sorted(tables),
        "analyst": sorted(["silver applications", "silver outcomes", "silver snapshots",
                           "other silver", "gold"]),
        "ml": sorted(["scored requests", "silver applications", "silver outcomes",
                      "silver snapshots", "gold"]),
    }  # fmt: skip
    # the raw identity columns, as ETL reads them (and no one else)
    assert trino_query(local_stack, tables["raw identity"]) == [
        ["123.456.789-09", "Maria da Silva", "MAT-1"]
    ]


def test_only_etl_writes(local_stack: Settings, lake) -> None:
    g, s = lake["gold"], lake["silver"]
    for identity in ("analyst", "ml"):
        assert not _reads(local_stack, identity, f"insert into {g}.proponente_features "
                                                  "values ('x', 2)")  # fmt: skip
        assert not _reads(local_stack, identity, f"create table {s}.mine as select 1 as one")
        assert not _reads(local_stack, identity, f"drop table {g}.proponente_features")
    assert _reads(local_stack, "etl", f"insert into {g}.proponente_features values ('x', 2)")
    assert trino_query(local_stack, f"select count(*) from {g}.proponente_features") == [[2]]


def test_readers_never_see_the_etl_queries(local_stack: Settings, lake) -> None:
    """The ETL identity's query text names bronze's tables and values: the other identities see
    their own queries only."""
    marker = f"it_marker_{uuid.uuid4().hex[:8]}"
    trino_query(local_stack, f"select '{marker}'", source="it-access")
    sql = "select query from system.runtime.queries"
    for identity in ("analyst", "ml"):
        texts = [q for (q,) in trino_query(local_stack, sql, identity=identity)]
        assert texts and not any(marker in t for t in texts), identity
    assert any(marker in q for (q,) in trino_query(local_stack, sql))


def test_a_wrong_password_is_one_clear_message(local_stack: Settings) -> None:
    wrong = local_stack.model_copy(update={"trino_analyst_password": SecretStr("not-the-password")})
    with pytest.raises(TrinoPasswordRefused) as refused:
        trino_query(wrong, "select 1", identity="analyst")
    message = str(refused.value)
    assert "refused the password of user safra-analyst (401" in message
    assert "SAFRA_TRINO_ANALYST_PASSWORD" in message
    assert "not-the-password" not in message


def test_no_password_and_plain_http_are_refused(local_stack: Settings) -> None:
    https = f"{local_stack.trino_url}/v1/statement"
    anonymous = requests.post(https, data="select 1", headers={"X-Trino-User": "safra"},
                              verify=local_stack.trino_verify, timeout=10)  # fmt: skip
    assert anonymous.status_code == 401
    # the HTTP port serves Trino's internal communication only: no client gets in, with or
    # without credentials
    user, password, _ = local_stack.trino_identity("etl")
    http = f"http://{local_stack.trino_host}:{local_stack.trino_port}/v1/statement"
    for auth in (None, (user, password)):
        response = requests.post(http, data="select 1", headers={"X-Trino-User": user},
                                 auth=auth, timeout=10)  # fmt: skip
        assert response.status_code == 403, auth is None
    # the certificate is verified: without the stack's CA the handshake fails
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{local_stack.trino_url}/v1/info", verify=True, timeout=10)
