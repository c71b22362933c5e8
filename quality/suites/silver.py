"""Silver: typed, flat, deduplicated, pseudonymized, enriched and validated. The suite is the
contract gold and the models rely on."""

from __future__ import annotations

import great_expectations.expectations as gxe
from great_expectations.expectations import Expectation
from great_expectations.expectations.row_conditions import Column

from quality.suites import critical, warning
from quality.suites.domain_values import (
    CLASSIFICACOES_PROPRIEDADE,
    CULTURAS,
    FAIXAS_RISCO_CREDITO,
    FINALIDADES_CREDITO,
    LATITUDE_RANGE,
    LONGITUDE_RANGE,
    SHA256_HEX,
    TIPOS_PESSOA,
    UFS,
)

#: Below this share of valid records the batch is mostly garbage: stop before it reaches gold.
MIN_VALID_SHARE = 0.95
#: Above this share of missing bureau scores, warn (the domain expects "a few").
MAX_MISSING_SCORE_SHARE = 0.10


def _applications() -> list[Expectation]:
    return [
        critical(
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            "an empty silver means nothing to build gold from",
        ),
        critical(
            gxe.ExpectColumnValuesToNotBeNull(column="id_solicitacao"),
            "the application id is silver's key",
        ),
        critical(
            gxe.ExpectColumnValuesToBeUnique(column="id_solicitacao"),
            "silver is deduplicated: one row per application",
        ),
        critical(
            gxe.ExpectColumnValuesToNotBeNull(column="data_solicitacao"),
            "gold's history and point-in-time joins order by data_solicitacao",
        ),
        *(
            critical(
                gxe.ExpectColumnValuesToMatchRegex(column=column, regex=SHA256_HEX),
                f"{column} is a keyed hash: a value that is not 64 hex digits may be raw PII",
                sensitive=True,
            )
            for column in ("cpf_cnpj_hash", "nome_hash", "matricula_hash")
        ),
        critical(
            gxe.ExpectColumnValuesToBeInSet(column="uf", value_set=list(UFS)),
            "the farm lies in one of Brazil's 27 UFs",
        ),
        critical(
            gxe.ExpectColumnValuesToBeInSet(column="tipo_pessoa", value_set=list(TIPOS_PESSOA)),
            "applicants are people (FISICA) or companies (JURIDICA)",
        ),
        critical(
            gxe.ExpectColumnValuesToBeInSet(
                column="classificacao_propriedade", value_set=list(CLASSIFICACOES_PROPRIEDADE)
            ),
            "property size band by area (business rule)",
        ),
        critical(
            gxe.ExpectColumnValuesToNotBeNull(column="faixa_risco_credito"),
            "every application has a risk band (SEM_SCORE when the score is missing)",
        ),
        critical(
            gxe.ExpectColumnValuesToBeInSet(
                column="faixa_risco_credito", value_set=list(FAIXAS_RISCO_CREDITO)
            ),
            "risk band by bureau score (business rule)",
        ),
        critical(
            gxe.ExpectColumnValuesToBeBetween(
                column="valor_solicitado_credito",
                min_value=0,
                strict_min=True,
                row_condition=Column("registro_valido") == True,  # noqa: E712 (GX condition)
            ),
            "a valid record asks for a positive amount",
        ),
        critical(
            gxe.ExpectColumnValuesToNotBeNull(column="registro_valido"),
            "every record is judged valid or not",
        ),
        critical(
            gxe.ExpectColumnValuesToBeInSet(
                column="registro_valido", value_set=[True], mostly=MIN_VALID_SHARE
            ),
            f"a batch with under {MIN_VALID_SHARE:.0%} valid records is broken upstream",
        ),
        critical(
            gxe.ExpectColumnValuesToBeBetween(
                column="latitude", min_value=LATITUDE_RANGE[0], max_value=LATITUDE_RANGE[1]
            ),
            "the farm's latitude lies in Brazil",
        ),
        critical(
            gxe.ExpectColumnValuesToBeBetween(
                column="longitude", min_value=LONGITUDE_RANGE[0], max_value=LONGITUDE_RANGE[1]
            ),
            "the farm's longitude lies in Brazil",
        ),
        critical(
            gxe.ExpectColumnValuesToBeBetween(column="serasa_score", min_value=0, max_value=1000),
            "the bureau score is 0-1000 when present",
        ),
        warning(
            gxe.ExpectColumnValuesToNotBeNull(
                column="serasa_score", mostly=1 - MAX_MISSING_SCORE_SHARE
            ),
            f"more than {MAX_MISSING_SCORE_SHARE:.0%} missing bureau scores weakens the model",
        ),
        warning(
            gxe.ExpectColumnValuesToBeInSet(
                column="finalidade_credito", value_set=list(FINALIDADES_CREDITO)
            ),
            "credit purpose outside the known vocabulary",
        ),
        warning(
            gxe.ExpectColumnValuesToBeInSet(column="cultura_principal", value_set=list(CULTURAS)),
            "main crop outside the known vocabulary",
        ),
        warning(
            gxe.ExpectColumnValuesToBeBetween(
                column="area_total_hectares",
                min_value=0,
                strict_min=True,
                row_condition=Column("registro_valido") == True,  # noqa: E712 (GX condition)
            ),
            "a valid record has a positive area",
        ),
    ]


def _outcomes() -> list[Expectation]:
    return [
        critical(
            gxe.ExpectColumnValuesToNotBeNull(column="id_solicitacao"),
            "an outcome is joined to its application by id",
        ),
        critical(
            gxe.ExpectColumnValuesToBeUnique(column="id_solicitacao"),
            "one outcome per application",
        ),
        critical(
            gxe.ExpectColumnValuesToNotBeNull(column="data_desfecho"),
            "labels are placed in time by data_desfecho (point-in-time correctness)",
        ),
        critical(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="data_desfecho", column_B="data_solicitacao", or_equal=True
            ),
            "an outcome cannot precede its application",
        ),
        critical(
            gxe.ExpectColumnValuesToNotBeNull(column="inadimplente"),
            "the label itself",
        ),
        warning(
            gxe.ExpectColumnValuesToBeBetween(column="dias_atraso", min_value=0),
            "days late are never negative",
        ),
    ]


def expectations() -> dict[str, list[Expectation]]:
    """Silver table -> its expectations."""
    return {"silver_applications": _applications(), "silver_outcomes": _outcomes()}
