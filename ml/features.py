"""The one place that turns an application (+ the applicant's history) into model inputs.

Training and serving both call :func:`model_inputs` (and, for the applicant's history read from
Feast, :func:`history_columns` / :func:`history_inputs` first); nothing else computes a feature,
so there is no training/serving skew. The model (see :mod:`ml.train`) takes exactly
:data:`FEATURE_COLUMNS`, in that order, with these types:

Application fields (flat, the DOMAIN.md names; nested records already flattened):

============================  ======  ===========================================================
column                        type    meaning
============================  ======  ===========================================================
renda_bruta_anual_declarada   float   declared gross yearly income, BRL
valor_solicitado_credito      float   amount asked, BRL
prazo_meses                   float   term in months (NaN when unknown; old v1 messages have none)
area_total_hectares           float   farm area
anos_experiencia              float   years of experience
serasa_score                  float   bureau score 0-1000, NaN when missing
possui_experiencia_atividade  float   1.0 / 0.0, NaN when unknown (a short request does not say)
ibama_autuacoes_ativas        float   1.0 / 0.0, NaN when the source did not answer
cultura_principal             str     main crop (None when unknown)
uf                            str     the farm's state
tipo_pessoa                   str     FISICA / JURIDICA
finalidade_credito            str     purpose
============================  ======  ===========================================================

Derived (from the application only):

- ``regiao``: the UF's macro-region (NORTE, NORDESTE, CENTRO_OESTE, SUDESTE, SUL);
- ``debt_to_income``: amount / gross yearly income (income floored at 1 BRL);
- ``log_valor_solicitado``, ``log_renda_bruta_anual``: natural log of 1 + the BRL figure;
- ``valor_por_hectare``: amount / area (NaN when the area is unknown or 0);
- ``parcela_sobre_renda_mensal``: amount / term / (income / 12): the monthly installment's weight
  (principal only; NaN without a term);
- ``serasa_score_ausente``: 1.0 when the bureau had no score (also visible to the model through the
  imputer's missing indicator, kept explicit so that reports and reasons can name it).

The applicant's history, as of *before* the application (gold ``proponente_features`` through
Feast's point-in-time join in training, the online store in serving; :func:`history_columns` turns
those rows into the ``hist_*`` inputs below). A new applicant has none:

- ``proponente_conhecido``: 1.0 when the applicant applied before (``hist_n_solicitacoes`` > 0),
  else 0.0; when 0.0 every ``hist_*`` column is null (NaN / None) — **never a silent zero
  vector** — even if the caller passed zeros;
- ``hist_n_solicitacoes``, ``hist_valor_medio``, ``hist_valor_max``, ``hist_valor_desvio``,
  ``hist_score_medio``, ``hist_share_ibama``, ``hist_dias_desde_ultima``,
  ``hist_inadimplencias_anteriores``, ``hist_desfechos_conhecidos`` (floats);
- ``hist_taxa_inadimplencia``: defaults / known outcomes (NaN with no known outcome);
- ``hist_valor_relativo``: this amount / the applicant's mean past amount;
- ``hist_perfil_volatilidade``, ``hist_perfil_frequencia`` (str, None when unknown).

Nothing else reaches the model: names, CPF/CNPJ, ids, coordinates and timestamps are dropped here,
so they cannot change a score.

One name per concept across the layers. The gold tables and Feast objects keep their stored names;
this is how they map (``feature_repo/`` declares the Feast side):

- **the applicant's history** (cumulative, one row per application): gold table
  ``proponente_features`` = Feast source ``proponente_features``, view ``proponente_historico``
  (:data:`ml.feature_store.HISTORY_VIEW`; entity ``proponente``, key ``proponente_id``), read
  through the feature service ``credit_model_v1`` = the model's ``hist_*`` inputs. A gold column
  keeps its name in Feast, and the input it feeds is ``hist_`` + that name
  (``valor_medio`` → ``hist_valor_medio``, :data:`HISTORY_SOURCE_COLUMNS`); the exceptions are
  computed here: ``hist_dias_desde_ultima`` (from ``ultima_solicitacao``),
  ``hist_taxa_inadimplencia`` and ``hist_valor_relativo``;
- **a location's profile** (per UF and município): gold ``location_features`` = Feast view
  ``localizacao_perfil`` (entities ``localizacao_uf``, ``localizacao_municipio``); not a model
  input;
- **a crop-risk segment's profile** (per risk band and crop): gold ``risk_features`` = Feast view
  ``segmento_risco_perfil`` (entities ``segmento_faixa_risco``, ``segmento_cultura``); not a model
  input.

The rooms with "feature" in their name: this module (the model inputs), :mod:`ml.feature_store`
(Feast's configuration, materialization and online reads), ``feature_repo/`` (Feast's
declarations), ``dbt/models/gold/*_features`` (the gold tables Feast reads).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

FEATURE_SET_VERSION = "1"
"""Bump when a column is added, removed or its meaning changes (logged as a tag on every run)."""

REGION_BY_UF: Mapping[str, str] = {
    **dict.fromkeys(("AC", "AP", "AM", "PA", "RO", "RR", "TO"), "NORTE"),
    **dict.fromkeys(("AL", "BA", "CE", "MA", "PB", "PE", "PI", "RN", "SE"), "NORDESTE"),
    **dict.fromkeys(("DF", "GO", "MT", "MS"), "CENTRO_OESTE"),
    **dict.fromkeys(("ES", "MG", "RJ", "SP"), "SUDESTE"),
    **dict.fromkeys(("PR", "RS", "SC"), "SUL"),
}
"""The 27 UFs and their IBGE macro-region."""

APPLICATION_NUMERIC: tuple[str, ...] = (
    "renda_bruta_anual_declarada",
    "valor_solicitado_credito",
    "prazo_meses",
    "area_total_hectares",
    "anos_experiencia",
    "serasa_score",
    "possui_experiencia_atividade",
    "ibama_autuacoes_ativas",
)
APPLICATION_CATEGORICAL: tuple[str, ...] = (
    "cultura_principal",
    "uf",
    "tipo_pessoa",
    "finalidade_credito",
)
APPLICATION_FIELDS: tuple[str, ...] = APPLICATION_NUMERIC + APPLICATION_CATEGORICAL
"""The application fields :func:`model_inputs` reads (``prazo_meses`` may be absent)."""

DERIVED_NUMERIC: tuple[str, ...] = (
    "debt_to_income",
    "log_valor_solicitado",
    "log_renda_bruta_anual",
    "valor_por_hectare",
    "parcela_sobre_renda_mensal",
    "serasa_score_ausente",
)
DERIVED_CATEGORICAL: tuple[str, ...] = ("regiao",)

HISTORY_NUMERIC_INPUTS: tuple[str, ...] = (
    "hist_n_solicitacoes",
    "hist_valor_medio",
    "hist_valor_max",
    "hist_valor_desvio",
    "hist_score_medio",
    "hist_share_ibama",
    "hist_dias_desde_ultima",
    "hist_inadimplencias_anteriores",
    "hist_desfechos_conhecidos",
)
HISTORY_CATEGORICAL: tuple[str, ...] = ("hist_perfil_volatilidade", "hist_perfil_frequencia")
HISTORY_INPUTS: tuple[str, ...] = HISTORY_NUMERIC_INPUTS + HISTORY_CATEGORICAL
"""History columns the caller may pass (all optional; missing means unknown)."""
HISTORY_DERIVED: tuple[str, ...] = ("hist_taxa_inadimplencia", "hist_valor_relativo")
LAST_APPLICATION = "ultima_solicitacao"
"""The gold history column of the applicant's latest application (before the one scored)."""
DAYS_SINCE_LAST = "hist_dias_desde_ultima"
HISTORY_SOURCE_COLUMNS: Mapping[str, str] = {
    hist: hist.removeprefix("hist_") for hist in HISTORY_INPUTS if hist != DAYS_SINCE_LAST
}
"""``hist_*`` input ← the gold (and Feast) history column it is read from, for every history
input but :data:`DAYS_SINCE_LAST` (days from :data:`LAST_APPLICATION` to the moment asked
about)."""
HISTORY_NUMERIC: tuple[str, ...] = HISTORY_NUMERIC_INPUTS + HISTORY_DERIVED

