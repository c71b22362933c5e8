"""The Avro contracts: schemas load, evolve backward-compatibly, and encode/decode faithfully."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastavro.validation import validate

from pipelines.simulator import generate_applications, generate_outcomes
from safra import contracts
from safra.contracts import ContractError, decode, encode, load_schema

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 7, 1, tzinfo=UTC)
V2_ONLY_FIELDS = ("id_solicitacao", "prazo_meses")


@pytest.fixture(scope="module")
def applications() -> list[dict[str, Any]]:
    return generate_applications(2_000, seed=5, start=START, end=END)


def as_v1(record: dict[str, Any]) -> dict[str, Any]:
    v1 = copy.deepcopy(record)
    for field in V2_ONLY_FIELDS:
        del v1[field]
    v1["metadata_evento"]["versao_schema"] = "1"
    return v1


def test_every_subject_and_version_loads_and_latest_is_the_highest() -> None:
    assert contracts.LATEST == {"application": 2, "outcome": 1, "scored_request": 1}
    for subject, versions in contracts.VERSIONS.items():
        for version in versions:
            schema = load_schema(subject, version)
            assert schema["name"].startswith("br.com.safra.")
            assert json.loads(contracts.schema_text(subject, version))["type"] == "record"
    assert load_schema("application") is load_schema("application", 2)


def test_application_v1_has_exactly_the_domain_fields() -> None:
    fields = [f["name"] for f in json.loads(contracts.schema_text("application", 1))["fields"]]
    assert fields == [
        "proponente_id",
        "data_solicitacao",
        "cpf_cnpj",
        "nome_razao_social",
        "tipo_pessoa",
        "renda_bruta_anual_declarada",
        "valor_solicitado_credito",
        "finalidade_credito",
        "localizacao_propriedade",
        "area_total_hectares",
        "cultura_principal",
        "possui_experiencia_atividade",
        "anos_experiencia",
        "fontes_dados_adicionais",
        "metadata_evento",
    ]


def test_v2_only_adds_fields_with_defaults() -> None:
    v1 = {f["name"]: f for f in json.loads(contracts.schema_text("application", 1))["fields"]}
    v2 = {f["name"]: f for f in json.loads(contracts.schema_text("application", 2))["fields"]}
    assert {name: v2[name] for name in v1} == v1
    added = set(v2) - set(v1)
    assert added == set(V2_ONLY_FIELDS)
    assert all("default" in v2[name] for name in added)


def test_v1_record_reads_with_v2_reader_and_gets_defaults(
    applications: list[dict[str, Any]],
) -> None:
    v1 = as_v1(applications[0])
    decoded = decode(encode(v1, "application", 1), writer_version=1, subject="application")
    assert decoded["prazo_meses"] == 12
    assert decoded["id_solicitacao"] == ""
    assert {k: v for k, v in decoded.items() if k not in V2_ONLY_FIELDS} == v1


def test_v2_round_trip_is_lossless(applications: list[dict[str, Any]]) -> None:
    for record in applications[:500]:
        assert decode(encode(record, "application", 2), 2, "application") == record


def test_every_generated_application_validates_against_v2(
    applications: list[dict[str, Any]],
) -> None:
    schema = load_schema("application", 2)
    drought = generate_applications(500, seed=6, start=START, end=END, scenario="drought")
    recalibrated = generate_applications(
        500, seed=6, start=START, end=END, scenario="bureau_recalibration"
    )
    for record in [*applications, *drought, *recalibrated]:
        assert validate(record, schema, raise_errors=True, strict=True)


def test_outcomes_and_scored_requests_round_trip(
    applications: list[dict[str, Any]], scored_request: dict[str, Any]
) -> None:
    for outcome in generate_outcomes(applications[:200], seed=5):
        assert decode(encode(outcome, "outcome", 1), 1, "outcome") == outcome
    encoded = encode(scored_request, "scored_request", 1)
    assert decode(encoded, 1, "scored_request") == scored_request


def test_datetimes_encode_and_decode_as_epoch_milliseconds(
    scored_request: dict[str, Any],
) -> None:
    request = scored_request
    request["requested_at"] = datetime(2024, 6, 1, 12, 0, 0, 123_000, tzinfo=UTC)
    decoded = decode(encode(request, "scored_request"), 1, "scored_request")
    assert decoded["requested_at"] == 1_717_243_200_123


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", b"definitely not avro", bytes(range(256))],
    ids=["empty", "one-byte", "text", "all-bytes"],
)
def test_garbage_bytes_raise_contract_error_naming_the_subject(payload: bytes) -> None:
    with pytest.raises(ContractError, match=r"^application v2: undecodable payload") as caught:
        decode(payload, 2, "application")
    assert caught.value.subject == "application"
    assert caught.value.version == 2


def test_truncated_or_padded_payload_raises(applications: list[dict[str, Any]]) -> None:
    payload = encode(applications[0], "application", 2)
    with pytest.raises(ContractError, match="application v2"):
        decode(payload[:-5], 2, "application")
    with pytest.raises(ContractError, match="trailing bytes"):
        decode(payload + b"\x00", 2, "application")


def test_unknown_subject_or_version_raises() -> None:
    with pytest.raises(ContractError, match=r"application v3: unknown version"):
        load_schema("application", 3)
    with pytest.raises(ContractError, match=r"outcome v2: unknown version"):
        decode(b"\x00", 2, "outcome")
    with pytest.raises(ContractError, match=r"nope v1: unknown subject"):
        encode({}, "nope", 1)


def test_invalid_records_are_refused_on_encode(applications: list[dict[str, Any]]) -> None:
    wrong_enum = copy.deepcopy(applications[0])
    wrong_enum["cultura_principal"] = "MANDIOCA"
    with pytest.raises(ContractError, match=r"^application v2: invalid record"):
        encode(wrong_enum, "application", 2)
    with pytest.raises(ContractError, match=r"^application v2"):
        encode(as_v1(applications[0]), "application", 2)  # v2 fields missing
    with pytest.raises(ContractError, match=r"^application v1"):
        encode(applications[0], "application", 1)  # v2 fields are extra in v1


def test_enum_symbols_come_from_the_contract() -> None:
    from safra.contracts import ContractError, enum_symbols

    assert enum_symbols("application", "tipo_pessoa") == ("FISICA", "JURIDICA")
    assert len(enum_symbols("application", "cultura_principal")) == 10
    with pytest.raises(ContractError, match="not an enum"):
        enum_symbols("application", "proponente_id")
    with pytest.raises(ContractError, match="no field"):
        enum_symbols("application", "nope")
