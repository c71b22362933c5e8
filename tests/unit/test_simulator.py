"""The simulator: reproducible, coherent data and a hidden model of sensible direction."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.simulator import (
    SCENARIOS,
    applications_frame,
    best_achievable_auc,
    default_probability,
    generate_applications,
    generate_outcomes,
    get_scenario,
    is_valid_cnpj,
    is_valid_cpf,
    is_valid_tax_id,
    labelled_frame,
    live_applications,
)
from pipelines.simulator.geography import CROPS, FARM_JITTER_DEGREES, UFS, crop_weights
from pipelines.simulator.hidden_model import best_achievable_auc_by_origin, roc_auc

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 10, 1, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
END_MS = int(END.timestamp() * 1000)
MS_PER_DAY = 86_400_000
LARGE = 50_000
DROUGHT_UFS = {"MT", "GO", "MS"}


def labelled(n: int, seed: int, scenario: str = "baseline") -> pd.DataFrame:
    return labelled_frame(
        generate_applications(n, seed, START, END, scenario=scenario), seed, scenario
    )


@pytest.fixture(scope="module")
def small() -> list[dict[str, Any]]:
    return generate_applications(5_000, seed=1, start=START, end=END)


@pytest.fixture(scope="module")
def small_frame(small: list[dict[str, Any]]) -> pd.DataFrame:
    return applications_frame(small)


@pytest.fixture(scope="module")
def baseline() -> pd.DataFrame:
    return labelled(LARGE, seed=42)


@pytest.fixture(scope="module")
def drought() -> pd.DataFrame:
    return labelled(LARGE, seed=42, scenario="drought")


# --- reproducibility and counts ---------------------------------------------------------------


def test_same_seed_gives_identical_data_and_another_seed_different_data(
    small: list[dict[str, Any]],
) -> None:
    again = generate_applications(5_000, seed=1, start=START, end=END)
    other = generate_applications(5_000, seed=2, start=START, end=END)
    assert again == small
    assert generate_outcomes(again, seed=1) == generate_outcomes(small, seed=1)
    assert {a["id_solicitacao"] for a in other}.isdisjoint(a["id_solicitacao"] for a in small)
    assert [a["cpf_cnpj"] for a in other] != [a["cpf_cnpj"] for a in small]


def test_counts_are_exact(small_frame: pd.DataFrame) -> None:
    assert len(small_frame) == 5_000
    assert small_frame["id_solicitacao"].nunique() == 5_000
    assert small_frame["proponente_id"].nunique() == 5_000 - round(5_000 * 0.3)
    assert small_frame["cpf_cnpj"].nunique() == 5_000 - round(5_000 * 0.3)
    assert len(generate_applications(0, 1, START, END)) == 0
    alone = generate_applications(10, 1, START, END, returning_share=0.0)
    assert len({a["proponente_id"] for a in alone}) == 10


def test_timestamps_are_sorted_within_the_window_and_outcomes_come_60_to_365_days_later(
    small: list[dict[str, Any]],
) -> None:
    asked = np.array([a["data_solicitacao"] for a in small])
    assert np.all(np.diff(asked) >= 0)
    assert asked.min() >= START_MS
    assert asked.max() < END_MS
    assert asked.max() - asked.min() > 0.9 * (END_MS - START_MS)
    outcomes = generate_outcomes(small, seed=1)
    assert [o["id_solicitacao"] for o in outcomes] == [a["id_solicitacao"] for a in small]
    delay_ms = np.array([o["data_desfecho"] - o["data_solicitacao"] for o in outcomes])
    delay_days = delay_ms / MS_PER_DAY
    assert delay_days.min() >= 60
    assert delay_days.max() < 366
    for outcome in outcomes:
        if outcome["inadimplente"]:
            assert outcome["dias_atraso"] >= 90
        else:
            assert 0 <= outcome["dias_atraso"] < 90


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="after start"):
        generate_applications(10, 1, END, START)
    with pytest.raises(ValueError, match="returning_share"):
        generate_applications(10, 1, START, END, returning_share=1.0)
    with pytest.raises(ValueError, match="unknown scenario 'flood'"):
        generate_applications(10, 1, START, END, scenario="flood")
    with pytest.raises(ValueError, match="rate_per_s"):
        live_applications(0, seed=1)


# --- identity: tax ids, names, returning applicants --------------------------------------------


def test_tax_ids_are_valid_and_match_the_person_type(small_frame: pd.DataFrame) -> None:
    for tipo, tax_id in zip(small_frame["tipo_pessoa"], small_frame["cpf_cnpj"], strict=True):
        assert is_valid_tax_id(tax_id, tipo), (tipo, tax_id)
        assert len(tax_id) == (11 if tipo == "FISICA" else 14)
    assert set(small_frame["tipo_pessoa"]) == {"FISICA", "JURIDICA"}
    companies = small_frame[small_frame["tipo_pessoa"] == "JURIDICA"]["nome_razao_social"]
    assert companies.str.contains(r"(?:Ltda|S\.A\.)").all()


@pytest.mark.parametrize(
    ("value", "cpf", "cnpj"),
    [
        ("529.982.247-25", True, False),
        ("52998224725", True, False),
        ("52998224724", False, False),  # wrong check digit
        ("111.111.111-11", False, False),  # check digits work out, but all digits equal
        ("5299822472", False, False),  # too short
        ("11.222.333/0001-81", False, True),
        ("11222333000181", False, True),
        ("11222333000182", False, False),
        ("00000000000000", False, False),
        ("", False, False),
        (None, False, False),
        ("5299822472a", False, False),
    ],
)
def test_tax_id_validators(value: Any, cpf: bool, cnpj: bool) -> None:
    assert is_valid_cpf(value) is cpf
    assert is_valid_cnpj(value) is cnpj
    assert is_valid_tax_id(value) is (cpf or cnpj)


def test_tax_id_must_match_the_stated_person_type() -> None:
    assert is_valid_tax_id("529.982.247-25", "FISICA")
    assert not is_valid_tax_id("529.982.247-25", "JURIDICA")
    assert is_valid_tax_id("11.222.333/0001-81", "JURIDICA")
    assert not is_valid_tax_id("11.222.333/0001-81", "FISICA")


def test_returning_applicants_keep_their_identity(small_frame: pd.DataFrame) -> None:
    identity = [
        "tipo_pessoa",
        "cpf_cnpj",
        "nome_razao_social",
        "uf",
        "municipio",
        "latitude",
        "longitude",
        "area_total_hectares",
        "cultura_principal",
        "numero_matricula_imovel",
        "possui_experiencia_atividade",
    ]
    per_applicant = small_frame.groupby("proponente_id")
    assert (per_applicant.size() > 1).sum() > 500
    assert (per_applicant[identity].nunique() == 1).all().all()
    ordered = small_frame.sort_values(["proponente_id", "data_solicitacao"])
    assert (ordered.groupby("proponente_id")["anos_experiencia"].diff().dropna() >= 0).all()


# --- geography ---------------------------------------------------------------------------------


def test_geography_has_the_27_ufs_with_municipios_inside_them() -> None:
    assert len(UFS) == 27
    for uf in UFS.values():
        assert uf.municipios
        for municipio in uf.municipios:
            assert uf.contains(municipio.latitude, municipio.longitude), (uf.sigla, municipio)


def test_farms_lie_in_their_uf_near_their_municipio(small_frame: pd.DataFrame) -> None:
    seats = {(uf.sigla, m.nome): m for uf in UFS.values() for m in uf.municipios}
    for row in small_frame.itertuples():
        assert UFS[row.uf].contains(row.latitude, row.longitude), row
        seat = seats[(row.uf, row.municipio)]
        assert abs(row.latitude - seat.latitude) <= FARM_JITTER_DEGREES + 1e-9
        assert abs(row.longitude - seat.longitude) <= FARM_JITTER_DEGREES + 1e-9
    assert small_frame["uf"].nunique() >= 25


def test_crops_follow_the_region(baseline: pd.DataFrame) -> None:
    share = pd.crosstab(baseline["uf"], baseline["cultura_principal"], normalize="index")
    assert share.loc["MT", "SOJA"] > 0.3
    assert share.loc["ES", "CAFE"] > 0.3
    assert share.loc["SP", "CANA_DE_ACUCAR"] > 0.25
    assert share.loc["RS", "ARROZ"] > 3 * share.loc["MT", "ARROZ"]
    nordeste = baseline[baseline["uf"].map(lambda u: UFS[u].regiao) == "NORDESTE"]
    assert nordeste["cultura_principal"].value_counts().index[0] == "FRUTICULTURA"
    for uf, crop in itertools.product(UFS, CROPS):
        if crop_weights(uf)[crop] == 0.0:
            assert not ((baseline["uf"] == uf) & (baseline["cultura_principal"] == crop)).any()


# --- distributions -----------------------------------------------------------------------------


def test_incomes_and_amounts_are_skewed_and_tied_to_area(baseline: pd.DataFrame) -> None:
    income = baseline["renda_bruta_anual_declarada"]
    amount = baseline["valor_solicitado_credito"]
    assert income.mean() > 1.5 * income.median()
    assert amount.mean() > 1.5 * amount.median()
    assert (amount > 0).all()
    assert (baseline["area_total_hectares"] > 0).all()
    log_area = np.log(baseline["area_total_hectares"])
    assert np.corrcoef(log_area, np.log(income))[0, 1] > 0.6
    assert np.corrcoef(np.log(income), np.log(amount))[0, 1] > 0.6


def test_a_few_scores_are_missing_and_fines_are_rare(baseline: pd.DataFrame) -> None:
    assert 0.04 < baseline["serasa_score"].isna().mean() < 0.06
    scores = baseline["serasa_score"].dropna()
    assert scores.between(0, 1000).all()
    fines = baseline["ibama_autuacoes_ativas"]
    assert 0.02 < (fines == True).mean() < 0.04  # noqa: E712 (None, True or False)
    assert fines.isna().mean() < 0.02


# --- hidden model ------------------------------------------------------------------------------


def default_rate_by_quintile(frame: pd.DataFrame, values: pd.Series) -> pd.Series:
    return frame.groupby(pd.qcut(values, 5, labels=False))["inadimplente"].mean()


def test_hidden_model_direction_on_a_large_sample(baseline: pd.DataFrame) -> None:
    debt_to_income = baseline["valor_solicitado_credito"] / baseline["renda_bruta_anual_declarada"]
    by_debt = default_rate_by_quintile(baseline, debt_to_income)
    assert by_debt[4] > by_debt[0] + 0.1
    by_score = default_rate_by_quintile(baseline, baseline["serasa_score"])
    assert by_score[0] > by_score[4] + 0.1
    fines = baseline.groupby(baseline["ibama_autuacoes_ativas"].astype("boolean"))["inadimplente"]
    assert fines.mean()[True] > fines.mean()[False] + 0.05
    experience = baseline.groupby("possui_experiencia_atividade")["inadimplente"].mean()
    assert experience[False] > experience[True] + 0.05
    missing = baseline.groupby(baseline["serasa_score"].isna())["inadimplente"].mean()
    assert missing[True] > missing[False]


def test_hidden_model_moves_one_feature_at_a_time(small_frame: pd.DataFrame) -> None:
    row = small_frame.iloc[[0]].copy()
    row["serasa_score"] = 650.0
    row["ibama_autuacoes_ativas"] = False
    row["possui_experiencia_atividade"] = True
    row["anos_experiencia"] = 10

    def probability(**changes: Any) -> float:
        changed = row.copy()
        for column, value in changes.items():
            changed[column] = [value]
        return float(default_probability(changed)[0])

    income = float(row["renda_bruta_anual_declarada"].iloc[0])
    asked = [probability(valor_solicitado_credito=income * r) for r in (0.1, 0.3, 0.6, 1.2)]
    assert asked == sorted(asked)
    assert asked[0] < asked[-1]
    scored = [probability(serasa_score=s) for s in (900.0, 700.0, 500.0, 300.0)]
    assert scored == sorted(scored)
    assert probability(serasa_score=np.nan) > probability(serasa_score=650.0)
    assert probability(ibama_autuacoes_ativas=True) > probability()
    assert probability(possui_experiencia_atividade=False, anos_experiencia=0) > probability()
    assert probability(uf="CE", cultura_principal="FEIJAO") > probability(
        uf="SP", cultura_principal="CANA_DE_ACUCAR"
    )


def test_base_rate_and_best_achievable_auc_are_learnable(baseline: pd.DataFrame) -> None:
    assert 0.08 < baseline["inadimplente"].mean() < 0.15
    auc = best_achievable_auc(baseline, baseline["inadimplente"])
    assert 0.70 < auc < 0.95
    assert 0.80 < auc < 0.88


def test_the_ceiling_by_origin_takes_each_row_under_its_own_scenario() -> None:
    base = labelled(3_000, seed=3)
    recalibrated = labelled(3_000, seed=4, scenario="bureau_recalibration")
    mixed = pd.concat([base, recalibrated], ignore_index=True)
    truth = np.concatenate(
        [default_probability(base), default_probability(recalibrated, "bureau_recalibration")]
    )
    expected = roc_auc(mixed["inadimplente"].to_numpy(), truth)
    assert best_achievable_auc_by_origin(mixed) == pytest.approx(expected)
    # taking every row as baseline would understate it
    assert best_achievable_auc(mixed, mixed["inadimplente"]) < expected - 0.005
    # no origin: baseline; one class: no ceiling
    assert best_achievable_auc_by_origin(base.drop(columns="origem_dados")) == pytest.approx(
        best_achievable_auc(base, base["inadimplente"])
    )
    assert best_achievable_auc_by_origin(base[~base["inadimplente"].astype(bool)]) is None


def test_roc_auc_rank_formula() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9])) == 0.875
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.array([1, 1]), np.array([0.1, 0.2]))


def test_hidden_model_needs_its_columns(small_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="serasa_score"):
        default_probability(small_frame.drop(columns=["serasa_score"]))


# --- scenarios ---------------------------------------------------------------------------------


def test_scenarios_are_named_data() -> None:
    assert {"baseline", "drought", "bureau_recalibration"} <= set(SCENARIOS)
    assert get_scenario(None) is SCENARIOS["baseline"]
    assert all(get_scenario(name).name == name for name in SCENARIOS)


def test_drought_raises_defaults_only_for_soy_in_the_center_west(
    baseline: pd.DataFrame, drought: pd.DataFrame
) -> None:
    hit = baseline["uf"].isin(DROUGHT_UFS) & (baseline["cultura_principal"] == "SOJA")
    assert hit.sum() > 2_000
    assert drought["inadimplente"][hit].mean() > baseline["inadimplente"][hit].mean() + 0.05
    assert (
        drought["renda_bruta_anual_declarada"][hit].median()
        < baseline["renda_bruta_anual_declarada"][hit].median()
    )
    elsewhere_before = baseline["inadimplente"][~hit].mean()
    elsewhere_after = drought["inadimplente"][~hit].mean()
    assert abs(elsewhere_after - elsewhere_before) < 0.005
    pd.testing.assert_frame_equal(
        baseline.loc[~hit].drop(columns=["origem_dados"]),
        drought.loc[~hit].drop(columns=["origem_dados"]),
    )


def test_bureau_recalibration_shifts_scores_not_risk(baseline: pd.DataFrame) -> None:
    recalibrated = labelled(LARGE, seed=42, scenario="bureau_recalibration")
    shift = baseline["serasa_score"].mean() - recalibrated["serasa_score"].mean()
    assert 100 < shift <= 120
    assert 0.13 < recalibrated["serasa_score"].isna().mean() < 0.17
    assert abs(recalibrated["inadimplente"].mean() - baseline["inadimplente"].mean()) < 0.015
    # A model that still believes the old scale over-estimates the risk.
    believed = default_probability(recalibrated, "baseline").mean()
    true = default_probability(recalibrated, "bureau_recalibration").mean()
    assert believed > true + 0.03


# --- live mode ---------------------------------------------------------------------------------


def test_live_mode_streams_paced_timestamps_and_meets_known_applicants(
    small: list[dict[str, Any]],
) -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC)

    def stream() -> list[dict[str, Any]]:
        live = live_applications(4.0, seed=9, known_applications=small, start=start)
        return list(itertools.islice(live, 1_000))

    first, again = stream(), stream()
    assert first == again
    asked = np.array([a["data_solicitacao"] for a in first])
    assert asked[0] == int(start.timestamp() * 1000)
    assert set(np.diff(asked)) == {250}
    assert len({a["id_solicitacao"] for a in first}) == 1_000
    known = {a["proponente_id"] for a in small}
    identities = {a["proponente_id"]: (a["cpf_cnpj"], a["nome_razao_social"]) for a in small}
    returning = [a for a in first if a["proponente_id"] in known]
    assert 150 < len(returning) < 450
    for application in returning:
        assert (application["cpf_cnpj"], application["nome_razao_social"]) == identities[
            application["proponente_id"]
        ]
    assert all(is_valid_tax_id(a["cpf_cnpj"], a["tipo_pessoa"]) for a in first)