KNOWN_FLAG = "proponente_conhecido"

NUMERIC: tuple[str, ...] = APPLICATION_NUMERIC + DERIVED_NUMERIC + (KNOWN_FLAG,) + HISTORY_NUMERIC
"""Numeric model inputs (float64; NaN = unknown, imputed inside the model with an indicator)."""
CATEGORICAL: tuple[str, ...] = APPLICATION_CATEGORICAL + DERIVED_CATEGORICAL + HISTORY_CATEGORICAL
"""Categorical model inputs (str or None; one-hot inside the model, unknown levels ignored)."""
FEATURE_COLUMNS: tuple[str, ...] = NUMERIC + CATEGORICAL
"""Every model input, in the model's order."""

REQUIRED_FIELDS: tuple[str, ...] = ("renda_bruta_anual_declarada", "valor_solicitado_credito", "uf")
"""Without these an application cannot be scored at all."""

ASSUMED_DEDUCTIONS_SHARE = 0.20
"""Share of gross income assumed withheld (income tax, INSS/Funrural) between the gross yearly
income the application declares and the monthly net income the short request carries:
``renda_bruta_anual_declarada = renda_liquida_mes * 12 / (1 - ASSUMED_DEDUCTIONS_SHARE)``."""

REQUEST_DEFAULTS: Mapping[str, Any] = {
    "tipo_pessoa": "FISICA",
    "finalidade_credito": "CUSTEIO_SAFRA",
    "area_total_hectares": None,
    "cultura_principal": None,
    "possui_experiencia_atividade": None,
    "anos_experiencia": None,
    "serasa_score": None,
    "ibama_autuacoes_ativas": None,
}
"""What a short request does not say, for an applicant with no known profile: the most common
type and purpose; everything else unknown (None, imputed inside the model), never invented."""


