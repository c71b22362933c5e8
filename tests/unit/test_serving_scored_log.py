"""The scored-request log's view of Kafka, without a broker: statistics and errors decide."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import KafkaError

from safra.contracts import ContractError
from safra.settings import Settings
from serving.scored_log import ScoredRequestLog


def _log(**env: str) -> ScoredRequestLog:
    return ScoredRequestLog(Settings(kafka_bootstrap="127.0.0.1:1", **env))  # nothing listens


def test_brokers_up_or_down_from_statistics() -> None:
    log = _log()
    try:
        log._on_stats(json.dumps({"brokers": {"b/1": {"state": "UP", "nodeid": 1}}}))
        assert log.unavailable() is None
        log._on_stats(json.dumps({"brokers": {"b/1": {"state": "CONNECT", "nodeid": 1}}}))
        assert "Kafka at 127.0.0.1:1 is unreachable" in (log.unavailable() or "")
        log._on_stats(json.dumps({"brokers": {"b/1": {"state": "UP", "nodeid": 1}}}))
        log._on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "all down"))
        assert "all down" in (log.unavailable() or "")
    finally:
        log.close(timeout_s=1)


def test_an_unreachable_broker_is_reported_within_seconds() -> None:
    log = _log()
    try:
        deadline = time.monotonic() + 10
        while log.unavailable() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "scored requests cannot be logged" in (log.unavailable() or "")
    finally:
        log.close(timeout_s=1)


def test_undelivered_records_are_counted_at_close() -> None:
    log = _log()
    record = {
        "id_requisicao": "r-1", "proponente_id": "p", "requested_at": 1_700_000_000_000,
        "model_name": "m", "model_version": "1", "probabilidade_inadimplencia": 0.2,
        "score": 800, "decisao": "MANUAL_REVIEW", "features": {"serasa_score": None},
        "latency_ms": 3.0, "proponente_conhecido": False,
    }  # fmt: skip
    log.send(record)
    assert log.sent == 1
    log.close(timeout_s=1)
    assert log.delivered == 0 and log.failed == 1


def test_the_first_record_is_checked_in_full_every_record_for_its_fields() -> None:
    log = _log()
    record = {
        "id_requisicao": "r-1", "proponente_id": "p", "requested_at": 1_700_000_000_000,
        "model_name": "m", "model_version": "1", "probabilidade_inadimplencia": 0.2,
        "score": 800, "decisao": "APPROVE", "features": {"serasa_score": 700.0},
        "latency_ms": 3.0, "proponente_conhecido": True,
    }  # fmt: skip
    try:
        with pytest.raises(ContractError, match=r"probabilidade_inadimplencia"):
            log.send({**record, "probabilidade_inadimplencia": "0.2"})  # a value check
        log.send(record)
        with pytest.raises(ContractError, match=r"more fields than the schema"):
            log.send({**record, "cpf_cnpj": "123"})  # fields, on every record
        with pytest.raises(ContractError, match=r"'TALVEZ' is not in list"):
            log.send({**record, "decisao": "TALVEZ"})  # an unknown symbol
        assert log.sent == 1
    finally:
        log.close(timeout_s=1)
