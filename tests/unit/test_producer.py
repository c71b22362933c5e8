"""The producer's pure logic: encoding, v1 shaping, outcome arrival, extras plan, poison."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from confluent_kafka import KafkaError

from pipelines.producer import (
    AvroEncoder,
    DeliveryCounter,
    arrived_outcomes,
    backfill_window,
    compile_writer,
    extras_plan,
    poison_payload,
    produce,
    writer_record,
)
from pipelines.simulator import generate_applications, generate_outcomes
from safra import contracts
from safra.contracts import ContractError, schema_headers
from safra.settings import Settings

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module", params=["baseline", "bureau_recalibration"])
def applications(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return generate_applications(1_500, seed=11, start=START, end=END, scenario=request.param)


def test_encoder_writes_the_bytes_of_the_contract(applications: list[dict[str, Any]]) -> None:
    encoder = AvroEncoder("application", 2)
    assert encoder.compiled
    assert any(a["fontes_dados_adicionais"]["serasa_score"] is None for a in applications)
    for app in applications:
        assert encoder(app) == contracts.encode(app, "application", 2)


def test_outcomes_encode_as_the_contract(applications: list[dict[str, Any]]) -> None:
    encoder = AvroEncoder("outcome", 1)
    for outcome in generate_outcomes(applications, seed=11):
        assert encoder(outcome) == contracts.encode(outcome, "outcome", 1)


def test_v1_record_drops_the_v2_fields_and_says_v1(applications: list[dict[str, Any]]) -> None:
    encoder = AvroEncoder("application", 1)
    app = applications[0]
    v1 = encoder.shape(app)
    assert "id_solicitacao" not in v1 and "prazo_meses" not in v1
    assert v1["metadata_evento"]["versao_schema"] == "1"
    assert app["metadata_evento"]["versao_schema"] == "2"  # the input is left alone
    assert set(v1) == set(app) - {"id_solicitacao", "prazo_meses"}
    contracts.validate_record(v1, "application", 1)


def test_v1_bytes_read_with_the_v2_reader_get_the_defaults(
    applications: list[dict[str, Any]],
) -> None:
    encoder = AvroEncoder("application", 1)
    for app in applications[:200]:
        payload = encoder(encoder.shape(app))
        assert payload == contracts.encode(encoder.shape(app), "application", 1)
        decoded = contracts.decode(payload, 1, "application")
        assert decoded["prazo_meses"] == 12
        assert decoded["id_solicitacao"] == ""
        assert decoded["proponente_id"] == app["proponente_id"]


def test_v2_record_is_unchanged_by_shaping(applications: list[dict[str, Any]]) -> None:
    encoder = AvroEncoder("application", 2)
    assert encoder.shape(applications[0]) == applications[0]
    with pytest.raises(KeyError):
        writer_record({"proponente_id": "p"}, encoder.fields, 2)


def test_schemas_the_compiled_writer_lacks_fall_back_to_fastavro(
    scored_request: dict[str, Any],
) -> None:
    with pytest.raises(NotImplementedError):
        compile_writer({"type": "map", "values": ["null", "double"]})
    encoder = AvroEncoder("scored_request", 1)  # has a map
    assert not encoder.compiled
    assert encoder(scored_request) == contracts.encode(scored_request, "scored_request", 1)


def test_compiled_writer_handles_negative_and_large_longs() -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}
    write = compile_writer(schema)
    parsed = fastavro.parse_schema(schema)
    for n in (0, -1, 1, 63, -64, 64, 8191, -8192, 8192, -8193, 2**40, -(2**62), 2**63 - 1):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, {"n": n})
        assert write({"n": n}) == buffer.getvalue()


def test_a_record_that_does_not_fit_raises_contract_error(
    applications: list[dict[str, Any]],
) -> None:
    encoder = AvroEncoder("application", 2)
    wrong_enum = {**applications[0], "cultura_principal": "MANDIOCA"}
    missing = {k: v for k, v in applications[0].items() if k != "cpf_cnpj"}
    for record in (wrong_enum, missing):
        with pytest.raises(ContractError, match="application v2"):
            encoder(record)


def test_headers_name_the_writer_schema() -> None:
    assert schema_headers("application", 1) == [
        ("schema.subject", b"application"),
        ("schema.version", b"1"),
    ]
    with pytest.raises(ContractError):
        schema_headers("application", 9)


def test_outcomes_arrive_only_before_the_end_oldest_first(
    applications: list[dict[str, Any]],
) -> None:
    outcomes = generate_outcomes(applications, seed=11)
    arrived = arrived_outcomes(outcomes, END)
    end_ms = int(END.timestamp() * 1000)
    assert 0 < len(arrived) < len(outcomes)
    assert all(o["data_desfecho"] < end_ms for o in arrived)
    assert len(arrived) == sum(o["data_desfecho"] < end_ms for o in outcomes)
    times = [o["data_desfecho"] for o in arrived]
    assert times == sorted(times)
    # an outcome exactly at the end has not arrived; one a millisecond before has
    at_end = {**outcomes[0], "data_desfecho": end_ms}
    just_before = {**outcomes[0], "data_desfecho": end_ms - 1}
    assert arrived_outcomes([at_end, just_before], end_ms) == [just_before]


def test_backfill_window_defaults_to_six_months_before_midnight() -> None:
    now = datetime(2026, 3, 10, 15, 42, tzinfo=UTC)
    start, end = backfill_window(now=now)
    assert end == datetime(2026, 3, 10, tzinfo=UTC)
    assert end - start == timedelta(days=183)
    naive_start, naive_end = backfill_window(datetime(2025, 1, 1), datetime(2025, 2, 1))
    assert naive_start.tzinfo is UTC and naive_end == datetime(2025, 2, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="must be after"):
        backfill_window(END, START)


def test_extras_plan_is_seeded_and_duplicates_follow_their_source() -> None:
    plan = extras_plan(200, duplicates=5, poison=3, seed=1)
    assert plan == extras_plan(200, duplicates=5, poison=3, seed=1)
    assert plan != extras_plan(200, duplicates=5, poison=3, seed=2)
    extras = [(position, kind, which) for position, ex in plan.items() for kind, which in ex]
    assert sum(kind == "duplicate" for _, kind, _ in extras) == 5
    assert sorted(which for _, kind, which in extras if kind == "poison") == [0, 1, 2]
    assert all(0 <= position < 200 for position, _, _ in extras)
    assert all(which <= position for position, kind, which in extras if kind == "duplicate")
    # more duplicates than applications: sources repeat
    assert sum(len(ex) for ex in extras_plan(2, duplicates=7, poison=0, seed=3).values()) == 7


def test_extras_need_applications() -> None:
    assert extras_plan(0, 0, 0, seed=1) == {}
    with pytest.raises(ValueError):
        extras_plan(0, duplicates=1, poison=0, seed=1)
    with pytest.raises(ValueError):
        extras_plan(10, duplicates=-1, poison=0, seed=1)


def test_poison_never_decodes(applications: list[dict[str, Any]]) -> None:
    for app in applications[:300]:
        with pytest.raises(ContractError, match="undecodable"):
            contracts.decode(poison_payload(app), 2, "application")


class _Message:
    def topic(self) -> str:
        return "t"

    def key(self) -> bytes:
        return b"k"


def test_delivery_counter_counts_and_keeps_the_first_error() -> None:
    counter = DeliveryCounter()
    counter(None, _Message())
    counter(KafkaError(KafkaError._MSG_TIMED_OUT), _Message())
    counter(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), _Message())
    assert (counter.delivered, counter.failed) == (1, 2)
    assert counter.first_error is not None and "timed out" in counter.first_error.lower()


def test_live_mode_refuses_a_backfill_window() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1")  # never reached: refused before
    with pytest.raises(ValueError, match="live mode"):
        produce(settings, 10, seed=1, rate=5.0, start=START)
    with pytest.raises(ValueError, match="live mode"):
        produce(settings, 10, seed=1, rate=5.0, outcomes_until=START)
    with pytest.raises(ValueError, match="count"):
        produce(settings, -1, seed=1)