def _numeric(df: pd.DataFrame, column: str) -> np.ndarray:
    """``column`` as float64 (every missing or unparsable value NaN); all NaN when absent."""
    if column not in df.columns:
        return np.full(len(df), np.nan)
    values = df[column]
    if values.dtype.kind in "fiub":  # numbers and bools (nullable ones too): no parsing
        return values.to_numpy(dtype="float64", na_value=np.nan)
    if values.dtype == object:
        values = values.map(lambda v: np.nan if v is None or v is pd.NA else v)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _categorical(df: pd.DataFrame, column: str) -> list[str | None]:
    """``column`` as str, every missing value (None, NaN, NA) as None; all None when absent."""
    if column not in df.columns:
        return [None] * len(df)
    return [None if v is None or v is pd.NA or v != v else str(v) for v in df[column]]


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``; NaN where ``den`` is not positive (or unknown) and where it overflows."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = num / np.where(den > 0, den, np.nan)
    out[np.isinf(out)] = np.nan
    return out


def model_inputs(df: pd.DataFrame) -> pd.DataFrame:
    """The model inputs (:data:`FEATURE_COLUMNS`, documented above) of each row of ``df``.

    ``df`` holds flat applications (the DOMAIN.md fields) and, optionally, the applicant's history
    columns (:data:`HISTORY_INPUTS`). Pure and deterministic; the index is kept. ValueError when a
    field of :data:`REQUIRED_FIELDS` is absent.
    """
    missing = [c for c in REQUIRED_FIELDS if c not in df.columns]
    if missing:
        raise ValueError(f"model_inputs needs columns {missing}; got {sorted(df.columns)}")
    # Computed on numpy arrays and framed once: pandas' fixed cost per Series operation would
    # otherwise dominate the one-row frames of serving (~20 ms instead of ~2 ms).
    out = _derive(lambda c: _numeric(df, c), lambda c: _categorical(df, c))
    return pd.DataFrame({c: out[c] for c in FEATURE_COLUMNS}, index=df.index)


