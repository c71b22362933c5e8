"""Feast over the real Trino/Iceberg and Redis: point-in-time correctness, materialization,
online reads. A tiny, known silver/gold dataset in the test's own schemas; its own Feast project
(registry file and Redis keys)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml.feature_store import feature_store, online_history, registry_path, run_features
from ml.training_set import build_training_set
from safra.settings import Settings
from tests.integration.lakehouse_tables import (
    GOLD_LOCATION,
    GOLD_PROPONENTE,
    GOLD_RISK,
    SILVER_APPLICATIONS,
    SILVER_OUTCOMES,
    TestLakehouse,
)

pytestmark = pytest.mark.stack

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
MS = timedelta(milliseconds=1)
T = {
    "a1": NOW - 40 * DAY,
    "a2": NOW - 20 * DAY,
    "a3": NOW - 2 * DAY,
    "b1": NOW - 20 * DAY,  # the same instant as a2, another applicant
    "c1": NOW - 30 * DAY,
    "c2": NOW - 30 * DAY + MS,  # one millisecond after c1
    "d1": NOW - 7 * 365 * DAY,  # older than the history TTL (5 years) when d2 comes
    "d2": NOW - 10 * DAY,
    "e1": NOW - 15 * DAY,  # valid, no outcome yet: not a training row
    "f1": NOW - 12 * DAY,  # invalid application: neither in gold nor in training
}
APPLICANT = {k: k[0].upper() for k in T}
AMOUNT = {"a1": 100.0, "a2": 200.0, "a3": 900.0, "b1": 5000.0, "c1": 300.0, "c2": 310.0,
          "d1": 50.0, "d2": 60.0, "e1": 70.0, "f1": 80.0}  # fmt: skip
LABEL = {"a1": False, "a2": True, "a3": False, "b1": True, "c1": False, "c2": False,
         "d1": False, "d2": True, "f1": True}  # fmt: skip
ORDER = [["a1", "a2", "a3"], ["b1"], ["c1", "c2"], ["d1", "d2"], ["e1"]]


def _gold_rows() -> list[list[Any]]:
    """The cumulative history of each valid application, up to and including it (as dbt's
    gold.proponente_features holds it); every row's amounts are distinct, so a value names its
    row."""
    rows = []
    for keys in ORDER:
        for i, key in enumerate(keys):
            seen = [AMOUNT[k] for k in keys[: i + 1]]
            row = {
                "proponente_id": APPLICANT[key],
                "id_solicitacao": key,
                "feature_timestamp": T[key],
                "n_solicitacoes": i + 1,
                "valor_medio": float(np.mean(seen)),
                "valor_max": max(seen),
                "valor_min": min(seen),
                "valor_desvio": float(np.std(seen, ddof=1)) if len(seen) > 1 else None,
                "primeira_solicitacao": T[keys[0]],
                "ultima_solicitacao": T[key],
                "dias_entre_primeira_ultima": (T[key] - T[keys[0]]).days,
                "score_medio": 600.0 + i,
                "share_ibama": 0.0,
                "area_total_hectares": 10.0 + i,
                "cultura_principal": "SOJA" if i < 2 else "CAFE",
                "anos_experiencia": 5 + i,
                "serasa_score": 600 + i,
                "perfil_frequencia": "NOVO" if i == 0 else "RECORRENTE",
                "coef_variacao": None,
                "perfil_volatilidade": "CONSISTENTE",
                "inadimplencias_anteriores": 0,
                "desfechos_conhecidos": i,
                "_loaded_at": NOW,
            }
            rows.append([row[c] for c in GOLD_PROPONENTE])
    return rows


def _application(key: str) -> dict[str, Any]:
    return {
        "id_solicitacao": key, "proponente_id": APPLICANT[key], "data_solicitacao": T[key],
        "tipo_pessoa": "FISICA", "renda_bruta_anual_declarada": 100_000.0,
        "valor_solicitado_credito": AMOUNT[key], "finalidade_credito": "CUSTEIO_SAFRA",
        "latitude": -15.0, "longitude": -47.0, "municipio": "Brasilia", "uf": "DF",
        "area_total_hectares": 10.0, "cultura_principal": "SOJA",
        "possui_experiencia_atividade": True, "anos_experiencia": 5, "serasa_score": 600,
        "ibama_autuacoes_ativas": False, "prazo_meses": 12,
        "origem_dados": "simulador-safra/baseline", "classificacao_propriedade": "MINIFUNDIO",
        "faixa_risco_credito": "MEDIO", "registro_valido": key != "f1", "_loaded_at": NOW,
    }  # fmt: skip


@pytest.fixture(scope="module")
def lake(local_stack: Settings) -> Iterator[TestLakehouse]:
    lake = TestLakehouse(local_stack, "feast")
    try:
        apps = lake.create("silver", "silver_applications", SILVER_APPLICATIONS)
        lake.insert(apps, list(SILVER_APPLICATIONS),
                    [[_application(k)[c] for c in SILVER_APPLICATIONS] for k in T])  # fmt: skip
        outcomes = lake.create("silver", "silver_outcomes", SILVER_OUTCOMES)
        lake.insert(outcomes, list(SILVER_OUTCOMES), [
            [k, APPLICANT[k], T[k], T[k] + 90 * DAY, LABEL[k], 0, NOW] for k in LABEL
        ])  # fmt: skip
        gold = lake.create("gold", "proponente_features", GOLD_PROPONENTE)
        lake.insert(gold, list(GOLD_PROPONENTE), _gold_rows())
        location = lake.create("gold", "location_features", GOLD_LOCATION)
        place = ["DF", "Brasilia", 5, 1000.0, 10.0, "SOJA", 0.2, "BAIXA", 0.1, NOW - DAY]
        lake.insert(location, list(GOLD_LOCATION), [place])
        risk = lake.create("gold", "risk_features", GOLD_RISK)
        segment = ["MEDIO", "SOJA", 8, 150.0, 600.0, 0.1, 0.1, 0.5, 0.3, NOW - DAY]
        lake.insert(risk, list(GOLD_RISK), [segment])
        yield lake
    finally:
        lake.drop()


@pytest.fixture(scope="module")
def feast_settings(local_stack: Settings, lake: TestLakehouse) -> Iterator[Settings]:
    s = local_stack.model_copy(
        update={
            "schema_prefix": lake.prefix,
            "feast_project": f"it_feast_{uuid.uuid4().hex[:8]}",
            "label_maturity_days": 0,  # the test's outcomes are all known already
        }
    )
    yield s
    try:
        feature_store(s).teardown()  # the project's Redis keys
    finally:
        shutil.rmtree(registry_path(s).parent, ignore_errors=True)


@pytest.fixture(scope="module")
def features_report(feast_settings: Settings):
    return run_features(feast_settings, end=NOW + timedelta(seconds=1))


def test_point_in_time_join_sees_only_the_history_before_each_application(
    feast_settings: Settings, lake: TestLakehouse, features_report
) -> None:
    ts = build_training_set(feature_store(feast_settings), feast_settings)
    frame = ts.frame.set_index("id_solicitacao")
    # labelled valid applications only, oldest first
    assert list(ts.frame["id_solicitacao"]) == ["d1", "a1", "c1", "c2", "a2", "b1", "d2", "a3"]
    assert frame["inadimplente"].to_dict() == {k: v for k, v in LABEL.items() if k != "f1"}
    # the application's own fields come from silver, as they were at application time
    assert frame["valor_solicitado_credito"].to_dict() == {k: AMOUNT[k] for k in frame.index}

    def history(key: str) -> dict[str, Any]:
        return frame.loc[
            key, ["hist_n_solicitacoes", "hist_valor_medio", "hist_valor_max"]
        ].to_dict()

    # no history before the first application; never the application's own row
    for first in ("a1", "b1", "c1", "d1"):
        assert frame.loc[first].filter(like="hist_").isna().all(), first
    # the second application sees exactly the first one's values
    assert history("a2") == {
        "hist_n_solicitacoes": 1,
        "hist_valor_medio": 100.0,
        "hist_valor_max": 100.0,
    }
    assert frame.loc["a2", "hist_dias_desde_ultima"] == pytest.approx(20.0)
    assert frame.loc["a2", "hist_desfechos_conhecidos"] == 0
    # the third sees the first two, not itself
    assert history("a3") == {
        "hist_n_solicitacoes": 2,
        "hist_valor_medio": 150.0,
        "hist_valor_max": 200.0,
    }
    assert frame.loc["a3", "hist_dias_desde_ultima"] == pytest.approx(18.0)
    # one millisecond later is later: c2 sees c1
    assert history("c2") == {
        "hist_n_solicitacoes": 1,
        "hist_valor_medio": 300.0,
        "hist_valor_max": 300.0,
    }
    assert frame.loc["c2", "hist_dias_desde_ultima"] == pytest.approx(1 / 86_400_000)
    # a history older than the view's TTL (5 years) is not carried: d2 is new again
    assert frame.loc["d2"].filter(like="hist_").isna().all()
    # no value from a later application reaches any row: a3's amount (900) and its aggregates
    hist_values = frame.filter(like="hist_valor").to_numpy(dtype=float).ravel()
    assert 900.0 not in hist_values and 400.0 not in hist_values and 5000.0 not in hist_values

    for table, layer in (("silver_applications", "silver"), ("silver_outcomes", "silver"),
                         ("proponente_features", "gold")):  # fmt: skip
        assert ts.lineage[f"iceberg.snapshot.{table}"] == lake.snapshot(layer, table)
    assert ts.lineage["feature_service"] == "credit_model_v1"
    assert ts.lineage["feature_service_version"] == "1"


def test_a_window_without_labels_is_a_clear_error(feast_settings: Settings) -> None:
    with pytest.raises(ValueError, match="no labelled application"):
        build_training_set(feature_store(feast_settings), feast_settings, since=NOW + DAY)


def test_materialize_then_online_history_returns_the_latest_row(
    feast_settings: Settings, features_report
) -> None:
    views = {v.name: v for v in features_report.materialized}
    assert features_report.feature_services == ["credit_model_v1"]
    # every gold row of the last 5 years (d1 is older), the latest row per applicant written
    assert (views["proponente_historico"].rows, views["proponente_historico"].keys) == (8, 5)
    assert (views["localizacao_perfil"].rows, views["segmento_risco_perfil"].rows) == (1, 1)

    store = feature_store(feast_settings)
    a, d, unknown = online_history(store, ["A", "D", "nobody"], as_of=NOW)
    assert unknown is None
    assert a is not None and d is not None
    assert a["hist_n_solicitacoes"] == 3
    assert a["hist_valor_max"] == 900.0 and a["hist_valor_medio"] == pytest.approx(400.0)
    assert a["hist_perfil_frequencia"] == "RECORRENTE"
    assert a["hist_dias_desde_ultima"] == pytest.approx(2.0, abs=1e-4)
    assert a["feature_timestamp"] == T["a3"]
    assert (a["area_total_hectares"], a["cultura_principal"], a["anos_experiencia"],
            a["serasa_score"]) == (12.0, "CAFE", 7, 602)  # fmt: skip
    assert d["hist_n_solicitacoes"] == 2 and d["hist_valor_max"] == 60.0
    assert online_history(store, []) == []

    # incremental: a second run reads nothing new
    again = run_features(feast_settings, end=NOW + timedelta(seconds=2))
    assert {v.name: v.rows for v in again.materialized} == {
        "proponente_historico": 0, "localizacao_perfil": 0, "segmento_risco_perfil": 0,
    }  # fmt: skip
    assert pd.Timestamp(again.materialized[0].start) >= pd.Timestamp(NOW)
