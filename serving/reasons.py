"""The main reasons of a decision, from the model itself: occlusion against a reference applicant.

For each candidate driver (:data:`DRIVERS`, a few model inputs each), the scored row is copied
with that driver's inputs replaced by the reference value — the median (numerics) or the most
frequent value (categoricals) of the training sample logged with the model
(``reference/train_sample.parquet``). The original row and every occluded copy go through the
model in ONE ``predict_proba`` call; the effect of a driver is ``p(original) - p(occluded)``:
positive means the applicant's value raises the probability of default compared with a typical
applicant. A DENY or MANUAL_REVIEW reports the drivers that raise it most; an APPROVE those
that lower it most. Drivers whose value is unknown are skipped (a missing bureau score is the
exception: missing is itself informative), and so are drivers that are already at the reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.features import CATEGORICAL, FEATURE_COLUMNS, KNOWN_FLAG

MAX_REASONS = 3
MIN_EFFECT = 0.001
"""Effects smaller than this (0.1 point of probability) are not reasons."""


@dataclass(frozen=True)
class Driver:
    """A reason candidate: the model inputs occluded together and what they mean."""

    name: str
    inputs: tuple[str, ...]
    description: str
    shown: str
    """The input whose value the answer shows."""


DRIVERS: tuple[Driver, ...] = (
    Driver("comprometimento_renda", ("debt_to_income",), "valor solicitado / renda anual",
           "debt_to_income"),
    Driver("parcela_sobre_renda", ("parcela_sobre_renda_mensal",),
           "parcela mensal / renda mensal", "parcela_sobre_renda_mensal"),
    Driver("score_bureau", ("serasa_score", "serasa_score_ausente"),
           "score de crédito (Serasa); ausente quando o bureau não tem score", "serasa_score"),
    Driver("valor_solicitado", ("valor_solicitado_credito", "log_valor_solicitado"),
           "valor solicitado (BRL)", "valor_solicitado_credito"),
    Driver("renda", ("renda_bruta_anual_declarada", "log_renda_bruta_anual"),
           "renda bruta anual declarada (BRL)", "renda_bruta_anual_declarada"),
    Driver("prazo", ("prazo_meses",), "prazo em meses", "prazo_meses"),
    Driver("area", ("area_total_hectares", "valor_por_hectare"), "área total (ha)",
           "area_total_hectares"),
    Driver("experiencia", ("anos_experiencia", "possui_experiencia_atividade"),
           "anos de experiência na atividade", "anos_experiencia"),
    Driver("autuacoes_ibama", ("ibama_autuacoes_ativas",), "autuações ambientais ativas (IBAMA)",
           "ibama_autuacoes_ativas"),
    Driver("cultura", ("cultura_principal",), "cultura principal", "cultura_principal"),
    Driver("localizacao", ("uf", "regiao"), "UF da propriedade", "uf"),
    Driver("tipo_pessoa", ("tipo_pessoa",), "pessoa física ou jurídica", "tipo_pessoa"),
    Driver("finalidade", ("finalidade_credito",), "finalidade do crédito", "finalidade_credito"),
    Driver("inadimplencia_anterior",
           ("hist_inadimplencias_anteriores", "hist_taxa_inadimplencia"),
           "inadimplências anteriores do proponente", "hist_inadimplencias_anteriores"),
    Driver("valor_relativo_historico", ("hist_valor_relativo",),
           "valor solicitado / média histórica do proponente", "hist_valor_relativo"),
)  # fmt: skip
ALWAYS_OCCLUDE = frozenset({"serasa_score"})
"""Drivers occluded even when the shown value is unknown (missing is a signal there)."""


def reference_values(sample: pd.DataFrame) -> dict[str, Any]:
    """The reference applicant: per model input, the median (numerics, over known values) or the
    most frequent value (categoricals) of ``sample`` (model inputs of training rows). Inputs the
    sample lacks or holds no value for are left out (their drivers are then not occluded)."""
    out: dict[str, Any] = {}
    for column in FEATURE_COLUMNS:
        if column not in sample.columns:
            continue
        values = sample[column].dropna()
        if values.empty:
            continue
        if column in CATEGORICAL:
            out[column] = str(values.astype(str).mode().iloc[0])
        else:
            out[column] = float(np.median(values.astype(float)))
    return out


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _usable(driver: Driver, row: Mapping[str, Any], reference: Mapping[str, Any]) -> bool:
    if any(c not in reference for c in driver.inputs):
        return False
    if driver.inputs[0].startswith("hist_") and not row.get(KNOWN_FLAG):
        return False
    if _is_missing(row.get(driver.shown)) and driver.shown not in ALWAYS_OCCLUDE:
        return False
    return any(row.get(c) != reference[c] for c in driver.inputs)


def occlusion_batch(
    inputs: pd.DataFrame, reference: Mapping[str, Any], drivers: Sequence[Driver] = DRIVERS
) -> tuple[pd.DataFrame, list[Driver]]:
    """One frame: the scored row (``inputs``, one row) then one occluded copy per usable driver."""
    if len(inputs) != 1:
        raise ValueError(f"occlusion explains one row at a time, got {len(inputs)}")
    frame, (used,) = occlusion_frame(inputs, reference, drivers)
    return frame, used


def occlusion_frame(
    inputs: pd.DataFrame,
    reference: Mapping[str, Any],
    drivers: Sequence[Driver] = DRIVERS,
    rows: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[pd.DataFrame, list[list[Driver]]]:
    """The frames of :func:`occlusion_batch` of every row of ``inputs``, one after the other, for
    ONE prediction of many requests; row ``i``'s block starts at ``sum(1 + len(used[j]), j < i)``
    and holds the row, then its occluded copies in the order of ``used[i]``."""
    if rows is None:  # ``rows``: ``inputs.to_dict("records")`` when the caller already has it
        rows = inputs.to_dict("records")
    used = [[d for d in drivers if _usable(d, row, reference)] for row in rows]
    positions = [i for i, u in enumerate(used) for _ in range(1 + len(u))]
    frame = inputs.iloc[positions].reset_index(drop=True)
    occluded = _occluded_positions(used)
    for column, at in occluded.items():  # one assignment per column, not per cell
        frame.iloc[at, frame.columns.get_loc(column)] = reference[column]
    return frame, used


def _occluded_positions(used: Sequence[Sequence[Driver]]) -> dict[str, list[int]]:
    """Input column -> the positions, in the batch of rows and their copies, where it is
    replaced by the reference value (row ``i``'s block: the row, then a copy per driver)."""
    occluded: dict[str, list[int]] = {}
    start = 0
    for u in used:
        for offset, driver in enumerate(u, start=start + 1):
            for column in driver.inputs:
                occluded.setdefault(column, []).append(offset)
        start += 1 + len(u)
    return occluded


def occlusion_columns(
    columns: Mapping[str, np.ndarray],
    rows: Sequence[Mapping[str, Any]],
    reference: Mapping[str, Any],
    drivers: Sequence[Driver] = DRIVERS,
) -> tuple[dict[str, np.ndarray], list[list[Driver]]]:
    """:func:`occlusion_frame` on model-input columns (``column -> array`` of
    :func:`ml.features.model_input_columns`; ``rows``: the same inputs row by row) without
    pandas: the compiled model's hot path. Same blocks, same order, same values."""
    used = [[d for d in drivers if _usable(d, row, reference)] for row in rows]
    positions = np.array([i for i, u in enumerate(used) for _ in range(1 + len(u))], dtype=int)
    batch = {c: np.asarray(values)[positions] for c, values in columns.items()}
    occluded = _occluded_positions(used)
    for column, at in occluded.items():
        batch[column][at] = reference[column]
    return batch, used


def _plain(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), 4)
    return value


def main_reasons(
    probabilities: np.ndarray,
    used: Sequence[Driver],
    row: Mapping[str, Any],
    reference: Mapping[str, Any],
    decision: str,
    max_reasons: int = MAX_REASONS,
) -> list[dict[str, Any]]:
    """The reasons of ``decision`` from the probabilities of :func:`occlusion_batch`'s frame."""
    base = float(probabilities[0])
    effects = [(d, base - float(p)) for d, p in zip(used, probabilities[1:], strict=True)]
    if decision == "APPROVE":
        chosen = sorted((e for e in effects if e[1] <= -MIN_EFFECT), key=lambda e: e[1])
    else:
        chosen = sorted((e for e in effects if e[1] >= MIN_EFFECT), key=lambda e: -e[1])
    return [
        {
            "fator": driver.name,
            "descricao": driver.description,
            "valor": _plain(row.get(driver.shown)),
            "referencia": _plain(reference.get(driver.shown)),
            "efeito": round(effect, 4),
            "direcao": "aumenta_risco" if effect > 0 else "reduz_risco",
        }
        for driver, effect in chosen[:max_reasons]
    ]