def model_input_columns(applications: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """:func:`model_inputs` of ``applications`` (flat application dicts + history) without
    pandas: ``column -> array`` (float64 numerics, object categoricals) for every
    :data:`FEATURE_COLUMNS` column — the API's hot path, where a one-row DataFrame costs more
    than the model. Same values, same missing handling (a value absent, None, NaN or not a
    number is NaN / None). ValueError when no application holds a field of
    :data:`REQUIRED_FIELDS` (as :func:`model_inputs` when the column is absent)."""
    present = set().union(*(a.keys() for a in applications)) if applications else set()
    missing = [c for c in REQUIRED_FIELDS if c not in present]
    if missing:
        raise ValueError(f"model_input_columns needs fields {missing}; got {sorted(present)}")

    def numeric(column: str) -> np.ndarray:
        return np.array([_number(a.get(column)) for a in applications], dtype="float64")

    def categorical(column: str) -> list[str | None]:
        return [_category(a.get(column)) for a in applications]

    return _derive(numeric, categorical)


def _number(value: Any) -> float:
    """One value as :func:`_numeric` reads it: numbers and bools as floats, numeric strings
    parsed, anything else (None, NA, text) NaN."""
    if value is None or value is pd.NA:
        return np.nan
    if isinstance(value, bool | int | float | np.number):
        return float(value)
    parsed = pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").iloc[0]
    return float(parsed) if parsed is not None and parsed is not pd.NA else np.nan


def _category(value: Any) -> str | None:
    return None if value is None or value is pd.NA or value != value else str(value)


def _derive(
    numeric: Callable[[str], np.ndarray], categorical: Callable[[str], list[str | None]]
) -> dict[str, Any]:
    """Every model input from the raw columns ``numeric(name)`` / ``categorical(name)`` give:
    the one computation behind :func:`model_inputs` and :func:`model_input_columns`."""
    out: dict[str, Any] = {column: numeric(column) for column in APPLICATION_NUMERIC}

    income = out["renda_bruta_anual_declarada"]
    amount = out["valor_solicitado_credito"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["debt_to_income"] = amount / np.clip(income, 1.0, None)
        out["log_valor_solicitado"] = np.log1p(np.clip(amount, 0.0, None))
        out["log_renda_bruta_anual"] = np.log1p(np.clip(income, 0.0, None))
    out["valor_por_hectare"] = _safe_ratio(amount, out["area_total_hectares"])
    installment = _safe_ratio(amount, out["prazo_meses"])
    out["parcela_sobre_renda_mensal"] = _safe_ratio(installment, income / 12.0)
    out["serasa_score_ausente"] = np.isnan(out["serasa_score"]).astype("float64")

    n_before = numeric("hist_n_solicitacoes")
    known = ~np.isnan(n_before) & (n_before > 0)
    out[KNOWN_FLAG] = known.astype("float64")
    history = {c: numeric(c) for c in HISTORY_NUMERIC_INPUTS}
    history["hist_taxa_inadimplencia"] = _safe_ratio(
        history["hist_inadimplencias_anteriores"], history["hist_desfechos_conhecidos"]
    )
    history["hist_valor_relativo"] = _safe_ratio(amount, history["hist_valor_medio"])
    for column in HISTORY_NUMERIC:
        out[column] = np.where(known, history[column], np.nan)

    for column in APPLICATION_CATEGORICAL:
        out[column] = categorical(column)
    out["uf"] = [v if v is None else v.strip().upper() for v in out["uf"]]
    out["regiao"] = [REGION_BY_UF.get(v) if v is not None else None for v in out["uf"]]
    for column in HISTORY_CATEGORICAL:
        out[column] = [v if k else None for v, k in zip(categorical(column), known, strict=True)]
    for column in CATEGORICAL:
        out[column] = np.array(out[column], dtype=object)
    return {c: out[c] for c in FEATURE_COLUMNS}


def history_columns(
    gold: pd.DataFrame, as_of: pd.Series | datetime | None = None, prefix: str = ""
) -> pd.DataFrame:
    """The model's history inputs (:data:`HISTORY_INPUTS`) of gold history rows.

    ``gold`` holds ``proponente_historico`` columns (``prefix`` + name, e.g. the
    ``proponente_historico__`` of a join with full feature names); a row with no history (all
    null: an unknown applicant, or no application before) stays all null — never zeros.
    ``as_of`` is the moment of the application (a Series aligned with ``gold``, or one datetime;
    default now): ``hist_dias_desde_ultima`` = days from ``ultima_solicitacao`` to it.
    """
    moment = as_of.to_numpy() if isinstance(as_of, pd.Series) else as_of
    columns = history_inputs(gold, len(gold), moment, prefix)
    return pd.DataFrame(columns, index=gold.index)


def history_inputs(
    gold: Mapping[str, Any], n: int, as_of: Any = None, prefix: str = ""
) -> dict[str, Any]:
    """:func:`history_columns` on columns (``name -> sequence of n values``): the mapping itself,
    without a DataFrame (the online path calls it on Feast's response dict: one row, no pandas
    overhead). Returns ``hist_* -> sequence``, in :data:`HISTORY_INPUTS` order."""
    nothing = [None] * n
    out: dict[str, Any] = {}
    for hist in HISTORY_INPUTS:
        if hist == DAYS_SINCE_LAST:
            last = _epoch_seconds(gold.get(prefix + LAST_APPLICATION, nothing), n)
            now = _epoch_seconds(datetime.now(UTC) if as_of is None else as_of, n)
            out[hist] = (now - last) / 86_400.0
        else:
            out[hist] = gold.get(prefix + HISTORY_SOURCE_COLUMNS[hist], nothing)
    return out


def _epoch_seconds(values: Any, n: int) -> np.ndarray:
    """Seconds since the epoch (float, NaN for missing) of one datetime or a sequence of n;
    naive datetimes are taken as UTC."""
    if values is None or isinstance(values, datetime | np.datetime64 | str):
        values = [values] * n
    if isinstance(values, list) and all(v is None or type(v) is datetime for v in values):
        # the online path: a few datetime objects, no pandas round trip
        return np.array(
            [np.nan if v is None else (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
             for v in values],
            dtype="float64",
        )  # fmt: skip
    stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce")
    seconds = stamps.to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9
    return np.where(stamps.isna().to_numpy(), np.nan, seconds)


def request_to_application(
    req: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The application fields of a short scoring request — the one documented mapping.

    ``req`` is ``{"id_proponente", "uf", "renda_liquida_mes", "valor_solicitado", "prazo"}``:

    - ``id_proponente`` → ``proponente_id``;
    - ``uf`` → ``uf`` (upper-cased; must be one of the 27 UFs);
    - ``renda_liquida_mes`` (monthly net income, BRL) → ``renda_bruta_anual_declarada`` =
      ``renda_liquida_mes * 12 / (1 - ASSUMED_DEDUCTIONS_SHARE)`` (10,000/month → 150,000/year);
    - ``valor_solicitado`` → ``valor_solicitado_credito``;
    - ``prazo`` (months) → ``prazo_meses``.

    Every other field comes from ``defaults`` — in serving, the applicant's latest known profile
    (area, crop, experience, score...) from the online store — and, for what that does not hold,
    from :data:`REQUEST_DEFAULTS` (unknowns stay None). ValueError on a missing or invalid field.
    """
    for key in ("id_proponente", "uf", "renda_liquida_mes", "valor_solicitado", "prazo"):
        if req.get(key) is None:
            raise ValueError(f"scoring request lacks {key!r}")
    uf = str(req["uf"]).strip().upper()
    if uf not in REGION_BY_UF:
        raise ValueError(f"unknown UF {req['uf']!r}")
    net_month = float(req["renda_liquida_mes"])
    amount = float(req["valor_solicitado"])
    term = int(req["prazo"])
    if net_month <= 0 or amount <= 0 or term <= 0:
        raise ValueError(
            "renda_liquida_mes, valor_solicitado and prazo must be > 0, got "
            f"{net_month}, {amount}, {term}"
        )
    application: dict[str, Any] = dict(REQUEST_DEFAULTS)
    if defaults:
        application.update({k: v for k, v in defaults.items() if v is not None})
    application.update(
        {
            "proponente_id": str(req["id_proponente"]),
            "uf": uf,
            "renda_bruta_anual_declarada": net_month * 12.0 / (1.0 - ASSUMED_DEDUCTIONS_SHARE),
            "valor_solicitado_credito": amount,
            "prazo_meses": term,
        }
    )
    return application
