"""The HTTP contract of ``POST /v1/credit-score``: request shapes, their validation, the answer.

Two request shapes (DOMAIN.md, "The scoring contract"):

- the short request ``{"id_proponente", "uf", "renda_liquida_mes", "valor_solicitado", "prazo"}``,
  mapped to application fields by :func:`ml.features.request_to_application` (the one documented
  mapping) with the applicant's latest profile from the online store as defaults;
- a whole application (the ``application`` Avro record's fields, nested records as in the
  contract: ``localizacao_propriedade``, ``fontes_dados_adicionais``), used as sent; identity
  fields (CPF/CNPJ, name, land registry number) are accepted and ignored.

The applicant's id (``id_proponente``, ``proponente_id``) is the pseudonymous id Safra knows
the applicant by, never a tax id: a valid CPF or CNPJ there (digits or punctuated) is refused
with 422, so request ids, answers, scored-request records and ``bronze.scored_requests`` carry
no tax id.

Validation errors become one list of ``{"campo", "motivo"}`` (the field's dotted path and the
reason), answered with HTTP 422 by the service.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ml.features import REGION_BY_UF, request_to_application
from safra.tax_ids import is_valid_cnpj, is_valid_cpf

TipoPessoa = Literal["FISICA", "JURIDICA"]
Finalidade = Literal["CUSTEIO_SAFRA", "INVESTIMENTO_MAQUINARIO", "AMPLIACAO_AREA", "OUTROS"]
Cultura = Literal[
    "SOJA", "MILHO", "CAFE", "CANA_DE_ACUCAR", "ALGODAO", "FRUTICULTURA", "TRIGO", "ARROZ",
    "FEIJAO", "EUCALIPTO",
]  # fmt: skip

MAX_PRAZO_MESES = 480
MAX_BRL = 1e12
"""Amounts above this are typos, not credit requests."""


def _uf(value: str) -> str:
    uf = value.strip().upper()
    if uf not in REGION_BY_UF:
        raise ValueError(f"unknown UF {value!r}; expected one of the 27 UFs (e.g. 'MT', 'PR')")
    return uf


def _pseudonymous(value: str) -> str:
    """``value`` unless it is a valid CPF or CNPJ: personal data, which the API never takes as an
    applicant id (it would travel into every log and table of scored requests)."""
    kind = "CPF" if is_valid_cpf(value) else "CNPJ" if is_valid_cnpj(value) else None
    if kind:
        raise ValueError(
            f"looks like a {kind}: a tax id is personal data and is not accepted as the "
            "applicant id. Fix: send the applicant's pseudonymous id (the proponente_id Safra "
            "knows the applicant by) instead"
        )
    return value


class ShortRequest(BaseModel):
    """The short scoring request."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id_proponente: str = Field(min_length=1, max_length=128)
    uf: str
    renda_liquida_mes: float = Field(gt=0, le=MAX_BRL, allow_inf_nan=False)
    valor_solicitado: float = Field(gt=0, le=MAX_BRL, allow_inf_nan=False)
    prazo: int = Field(gt=0, le=MAX_PRAZO_MESES, description="term in months")

    _check_uf = field_validator("uf")(_uf)
    _check_id = field_validator("id_proponente")(_pseudonymous)


class Localizacao(BaseModel):
    model_config = ConfigDict(extra="ignore")

    uf: str
    municipio: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)

    _check_uf = field_validator("uf")(_uf)


class FontesDadosAdicionais(BaseModel):
    model_config = ConfigDict(extra="ignore")

    serasa_score: int | None = Field(default=None, ge=0, le=1000)
    ibama_autuacoes_ativas: bool | None = None


class WholeApplication(BaseModel):
    """A whole application, as the ``application`` Avro record carries it (v1 or v2)."""

    model_config = ConfigDict(extra="ignore")

    proponente_id: str = Field(min_length=1, max_length=128)
    tipo_pessoa: TipoPessoa
    renda_bruta_anual_declarada: float = Field(gt=0, le=MAX_BRL, allow_inf_nan=False)
    valor_solicitado_credito: float = Field(gt=0, le=MAX_BRL, allow_inf_nan=False)
    finalidade_credito: Finalidade
    localizacao_propriedade: Localizacao
    area_total_hectares: float = Field(gt=0, le=1e8, allow_inf_nan=False)
    cultura_principal: Cultura
    possui_experiencia_atividade: bool
    anos_experiencia: int = Field(ge=0, le=120)
    fontes_dados_adicionais: FontesDadosAdicionais = FontesDadosAdicionais()
    prazo_meses: int | None = Field(default=None, gt=0, le=MAX_PRAZO_MESES)

    _check_id = field_validator("proponente_id")(_pseudonymous)


class RequestError(ValueError):
    """The body is not a valid scoring request; :attr:`errors` names each field and reason."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['campo']}: {e['motivo']}" for e in errors))
        self.errors = errors


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"]) or "<body>"
        reason = err["msg"].removeprefix("Value error, ")
        out.append({"campo": field, "motivo": reason})
    return out


def is_whole_application(body: Mapping[str, Any]) -> bool:
    """A body with ``proponente_id`` (the application's own key) is a whole application."""
    return "proponente_id" in body and "id_proponente" not in body


def parse_request(body: Any) -> ShortRequest | WholeApplication:
    """The validated request; :class:`RequestError` naming every bad field otherwise."""
    if not isinstance(body, Mapping):
        raise RequestError([{"campo": "<body>", "motivo": "expected a JSON object"}])
    model: type[ShortRequest] | type[WholeApplication] = (
        WholeApplication if is_whole_application(body) else ShortRequest
    )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestError(_errors(exc)) from None


def proponente_id(request: ShortRequest | WholeApplication) -> str:
    return request.id_proponente if isinstance(request, ShortRequest) else request.proponente_id


def application_fields(
    request: ShortRequest | WholeApplication, profile: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The flat application fields :func:`ml.features.model_inputs` reads.

    Short request: :func:`ml.features.request_to_application` with ``profile`` (the applicant's
    latest known profile) as defaults. Whole application: its own fields, flattened; the profile
    is not used (the application says everything itself).
    """
    if isinstance(request, ShortRequest):
        return request_to_application(request.model_dump(), defaults=profile)
    data = request.model_dump()
    location = data.pop("localizacao_propriedade")
    sources = data.pop("fontes_dados_adicionais")
    data["uf"] = location["uf"]
    data["serasa_score"] = sources["serasa_score"]
    data["ibama_autuacoes_ativas"] = sources["ibama_autuacoes_ativas"]
    return data


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float, or None when missing / NaN / infinite."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def credit_score(probability: float) -> int:
    """The 0-1000 score of a probability of default: ``round((1 - p) * 1000)`` (higher = safer)."""
    return int(round((1.0 - probability) * 1000))
