"""Gold: the feature tables. One row per key, aggregates that make sense, bands in their sets."""

from __future__ import annotations

import great_expectations.expectations as gxe
from great_expectations.expectations import Expectation

from quality.suites import critical, warning
from quality.suites.domain_values import (
    CULTURAS,
    DENSIDADES_PROPONENTES,
    FAIXAS_RISCO_CREDITO,
    PERFIS_FREQUENCIA,
    PERFIS_VOLATILIDADE,
    UFS,
)

#: feature table -> its key (unique together)
KEYS: dict[str, list[str]] = {
    "proponente_features": ["proponente_id", "id_solicitacao"],
    "location_features": ["uf", "municipio"],
    "risk_features": ["faixa_risco_credito", "cultura_principal"],
}


def _table(table: str) -> list[Expectation]:
    key = KEYS[table]
    return [
        critical(
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            "an empty feature table would train and serve on nothing",
        ),
        critical(
            gxe.ExpectCompoundColumnsToBeUnique(column_list=key),
            f"one row per ({', '.join(key)})",
        ),
        *(
            critical(
                gxe.ExpectColumnValuesToNotBeNull(column=column),
                f"{column} is part of the key",
            )
            for column in key
        ),
        critical(
            gxe.ExpectColumnValuesToNotBeNull(column="feature_timestamp"),
            "Feast's point-in-time join needs every row's feature_timestamp",
        ),
    ]


def _share(column: str, why: str) -> Expectation:
    return critical(
        gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=1),
        f"{why} is a share: within [0, 1]",
    )


def _proponente_features() -> list[Expectation]:
    return [
        *_table("proponente_features"),
        critical(
            gxe.ExpectColumnValuesToBeBetween(column="n_solicitacoes", min_value=1),
            "a row exists because of at least one application",
        ),
        critical(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="valor_max", column_B="valor_min", or_equal=True
            ),
            "the largest amount is never below the smallest",
        ),
        critical(
            gxe.ExpectColumnValuesToBeInSet(
                column="perfil_frequencia", value_set=list(PERFIS_FREQUENCIA)
            ),
            "frequency profile (business rule)",
        ),
        critical(
            gxe.ExpectColumnValuesToBeInSet(
                column="perfil_volatilidade", value_set=list(PERFIS_VOLATILIDADE)
            ),
            "volatility profile (business rule)",
        ),
        _share("share_ibama", "the share of applications with environmental fines"),
        warning(
            gxe.ExpectColumnValuesToBeBetween(column="valor_medio", min_value=0, strict_min=True),
            "valid applications ask for positive amounts, so their mean is positive",
        ),
        warning(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="desfechos_conhecidos", column_B="inadimplencias_anteriores", or_equal=True
            ),
            "defaults are a subset of the known outcomes",
        ),
    ]


def _location_features() -> list[Expectation]:
    return [
        *_table("location_features"),
        critical(
            gxe.ExpectColumnValuesToBeInSet(column="uf", value_set=list(UFS)),
            "one of Brazil's 27 UFs",
        ),
        critical(
            gxe.ExpectColumnValuesToBeBetween(column="n_proponentes", min_value=1),
            "a municipality appears because at least one applicant farms there",
        ),
        critical(
            gxe.ExpectColumnValuesToBeInSet(
                column="densidade_proponentes", value_set=list(DENSIDADES_PROPONENTES)
            ),
            "applicant density band (business rule)",
        ),
        _share("share_alto_risco", "the share of high-risk applications"),
        _share("taxa_inadimplencia_observada", "the observed default rate"),
        warning(
            gxe.ExpectColumnValuesToBeInSet(column="cultura_dominante", value_set=list(CULTURAS)),
            "the dominant crop comes from the crop vocabulary",
        ),
    ]


def _risk_features() -> list[Expectation]:
    return [
        *_table("risk_features"),
        critical(
            gxe.ExpectColumnValuesToBeInSet(
                column="faixa_risco_credito", value_set=list(FAIXAS_RISCO_CREDITO)
            ),
            "risk band (business rule)",
        ),
        critical(
            gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=1),
            "a band appears because at least one application falls in it",
        ),
        _share("share_juridica", "the share of companies"),
        _share("taxa_inadimplencia_observada", "the observed default rate"),
        _share("score_risco_ajustado", "the smoothed default rate"),
        warning(
            gxe.ExpectColumnValuesToBeInSet(column="cultura_principal", value_set=list(CULTURAS)),
            "the crop comes from the crop vocabulary",
        ),
        warning(
            gxe.ExpectColumnValuesToBeBetween(column="valor_mediano", min_value=0, strict_min=True),
            "valid applications ask for positive amounts, so their median is positive",
        ),
    ]


def expectations() -> dict[str, list[Expectation]]:
    """Gold feature table -> its expectations."""
    return {
        "proponente_features": _proponente_features(),
        "location_features": _location_features(),
        "risk_features": _risk_features(),
    }
