"""The API's limits and degraded modes without services: the store's freshness judgement, one
failed row in a batch, 503 reasons without internals, the strict contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from serving.contract import RequestError, parse_request
from serving.model_watcher import ModelWatcher, ServingModel
from serving.online_features import OnlineHistory, StoreFreshness
from serving.scoring import Parsed, RowFailed, Scorer, ServiceUnavailable
from tests.unit.test_serving_scoring import REFERENCE, SHORT, FixedModel, Log, scorer

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def freshness(window: int = 3, stale_days: int = 30) -> StoreFreshness:
    return StoreFreshness(window, timedelta(days=stale_days), clock=lambda: NOW)


def test_the_store_looks_empty_after_a_window_of_unknown_applicants() -> None:
    store = freshness(window=3)
    assert store.observe([None, None], [None, None]) is None  # too few lookups to judge
    assert store.observe([None], [None]) == (
        "nenhum dos últimos 3 proponentes consultados está no store"
    )
    assert store.observe([{"x": 1}], [NOW - timedelta(days=1)]) is None  # one known: not empty


def test_the_store_looks_stale_when_the_newest_history_read_is_old() -> None:
    store = freshness(window=3, stale_days=30)
    assert store.observe([{"x": 1}], [NOW - timedelta(days=31)]) == (
        "o histórico mais recente lido tem 31 dias (limite: 30 dias)"
    )
    assert store.observe([{"x": 1}], [NOW - timedelta(days=2)]) is None  # the newest counts
    assert store.observe([None] * 2, [None] * 2) is None  # still within the window
    assert store.observe([None], [None]) is not None  # the fresh one left the window: empty


def test_unknown_applicant_goes_to_manual_review_when_the_store_looks_empty() -> None:
    toy = ServingModel("toy", "7", FixedModel(), reference=REFERENCE)
    watcher = ModelWatcher("toy", lambda: "7", lambda v: toy, 1.0)
    watcher.poll()
    routed = Scorer(watcher, OnlineHistory(lambda ids: [None] * len(ids), 1.0), Log(), 0.10,
                    0.30, StoreFreshness(window=1))  # fmt: skip
    answer = routed.score({**SHORT, "valor_solicitado": 10_000})  # APPROVE on the toy model
    assert answer["decisao"] == "MANUAL_REVIEW"
    assert answer["observacao"].endswith(
        "nenhum dos últimos 1 proponentes consultados está no store"
    )
    assert scorer(rows={}).score({**SHORT, "valor_solicitado": 10_000})["decisao"] == "APPROVE"


class PoisonedModel(FixedModel):
    """Raises when any row asks more than 50 times its yearly income (the poisoned row)."""

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        if (x["debt_to_income"] > 50).any():
            raise ValueError("boom")
        return super().predict_proba(x)


def test_one_failed_row_never_fails_the_others() -> None:
    model = ServingModel("toy", "7", PoisonedModel(), reference=REFERENCE)
    watcher = ModelWatcher("toy", lambda: "7", lambda v: model, 1.0)
    watcher.poll()
    log = Log()
    scoring = Scorer(watcher, OnlineHistory(lambda ids: [None] * len(ids), 1.0), log, 0.1, 0.3)
    amounts = [10_000, 10_000_000, 600_000]
    batch = [Parsed(parse_request({**SHORT, "valor_solicitado": a})) for a in amounts]
    good, failed, deny = scoring.score_parsed(batch)
    assert isinstance(failed, RowFailed) and "boom" in str(failed)
    assert isinstance(good, dict) and isinstance(deny, dict)
    assert (good["decisao"], deny["decisao"]) == ("APPROVE", "DENY")
    assert [r["decisao"] for r in log.records] == ["APPROVE", "DENY"]


def test_503_reasons_keep_internals_for_the_log() -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"model": None}, "no champion", "no champion model is loaded"),
        ({"read_error": ConnectionError("Error 111 connecting to 10.0.0.7:6379")},
         "10.0.0.7:6379", "the online feature store (Redis) is unavailable"),
        ({"log": Log(down="Kafka at 10.0.0.8:9092 is unreachable")}, "10.0.0.8:9092",
         "the scored-request log (Kafka) is unavailable"),
    ]  # fmt: skip
    for kwargs, detail, public in cases:
        with pytest.raises(ServiceUnavailable) as caught:
            scorer(**kwargs).score(SHORT)
        assert detail in str(caught.value)
        assert caught.value.public == public


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"renda_liquida_mes": "12000"}, "renda_liquida_mes"),  # a string is not a number
        ({"prazo": True}, "prazo"),  # a boolean is not an integer
        ({"prazo": 12.5}, "prazo"),
        ({"uf": " MT"}, "uf"),  # exactly one of the published spellings
        ({"uf": "Mt"}, "uf"),
        ({"id_proponente": "p 1"}, "id_proponente"),  # the published pattern: no whitespace
        ({"id_proponente": "x" * 129}, "id_proponente"),
    ],
)
def test_the_contract_is_strict_as_published(change: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request({**SHORT, **change})
    assert [e["campo"] for e in caught.value.errors] == [field]


def test_both_uf_spellings_and_integral_numbers_are_accepted() -> None:
    assert parse_request({**SHORT, "uf": "pr"}).uf == "PR"  # type: ignore[union-attr]
    assert parse_request({**SHORT, "prazo": 24.0}).prazo == 24  # type: ignore[union-attr]
    with pytest.raises(RequestError) as caught:  # with proponente_id: a whole application
        parse_request({**SHORT, "proponente_id": "p-2"})
    assert "tipo_pessoa" in {e["campo"] for e in caught.value.errors}
