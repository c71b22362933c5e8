"""The segments credit monitoring looks at, as data: which rows of a model-input frame belong to
which segment.

A lender's world changes in places (a drought in three states, a new crop, a bureau that
recalibrates one band of its scores), so drift and realized performance are judged per segment
as well as over the whole population. The families:

- ``uf``, ``regiao``: where the farm is;
- ``cultura_principal``: its main crop;
- ``uf_cultura``: UF × crop, the unit of Brazil's agricultural risk zoning (ZARC) and of crop
  insurance: where a regional drought or pest shows first (``MT/SOJA``);
- ``tipo_pessoa``: a person or a company;
- ``faixa_valor``: the amount asked, in bands that follow the rural-credit programmes (Pronaf up to
  ~R$250 thousand, Pronamp up to R$1.5 million, then large producers);
- ``faixa_score``: the champion's score (``round((1 - p) * 1000)``) in bands.

:func:`segment_labels` is pure: a frame in (model inputs, with ``prob_default`` for the score
band), one label column per family out (None where a row's value is missing).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PREDICTION = "prob_default"

AMOUNT_BANDS: tuple[tuple[float, str], ...] = (
    (250_000.0, "ATE_250K"),
    (1_500_000.0, "250K_A_1_5M"),
    (10_000_000.0, "1_5M_A_10M"),
    (float("inf"), "ACIMA_10M"),
)
"""Upper bound (exclusive) and label of each amount band, in reais."""
SCORE_BANDS: tuple[tuple[int, str], ...] = (
    (600, "0_599"),
    (800, "600_799"),
    (900, "800_899"),
    (950, "900_949"),
    (1001, "950_1000"),
)
"""Upper bound (exclusive) and label of each band of the 0-1000 score."""

FAMILIES: tuple[str, ...] = (
    "uf",
    "regiao",
    "cultura_principal",
    "uf_cultura",
    "tipo_pessoa",
    "faixa_valor",
    "faixa_score",
)


def _bands(values: pd.Series, bands: Sequence[tuple[float, str]]) -> list[str | None]:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bounds = np.array([b for b, _ in bands], dtype="float64")
    index = np.searchsorted(bounds, numbers, side="right")
    return [
        None if np.isnan(v) or i >= len(bands) else bands[i][1]
        for v, i in zip(numbers, index, strict=True)
    ]


def _text(values: pd.Series) -> list[str | None]:
    return [None if v is None or v != v else str(v) for v in values]


def score_of(probability: pd.Series) -> pd.Series:
    """The 0-1000 score of each probability of default (higher = safer), as the API answers."""
    return (1.0 - pd.to_numeric(probability, errors="coerce")) * 1000.0


def segment_labels(frame: pd.DataFrame, families: Sequence[str] = FAMILIES) -> pd.DataFrame:
    """One column per family of ``families`` that ``frame`` can be segmented by: each row's
    segment label (None when the value it depends on is missing). Families whose columns the
    frame lacks are left out (e.g. no UF in the API's numeric feature log)."""
    out = pd.DataFrame(index=frame.index)
    for family in families:
        if family == "uf_cultura":
            if {"uf", "cultura_principal"} <= set(frame.columns):
                out[family] = [
                    None if u is None or c is None else f"{u}/{c}"
                    for u, c in zip(_text(frame["uf"]), _text(frame["cultura_principal"]),
                                    strict=True)
                ]  # fmt: skip
        elif family == "faixa_valor":
            if "valor_solicitado_credito" in frame.columns:
                out[family] = _bands(frame["valor_solicitado_credito"], AMOUNT_BANDS)
        elif family == "faixa_score":
            if PREDICTION in frame.columns:
                out[family] = _bands(score_of(frame[PREDICTION]).round(), SCORE_BANDS)
        elif family in FAMILIES:
            if family in frame.columns:
                out[family] = _text(frame[family])
        else:
            raise ValueError(f"unknown segment family {family!r}; known: {', '.join(FAMILIES)}")
    return out
