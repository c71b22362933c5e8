"""The hidden default-probability model: the simulator's ground truth.

It decides, from what an application shows, how likely its credit is to default; outcomes are
sampled from it. Training code must never import it: it exists so that the best achievable AUC
is known and a trained model can be held against it.

It is a logistic model of sensible direction: more debt per income, a lower bureau score (a
missing one is a little worse than average), open environmental fines, no experience, a riskier
crop, region or purpose, a smaller farm, a longer term → more defaults. A scenario may add
regional shocks and undo a bureau recalibration (see :mod:`pipelines.simulator.scenarios`).

The input is one row per application, with the application's flat columns (nested records
flattened: ``uf`` and ``serasa_score`` rather than ``localizacao_propriedade.uf``); see
:data:`REQUIRED_COLUMNS`. ``prazo_meses`` is optional (12 when absent).

:func:`best_achievable_auc_by_origin` is the ceiling a trained model is held against: the edges
(``safra train``, the demo) hand it to :func:`ml.train.run_train`, which never imports this module.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipelines.simulator.geography import UFS
from pipelines.simulator.scenarios import RegionalShock, get_scenario

logger = logging.getLogger(__name__)

LABEL = "inadimplente"
"""The sampled outcome: whether the credit defaulted."""
ORIGIN = "origem_dados"
"""Where a row came from: ``simulador-safra/<scenario>`` for the simulator's rows
(:data:`pipelines.simulator.generator.DATA_ORIGIN`)."""

REQUIRED_COLUMNS: tuple[str, ...] = (
    "tipo_pessoa",
    "renda_bruta_anual_declarada",
    "valor_solicitado_credito",
    "finalidade_credito",
    "uf",
    "area_total_hectares",
    "cultura_principal",
    "possui_experiencia_atividade",
    "anos_experiencia",
    "serasa_score",
    "ibama_autuacoes_ativas",
)

INTERCEPT = -2.75
DEBT_TO_INCOME_REFERENCE = 0.4
DEBT_TO_INCOME_LOG_WEIGHT = 1.15
SCORE_REFERENCE = 650.0
SCORE_WEIGHT_PER_POINT = -0.008
MISSING_SCORE_EQUIVALENT = 600.0
MISSING_SCORE_PENALTY = 0.25
IBAMA_FINE_WEIGHT = 1.1
IBAMA_UNKNOWN_WEIGHT = 0.3
NO_EXPERIENCE_WEIGHT = 0.75
EXPERIENCE_YEAR_WEIGHT = -0.03
EXPERIENCE_YEARS_CAP = 20
AREA_LOG_WEIGHT = -0.12
AREA_REFERENCE_HECTARES = 100.0
JURIDICA_WEIGHT = -0.2
TERM_WEIGHT_PER_MONTH = 0.012
DEFAULT_TERM_MONTHS = 12

CROP_RISK: dict[str, float] = {
    "SOJA": 0.0,
    "MILHO": 0.1,
    "CAFE": 0.2,
    "CANA_DE_ACUCAR": -0.15,
    "ALGODAO": 0.25,
    "FRUTICULTURA": 0.35,
    "TRIGO": 0.35,
    "ARROZ": 0.15,
    "FEIJAO": 0.4,
    "EUCALIPTO": -0.25,
}
REGION_RISK: dict[str, float] = {
    "NORTE": 0.3,
    "NORDESTE": 0.4,
    "CENTRO_OESTE": 0.0,
    "SUDESTE": -0.15,
    "SUL": 0.05,
}
PURPOSE_RISK: dict[str, float] = {
    "CUSTEIO_SAFRA": 0.0,
    "INVESTIMENTO_MAQUINARIO": 0.1,
    "AMPLIACAO_AREA": 0.3,
    "OUTROS": 0.35,
}
_UF_RISK: dict[str, float] = {sigla: REGION_RISK[uf.regiao] for sigla, uf in UFS.items()}


def _missing_columns(df: pd.DataFrame) -> list[str]:
    return [column for column in REQUIRED_COLUMNS if column not in df.columns]


def _hit(df: pd.DataFrame, shock: RegionalShock) -> np.ndarray:
    """The rows of ``df`` the shock affects."""
    return (
        df["uf"].astype(str).isin(shock.ufs)
        & df["cultura_principal"].astype(str).isin(shock.crops)
        & df["tipo_pessoa"].astype(str).isin(shock.person_types)
    ).to_numpy()


def default_logit(df: pd.DataFrame, scenario: str | None = None) -> np.ndarray:
    """The true log-odds of default of each application (row) of ``df`` under ``scenario``."""
    missing = _missing_columns(df)
    if missing:
        raise ValueError(f"hidden model needs columns {missing}")
    sc = get_scenario(scenario)

    income = df["renda_bruta_anual_declarada"].to_numpy(dtype=float)
    for shock in sc.shocks:  # an overstated income is judged at what the applicant earns
        if shock.declared_income_factor != 1.0:
            income = np.where(_hit(df, shock), income / shock.declared_income_factor, income)
    amount = df["valor_solicitado_credito"].to_numpy(dtype=float)
    debt_to_income = np.clip(amount / np.maximum(income, 1.0), 0.01, 50.0)

    reported = pd.to_numeric(df["serasa_score"], errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    has_score = ~np.isnan(reported)
    true_score = np.clip(reported - sc.serasa_score_shift, 0.0, 1000.0)
    score = np.where(has_score, true_score, MISSING_SCORE_EQUIVALENT)

    fines = df["ibama_autuacoes_ativas"]
    fines_known = fines.notna().to_numpy()
    has_fines = np.asarray(fines.astype("boolean").fillna(False), dtype=bool)

    experienced = df["possui_experiencia_atividade"].astype(bool).to_numpy()
    years = np.minimum(df["anos_experiencia"].to_numpy(dtype=float), EXPERIENCE_YEARS_CAP)
    area = np.maximum(df["area_total_hectares"].to_numpy(dtype=float), 0.1)
    term = (
        df["prazo_meses"].fillna(DEFAULT_TERM_MONTHS).to_numpy(dtype=float)
        if "prazo_meses" in df.columns
        else np.full(len(df), float(DEFAULT_TERM_MONTHS))
    )
    crop = df["cultura_principal"].astype(str)
    uf = df["uf"].astype(str)

    logit = (
        INTERCEPT
        + DEBT_TO_INCOME_LOG_WEIGHT * np.log(debt_to_income / DEBT_TO_INCOME_REFERENCE)
        + SCORE_WEIGHT_PER_POINT * (score - SCORE_REFERENCE)
        + np.where(has_score, 0.0, MISSING_SCORE_PENALTY)
        + np.where(has_fines, IBAMA_FINE_WEIGHT, 0.0)
        + np.where(fines_known, 0.0, IBAMA_UNKNOWN_WEIGHT)
        + np.where(experienced, 0.0, NO_EXPERIENCE_WEIGHT)
        + EXPERIENCE_YEAR_WEIGHT * np.where(experienced, years, 0.0)
        + AREA_LOG_WEIGHT * np.log(area / AREA_REFERENCE_HECTARES)
        + np.where(df["tipo_pessoa"].astype(str).to_numpy() == "JURIDICA", JURIDICA_WEIGHT, 0.0)
        + TERM_WEIGHT_PER_MONTH * (term - DEFAULT_TERM_MONTHS)
        + crop.map(CROP_RISK).fillna(0.0).to_numpy(dtype=float)
        + uf.map(_UF_RISK).fillna(0.0).to_numpy(dtype=float)
        + df["finalidade_credito"].astype(str).map(PURPOSE_RISK).fillna(0.0).to_numpy(dtype=float)
    )
    for shock in sc.shocks:
        logit = logit + np.where(_hit(df, shock), shock.logit_shift, 0.0)
    return np.asarray(logit, dtype=float)


def default_probability(df: pd.DataFrame, scenario: str | None = None) -> np.ndarray:
    """The true probability of default of each application (row) of ``df`` under ``scenario``."""
    return 1.0 / (1.0 + np.exp(-default_logit(df, scenario)))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC by the rank (Mann-Whitney) formula, ties counted as half."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in shape")
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both classes among the labels")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1  # 1-based rank of each distinct value's first copy
    average_rank = first_rank + (counts - 1) / 2.0
    ranks = average_rank[inverse]
    return float((ranks[y].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def best_achievable_auc(
    df: pd.DataFrame, labels: np.ndarray | pd.Series, scenario: str | None = None
) -> float:
    """ROC-AUC of the true default probabilities against the sampled ``labels``.

    No model that sees only these applications can do better in expectation.
    """
    return roc_auc(np.asarray(labels), default_probability(df, scenario))


def scenario_of_origin(origem_dados: object) -> str:
    """The scenario an ``origem_dados`` value records (``simulador-safra/<scenario>``);
    ``baseline`` when it names none."""
    _, _, scenario = str(origem_dados).partition("/")
    return scenario or "baseline"


def best_achievable_auc_by_origin(labelled: pd.DataFrame) -> float | None:
    """:func:`best_achievable_auc` of labelled applications (``inadimplente``), each row under the
    scenario it was generated with (:data:`ORIGIN`; baseline when absent). None when the rows
    hold one class only."""
    y = labelled[LABEL].astype(bool).to_numpy()
    if y.all() or not y.any():
        return None
    scenarios = (
        labelled[ORIGIN].fillna("").map(scenario_of_origin)
        if ORIGIN in labelled.columns
        else pd.Series("baseline", index=labelled.index)
    )
    truth = np.empty(len(labelled), dtype=float)
    for scenario, rows in scenarios.groupby(scenarios).groups.items():
        where = labelled.index.get_indexer(rows)
        truth[where] = default_probability(labelled.loc[rows], str(scenario))
    return roc_auc(y, truth)
