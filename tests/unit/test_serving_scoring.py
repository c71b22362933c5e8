"""Scoring without services: validation (422 reasons), decisions, reasons, unknown applicants,
the scored-request record, and 503s when a dependency is missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from ml.features import ASSUMED_DEDUCTIONS_SHARE, NUMERIC, model_inputs
from ml.train import build_pipeline
from pipelines.simulator import applications_frame, generate_applications, generate_outcomes
from safra import contracts
from serving.contract import RequestError, application_fields, credit_score, parse_request
from serving.model_watcher import ModelWatcher, ServingModel
from serving.online_features import FeaturesUnavailable, OnlineHistory
from serving.reasons import DRIVERS, main_reasons, occlusion_batch, reference_values
from serving.scoring import Scorer, ServiceUnavailable, split_online_row

SHORT = {
    "id_proponente": "p-1",
    "uf": "mt",
    "renda_liquida_mes": 10_000,
    "valor_solicitado": 50_000,
    "prazo": 12,
}


class FixedModel:
    """predict_proba: p = clip(debt_to_income / 10, 0, 1) — a known, monotone toy model."""

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        p = np.clip(x["debt_to_income"].to_numpy(dtype=float) / 10.0, 0.0, 1.0)
        return np.column_stack([1 - p, p])


class Log:
    def __init__(self, down: str | None = None) -> None:
        self.records: list[dict[str, Any]] = []
        self.down = down

    def unavailable(self) -> str | None:
        return self.down

    def send(self, record: dict[str, Any]) -> None:
        contracts.encode(record, "scored_request")  # must honour the Avro contract
        self.records.append(record)


REFERENCE = {"debt_to_income": 1.0, "serasa_score": 650.0, "serasa_score_ausente": 0.0}
TOY = ServingModel("toy", "7", FixedModel(), reference=REFERENCE)


def scorer(
    rows: dict[str, dict | None] | None = None,
    model: ServingModel | None = TOY,
    log: Log | None = None,
    read_error: Exception | None = None,
) -> Scorer:
    def read(ids):
        if read_error is not None:
            raise read_error
        return [(rows or {}).get(i) for i in ids]

    watcher = ModelWatcher("toy", lambda: "7" if model else None, lambda v: model, 1.0)
    watcher.poll()
    return Scorer(watcher, OnlineHistory(read, 1.0), log if log is not None else Log(), 0.10, 0.30)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"renda_liquida_mes": -1}, "renda_liquida_mes", "greater than 0"),
        ({"valor_solicitado": "muito"}, "valor_solicitado", "valid number"),
        ({"prazo": 0}, "prazo", "greater than 0"),
        ({"uf": "XX"}, "uf", "unknown UF 'XX'"),
        ({"id_proponente": ""}, "id_proponente", "at least 1 character"),
        ({"extra": 1}, "extra", "Extra inputs are not permitted"),
        ({"prazo": None}, "prazo", "valid integer"),
    ],
)
def test_invalid_short_requests_name_the_field_and_reason(change, field, reason) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request({**SHORT, **change})
    assert [e["campo"] for e in caught.value.errors] == [field]
    assert reason in caught.value.errors[0]["motivo"]


@pytest.mark.parametrize(
    ("tax_id", "kind"),
    [
        ("52998224725", "CPF"),
        ("529.982.247-25", "CPF"),
        (" 529.982.247-25 ", "CPF"),
        ("11222333000181", "CNPJ"),
        ("11.222.333/0001-81", "CNPJ"),
    ],
)
def test_a_tax_id_as_the_applicant_id_is_refused_naming_the_field(tax_id, kind) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request({**SHORT, "id_proponente": tax_id})
    ((error,),) = [caught.value.errors]
    assert error["campo"] == "id_proponente"
    assert error["motivo"].startswith(f"looks like a {kind}: a tax id is personal data")
    assert "send the applicant's pseudonymous id" in error["motivo"]
    assert tax_id.strip() not in str(caught.value)  # the refusal does not echo the tax id
    app = generate_applications(1, seed=3, start=datetime(2024, 1, 1), end=datetime(2024, 2, 1))[0]
    with pytest.raises(RequestError) as caught:
        parse_request({**app, "proponente_id": tax_id})
    assert [e["campo"] for e in caught.value.errors] == ["proponente_id"]


@pytest.mark.parametrize(
    "applicant", ["52998224724", "11222333000180", "00000000000", "8d0a6f4e-uuid", "p-52998224725"]
)
def test_ids_that_are_not_valid_tax_ids_are_accepted(applicant) -> None:
    assert parse_request({**SHORT, "id_proponente": applicant}).id_proponente == applicant


def test_missing_fields_are_all_named() -> None:
    with pytest.raises(RequestError) as caught:
        parse_request({"id_proponente": "p"})
    assert sorted(e["campo"] for e in caught.value.errors) == [
        "prazo", "renda_liquida_mes", "uf", "valor_solicitado",
    ]  # fmt: skip
    assert {e["motivo"] for e in caught.value.errors} == {"Field required"}
    with pytest.raises(RequestError, match="expected a JSON object"):
        parse_request([SHORT])


def test_short_request_maps_through_the_one_documented_mapping() -> None:
    request = parse_request(SHORT)
    fields = application_fields(request, {"cultura_principal": "SOJA", "serasa_score": 700})
    assert fields["uf"] == "MT"
    assert fields["renda_bruta_anual_declarada"] == pytest.approx(
        10_000 * 12 / (1 - ASSUMED_DEDUCTIONS_SHARE)
    )
    assert fields["valor_solicitado_credito"] == 50_000.0
    assert fields["prazo_meses"] == 12
    assert fields["cultura_principal"] == "SOJA" and fields["serasa_score"] == 700
    assert fields["area_total_hectares"] is None  # unknown stays unknown


def test_whole_application_is_accepted_and_flattened() -> None:
    app = generate_applications(1, seed=3, start=datetime(2024, 1, 1), end=datetime(2024, 2, 1))[0]
    request = parse_request(app)
    fields = application_fields(request, {"cultura_principal": "IGNORED"})
    assert fields["proponente_id"] == app["proponente_id"]
    assert fields["uf"] == app["localizacao_propriedade"]["uf"]
    assert fields["cultura_principal"] == app["cultura_principal"]
    assert fields["serasa_score"] == app["fontes_dados_adicionais"]["serasa_score"]
    assert "cpf_cnpj" not in fields and "nome_razao_social" not in fields
    with pytest.raises(RequestError) as caught:
        parse_request({**app, "tipo_pessoa": "OUTRA"})
    assert caught.value.errors[0]["campo"] == "tipo_pessoa"


def test_score_is_round_one_minus_p_times_1000() -> None:
    assert [credit_score(p) for p in (0.0, 0.0734, 0.5, 1.0)] == [1000, 927, 500, 0]


# --- scoring ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "decision"),
    [(10_000, "APPROVE"), (300_000, "MANUAL_REVIEW"), (600_000, "DENY")],
)
def test_decision_follows_the_thresholds(amount, decision) -> None:
    # income 10,000/month net -> 150,000/year gross: debt_to_income = amount / 150,000
    log = Log()
    answer = scorer(log=log).score({**SHORT, "valor_solicitado": amount})
    p = min(amount / 150_000 / 10, 1.0)
    assert answer["probabilidade_inadimplencia"] == pytest.approx(p, abs=1e-6)
    assert answer["decisao"] == decision
    assert answer["score"] == round((1 - p) * 1000)
    assert (answer["model_name"], answer["model_version"]) == ("toy", "7")
    assert log.records[0]["decisao"] == decision and log.records[0]["model_version"] == "7"
    assert set(log.records[0]["features"]) == set(NUMERIC)


def test_unknown_applicant_is_flagged_and_scored_on_the_request() -> None:
    answer = scorer(rows={}).score(SHORT)
    assert answer["proponente_conhecido"] is False
    assert "sem histórico" in answer["observacao"]
    assert answer["atualizacao_features"] == {"feature_timestamp": None, "idade_segundos": None}


def test_known_applicant_uses_history_and_profile() -> None:
    stamp = datetime.now(UTC) - timedelta(days=2)
    row = {"hist_n_solicitacoes": 3.0, "hist_valor_medio": 40_000.0, "serasa_score": 810,
           "cultura_principal": "CAFE", "feature_timestamp": stamp}  # fmt: skip
    log = Log()
    answer = scorer(rows={"p-1": row}, log=log).score(SHORT)
    assert answer["proponente_conhecido"] is True
    assert "observacao" not in answer
    assert answer["atualizacao_features"]["feature_timestamp"] == stamp.isoformat()
    assert answer["atualizacao_features"]["idade_segundos"] == pytest.approx(2 * 86400, abs=5)
    features = log.records[0]["features"]
    assert features["serasa_score"] == 810.0
    assert features["hist_valor_relativo"] == pytest.approx(50_000 / 40_000)


def test_split_online_row() -> None:
    naive = datetime(2025, 1, 2, 3, 4, 5)
    profile, history, stamp = split_online_row(
        {
            "hist_n_solicitacoes": 2,
            "area_total_hectares": 120.0,
            "serasa_score": None,
            "feature_timestamp": naive,
            "other": 1,
        }  # fmt: skip
    )
    assert profile == {"area_total_hectares": 120.0}
    assert history == {"hist_n_solicitacoes": 2}
    assert stamp == naive.replace(tzinfo=UTC)
    assert split_online_row(None) == ({}, {}, None)


def test_no_champion_redis_or_kafka_down_are_503_saying_why() -> None:
    with pytest.raises(ServiceUnavailable, match="no champion"):
        scorer(model=None).score(SHORT)
    with pytest.raises(ServiceUnavailable, match=r"online feature store \(Redis\) cannot be read"):
        scorer(read_error=ConnectionError("Connection refused")).score(SHORT)
    with pytest.raises(ServiceUnavailable, match="Kafka at x is unreachable"):
        scorer(log=Log(down="Kafka at x is unreachable")).score(SHORT)


def test_online_read_timeout_is_503() -> None:
    import time

    history = OnlineHistory(lambda ids: time.sleep(0.5) or [None], timeout_s=0.05)
    began = time.perf_counter()
    with pytest.raises(FeaturesUnavailable, match="did not answer within 0.1s"):
        history.get("p")
    assert time.perf_counter() - began < 0.3


# --- reasons ----------------------------------------------------------------------------------


def test_reasons_are_the_drivers_that_move_the_probability() -> None:
    log = Log()
    deny = scorer(log=log).score({**SHORT, "valor_solicitado": 600_000})
    assert deny["decisao"] == "DENY"
    assert [m["fator"] for m in deny["motivos"]] == ["comprometimento_renda"]
    reason = deny["motivos"][0]
    assert reason["valor"] == pytest.approx(4.0)
    assert reason["referencia"] == 1.0
    assert reason["efeito"] == pytest.approx(0.4 - 0.1)
    assert reason["direcao"] == "aumenta_risco"
    approve = scorer().score({**SHORT, "valor_solicitado": 15_000})
    assert approve["decisao"] == "APPROVE"
    assert [m["direcao"] for m in approve["motivos"]] == ["reduz_risco"]
    assert approve["motivos"][0]["efeito"] == pytest.approx(0.01 - 0.1)


def small_real_pipeline() -> tuple[Any, pd.DataFrame]:
    """A small gradient-boosting pipeline fitted on simulator data, and its training inputs."""
    apps = generate_applications(
        1_500, seed=9, start=datetime(2024, 1, 1), end=datetime(2024, 7, 1)
    )
    y = np.array([o["inadimplente"] for o in generate_outcomes(apps, seed=9)], dtype=int)
    x = model_inputs(applications_frame(apps))
    pipeline = build_pipeline(HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(x, y)
    return pipeline, x


def test_reasons_with_a_real_pipeline() -> None:
    pipeline, x = small_real_pipeline()
    reference = reference_values(x)
    assert reference["uf"] in set(x["uf"]) and reference["serasa_score"] == float(
        np.median(x["serasa_score"].dropna())
    )
    row = x.iloc[[0]]
    batch, used = occlusion_batch(row, reference)
    assert len(batch) == 1 + len(used) and set(used) <= set(DRIVERS)
    prob = pipeline.predict_proba(batch)[:, 1]
    reasons = main_reasons(prob, used, row.iloc[0].to_dict(), reference, "DENY")
    assert len(reasons) <= 3
    effects = [r["efeito"] for r in reasons]
    assert effects == sorted(effects, reverse=True) and all(e > 0 for e in effects)
