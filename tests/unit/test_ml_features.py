"""ml.features: the one mapping from applications (+ history) to model inputs."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ml.features import (
    ASSUMED_DEDUCTIONS_SHARE,
    CATEGORICAL,
    FEATURE_COLUMNS,
    HISTORY_CATEGORICAL,
    HISTORY_INPUTS,
    HISTORY_NUMERIC,
    KNOWN_FLAG,
    NUMERIC,
    REGION_BY_UF,
    history_columns,
    history_inputs,
    model_inputs,
    request_to_application,
)
from pipelines.simulator import applications_frame, generate_applications


@pytest.fixture(scope="module")
def applications() -> pd.DataFrame:
    apps = generate_applications(300, seed=5, start=datetime(2024, 1, 1), end=datetime(2024, 7, 1))
    return applications_frame(apps)


def test_columns_are_the_documented_ones(applications: pd.DataFrame) -> None:
    x = model_inputs(applications)
    assert list(x.columns) == list(FEATURE_COLUMNS)
    assert set(NUMERIC).isdisjoint(CATEGORICAL)
    assert all(x[c].dtype == np.float64 for c in NUMERIC)
    assert all(x[c].dtype == object for c in CATEGORICAL)
    assert x.index.equals(applications.index)


def test_deterministic_and_row_wise(applications: pd.DataFrame) -> None:
    first, second = model_inputs(applications), model_inputs(applications.copy())
    pd.testing.assert_frame_equal(first, second)
    shuffled = applications.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(model_inputs(shuffled).loc[applications.index], first)


def test_pii_and_ids_cannot_change_inputs(applications: pd.DataFrame) -> None:
    changed = applications.copy()
    changed["nome_razao_social"] = "Fulano de Tal"
    changed["cpf_cnpj"] = "00000000000"
    changed["proponente_id"] = "someone-else"
    changed["id_solicitacao"] = "x"
    changed["latitude"], changed["longitude"] = 0.0, 0.0
    changed["numero_matricula_imovel"] = "0"
    pd.testing.assert_frame_equal(model_inputs(changed), model_inputs(applications))


def test_derived_numbers() -> None:
    df = pd.DataFrame(
        {
            "renda_bruta_anual_declarada": [200_000.0, 120_000.0],
            "valor_solicitado_credito": [50_000.0, 60_000.0],
            "prazo_meses": [10, None],
            "area_total_hectares": [100.0, 0.0],
            "uf": ["mt", "BA"],
            "serasa_score": [700.0, np.nan],
            "ibama_autuacoes_ativas": [True, None],
            "possui_experiencia_atividade": [True, False],
        }
    )
    x = model_inputs(df)
    assert x["debt_to_income"].tolist() == [0.25, 0.5]
    assert x["log_valor_solicitado"].iloc[0] == pytest.approx(math.log1p(50_000.0))
    assert x["valor_por_hectare"].iloc[0] == 500.0
    assert np.isnan(x["valor_por_hectare"].iloc[1])  # no area: unknown, not infinite
    # installment 5,000 / monthly income 16,666.67
    assert x["parcela_sobre_renda_mensal"].iloc[0] == pytest.approx(0.3)
    assert np.isnan(x["parcela_sobre_renda_mensal"].iloc[1])
    assert x["uf"].tolist() == ["MT", "BA"]
    assert x["regiao"].tolist() == ["CENTRO_OESTE", "NORDESTE"]
    assert x["serasa_score_ausente"].tolist() == [0.0, 1.0]
    assert x["ibama_autuacoes_ativas"].iloc[0] == 1.0
    assert np.isnan(x["ibama_autuacoes_ativas"].iloc[1])
    assert x["possui_experiencia_atividade"].tolist() == [1.0, 0.0]


def test_all_27_ufs_have_a_region() -> None:
    assert len(REGION_BY_UF) == 27
    assert set(REGION_BY_UF.values()) == {"NORTE", "NORDESTE", "CENTRO_OESTE", "SUDESTE", "SUL"}


def test_unknown_applicant_is_flagged_with_null_history_not_zeros(
    applications: pd.DataFrame,
) -> None:
    x = model_inputs(applications.head(3))  # no history columns at all
    assert (x[KNOWN_FLAG] == 0.0).all()
    assert x[list(HISTORY_NUMERIC)].isna().all().all()
    assert x[list(HISTORY_CATEGORICAL)].isna().all().all()

    # a store answering zeros for a never-seen applicant must not become a zero vector
    zeros = applications.head(3).assign(
        hist_n_solicitacoes=0,
        hist_valor_medio=0.0,
        hist_inadimplencias_anteriores=0,
        hist_desfechos_conhecidos=0,
        hist_perfil_volatilidade="CONSISTENTE",
    )
    z = model_inputs(zeros)
    assert (z[KNOWN_FLAG] == 0.0).all()
    assert z[list(HISTORY_NUMERIC)].isna().all().all()
    assert z[list(HISTORY_CATEGORICAL)].isna().all().all()


def test_known_applicant_history_carries_through(applications: pd.DataFrame) -> None:
    row = applications.head(1).assign(
        valor_solicitado_credito=30_000.0,
        hist_n_solicitacoes=4,
        hist_valor_medio=20_000.0,
        hist_inadimplencias_anteriores=1,
        hist_desfechos_conhecidos=2,
        hist_perfil_volatilidade="ESTAVEL",
    )
    x = model_inputs(row).iloc[0]
    assert x[KNOWN_FLAG] == 1.0
    assert x["hist_n_solicitacoes"] == 4.0
    assert x["hist_taxa_inadimplencia"] == 0.5
    assert x["hist_valor_relativo"] == 1.5
    assert x["hist_perfil_volatilidade"] == "ESTAVEL"
    assert np.isnan(x["hist_valor_desvio"])  # not given: unknown


def test_missing_required_field_is_an_error() -> None:
    with pytest.raises(ValueError, match="uf"):
        model_inputs(
            pd.DataFrame({"renda_bruta_anual_declarada": [1.0], "valor_solicitado_credito": [1.0]})
        )


def test_request_mapping_documented_numbers() -> None:
    app = request_to_application(
        {
            "id_proponente": "p-1",
            "uf": "pr",
            "renda_liquida_mes": 10_000,
            "valor_solicitado": 80_000,
            "prazo": 24,
        }
    )
    assert ASSUMED_DEDUCTIONS_SHARE == 0.20
    assert app["renda_bruta_anual_declarada"] == pytest.approx(150_000.0)  # 10,000 * 12 / 0.8
    assert app["valor_solicitado_credito"] == 80_000.0
    assert app["prazo_meses"] == 24
    assert app["uf"] == "PR"
    assert app["proponente_id"] == "p-1"
    assert app["tipo_pessoa"] == "FISICA" and app["finalidade_credito"] == "CUSTEIO_SAFRA"
    assert (
        app["serasa_score"] is None and app["area_total_hectares"] is None
    )  # unknown, not made up

    x = model_inputs(pd.DataFrame([app])).iloc[0]
    assert x["debt_to_income"] == pytest.approx(80_000 / 150_000)
    assert x["regiao"] == "SUL"
    assert x["serasa_score_ausente"] == 1.0
    assert x[KNOWN_FLAG] == 0.0


def test_request_mapping_takes_the_known_profile_as_defaults() -> None:
    profile = {
        "tipo_pessoa": "JURIDICA",
        "cultura_principal": "SOJA",
        "serasa_score": 810,
        "uf": "SP",
    }
    app = request_to_application(
        {
            "id_proponente": "p",
            "uf": "MT",
            "renda_liquida_mes": 1,
            "valor_solicitado": 1,
            "prazo": 6,
        },
        profile,
    )
    assert app["tipo_pessoa"] == "JURIDICA"
    assert app["cultura_principal"] == "SOJA"
    assert app["serasa_score"] == 810
    assert app["uf"] == "MT"  # the request wins over the profile


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"uf": "XX"}, "UF"),
        ({"prazo": 0}, "> 0"),
        ({"renda_liquida_mes": -5}, "> 0"),
        ({"valor_solicitado": None}, "valor_solicitado"),
    ],
)
def test_request_mapping_rejects_bad_requests(change: dict, message: str) -> None:
    req = {
        "id_proponente": "p",
        "uf": "GO",
        "renda_liquida_mes": 5_000,
        "valor_solicitado": 10_000,
        "prazo": 12,
    }
    with pytest.raises(ValueError, match=message):
        request_to_application({**req, **change})


def test_history_columns_maps_gold_to_model_inputs() -> None:
    last = datetime(2026, 1, 1, tzinfo=UTC)
    gold = pd.DataFrame(
        {
            "proponente_historico__n_solicitacoes": [2, None],
            "proponente_historico__valor_medio": [100.0, None],
            "proponente_historico__valor_max": [150.0, None],
            "proponente_historico__valor_desvio": [70.7, None],
            "proponente_historico__score_medio": [600.0, None],
            "proponente_historico__share_ibama": [0.5, None],
            "proponente_historico__ultima_solicitacao": [last, None],
            "proponente_historico__inadimplencias_anteriores": [1, None],
            "proponente_historico__desfechos_conhecidos": [1, None],
            "proponente_historico__perfil_volatilidade": ["MODERADO", None],
            "proponente_historico__perfil_frequencia": ["RECORRENTE", None],
        },
        index=[10, 11],
    )
    as_of = pd.Series([last + timedelta(days=3, hours=12), last], index=[10, 11])
    out = history_columns(gold, as_of, prefix="proponente_historico__")
    assert list(out.columns) == list(HISTORY_INPUTS)
    assert list(out.index) == [10, 11]
    first = out.loc[10]
    assert first["hist_n_solicitacoes"] == 2
    assert first["hist_valor_max"] == 150.0
    assert first["hist_dias_desde_ultima"] == pytest.approx(3.5)
    assert first["hist_perfil_volatilidade"] == "MODERADO"
    # no history: every input null, never zeros
    assert out.loc[11].isna().all()


def test_history_inputs_on_columns_matches_the_frame_path() -> None:
    last = datetime(2026, 3, 1, 6, tzinfo=UTC)
    cols = {"n_solicitacoes": [4], "valor_medio": [10.0], "ultima_solicitacao": [last]}
    direct = history_inputs(cols, 1, as_of=datetime(2026, 3, 2, 6, tzinfo=UTC))
    framed = history_columns(pd.DataFrame(cols), as_of=datetime(2026, 3, 2, 6, tzinfo=UTC))
    assert direct["hist_dias_desde_ultima"][0] == pytest.approx(1.0)
    assert framed["hist_dias_desde_ultima"].iloc[0] == pytest.approx(1.0)
    assert direct["hist_valor_medio"] == [10.0] and direct["hist_score_medio"] == [None]
    assert np.isnan(history_inputs({}, 1)["hist_dias_desde_ultima"][0])
