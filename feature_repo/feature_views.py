"""Feature views over the gold tables, with their TTLs.

Each view reads one gold table and keeps its column names (a field is the gold column of the same
name): ``proponente_historico`` ← ``proponente_features`` (the applicant's history),
``localizacao_perfil`` ← ``location_features`` (a location's profile), ``segmento_risco_perfil``
← ``risk_features`` (a crop-risk segment's profile). The model's ``hist_*`` inputs are ``hist_`` +
a history field; ``ml.features`` computes them and documents the whole mapping.

Only ``proponente_historico`` feeds the model. ``localizacao_perfil`` and
``segmento_risco_perfil`` are current-state aggregates over every application, including the
observed default rates of their outcomes: joined point-in-time they would hand a training row
figures computed from later applications and from its own label (leakage), so the model does not
use them; they stay declared for serving context and analysis.
"""

from datetime import timedelta

from data_sources import (
    location_features_source,
    proponente_features_source,
    risk_features_source,
)
from entities import (
    localizacao_municipio,
    localizacao_uf,
    proponente,
    segmento_cultura,
    segmento_faixa_risco,
)
from feast import FeatureView, Field
from feast.types import Float64, Int32, Int64, String, UnixTimestamp

HISTORY_TTL = timedelta(days=5 * 365)
"""An applicant's history counts for five years after the last application (the limit Brazil's
consumer code, CDC art. 43 §1, puts on negative credit records); older, they are new again."""
AGGREGATE_TTL = timedelta(days=365)
"""A location or segment without an application for a year has no current profile."""

proponente_historico = FeatureView(
    name="proponente_historico",
    entities=[proponente],
    ttl=HISTORY_TTL,
    source=proponente_features_source,
    schema=[
        Field(name="n_solicitacoes", dtype=Int64, description="applications so far"),
        Field(name="valor_medio", dtype=Float64, description="mean amount asked, BRL"),
        Field(name="valor_max", dtype=Float64),
        Field(name="valor_min", dtype=Float64),
        Field(name="valor_desvio", dtype=Float64, description="sample stddev (null for one)"),
        Field(name="primeira_solicitacao", dtype=UnixTimestamp),
        Field(name="ultima_solicitacao", dtype=UnixTimestamp),
        Field(name="dias_entre_primeira_ultima", dtype=Int64),
        Field(name="score_medio", dtype=Float64, description="mean bureau score"),
        Field(name="share_ibama", dtype=Float64, description="share with environmental fines"),
        Field(name="coef_variacao", dtype=Float64),
        Field(name="perfil_frequencia", dtype=String),
        Field(name="perfil_volatilidade", dtype=String),
        Field(name="inadimplencias_anteriores", dtype=Int64, description="defaults known"),
        Field(name="desfechos_conhecidos", dtype=Int64, description="outcomes known"),
        Field(name="area_total_hectares", dtype=Float64, description="latest profile"),
        Field(name="cultura_principal", dtype=String, description="latest profile"),
        Field(name="anos_experiencia", dtype=Int32, description="latest profile"),
        Field(name="serasa_score", dtype=Int32, description="latest profile"),
    ],
    online=True,
    description="The applicant's cumulative history, one row per application (gold).",
    tags={"layer": "gold", "feeds_model": "true"},
)

localizacao_perfil = FeatureView(
    name="localizacao_perfil",
    entities=[localizacao_uf, localizacao_municipio],
    ttl=AGGREGATE_TTL,
    source=location_features_source,
    schema=[
        Field(name="n_proponentes", dtype=Int64),
        Field(name="valor_medio", dtype=Float64),
        Field(name="area_media", dtype=Float64),
        Field(name="cultura_dominante", dtype=String),
        Field(name="share_alto_risco", dtype=Float64),
        Field(name="densidade_proponentes", dtype=String),
        Field(name="taxa_inadimplencia_observada", dtype=Float64),
    ],
    online=True,
    description="Per município: current-state aggregates (not point-in-time; not a model input).",
    tags={"layer": "gold", "feeds_model": "false"},
)

segmento_risco_perfil = FeatureView(
    name="segmento_risco_perfil",
    entities=[segmento_faixa_risco, segmento_cultura],
    ttl=AGGREGATE_TTL,
    source=risk_features_source,
    schema=[
        Field(name="volume", dtype=Int64),
        Field(name="valor_mediano", dtype=Float64),
        Field(name="score_medio", dtype=Float64),
        Field(name="share_juridica", dtype=Float64),
        Field(name="taxa_inadimplencia_observada", dtype=Float64),
        Field(name="score_risco_ajustado", dtype=Float64),
        Field(name="volatilidade_credito", dtype=Float64),
    ],
    online=True,
    description="Per risk band and crop: current-state aggregates (not a model input).",
    tags={"layer": "gold", "feeds_model": "false"},
)
