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

The models here are the ONE definition of the contract: the validator uses them and the OpenAPI
document (:mod:`serving.openapi`) is generated from them, bounds and examples included. They are
strict (JSON types as documented) so the document and the validator agree on every body.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from ml.features import REGION_BY_UF, request_to_application
from safra.tax_ids import is_valid_cnpj, is_valid_cpf

TipoPessoa = Literal["FISICA", "JURIDICA"]
Finalidade = Literal["CUSTEIO_SAFRA", "INVESTIMENTO_MAQUINARIO", "AMPLIACAO_AREA", "OUTROS"]
Cultura = Literal[
    "SOJA", "MILHO", "CAFE", "CANA_DE_ACUCAR", "ALGODAO", "FRUTICULTURA", "TRIGO", "ARROZ",
    "FEIJAO", "EUCALIPTO",
]  # fmt: skip
Decisao = Literal["APPROVE", "MANUAL_REVIEW", "DENY"]

MAX_PRAZO_MESES = 480
MAX_BRL = 1e12
"""Amounts above this are typos, not credit requests."""
UFS = tuple(sorted(REGION_BY_UF))
UF_SPELLINGS = (*UFS, *(uf.lower() for uf in UFS))
"""The UF as sent: upper case ("MT") or lower case ("mt"), nothing else (the published enum)."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"
"""A pseudonymous id: ASCII letters, digits and ``._:/@+-`` (a UUID, a slug), no whitespace."""


def _uf(value: str) -> str:
    if value not in UF_SPELLINGS:
        raise ValueError(f"unknown UF {value!r}; expected one of the 27 UFs (e.g. 'MT', 'PR')")
    return value.upper()


def _pseudonymous(value: Any) -> Any:
    """``value`` unless it is a valid CPF or CNPJ: personal data, which the API never takes as an
    applicant id (it would travel into every log and table of scored requests). Runs before the
    id's pattern so a punctuated tax id is named as one."""
    if not isinstance(value, str):
        return value
    kind = "CPF" if is_valid_cpf(value) else "CNPJ" if is_valid_cnpj(value) else None
    if kind:
        raise ValueError(
            f"looks like a {kind}: a tax id is personal data and is not accepted as the "
            "applicant id. Fix: send the applicant's pseudonymous id (the proponente_id Safra "
            "knows the applicant by) instead"
        )
    return value


ApplicantId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN,
        description="the pseudonymous id Safra knows the applicant by; never a CPF or CNPJ",
        examples=["7a120078-7ca9-4f16-b2ae-b80a3bb0d1e9"],
    ),
    BeforeValidator(_pseudonymous),
]
Uf = Annotated[
    str,
    Field(
        description="the property's state (UF), upper or lower case",
        json_schema_extra={"enum": list(UF_SPELLINGS)},
        examples=["MT"],
    ),
]
Brl = Annotated[float, Field(gt=0, le=MAX_BRL, allow_inf_nan=False)]


def _integral(value: Any) -> Any:
    """24.0 as 24: JSON Schema counts a number with no fraction as an integer, so the document's
    ``"type": "integer"`` accepts it and the validator must too (a boolean stays refused)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_integral)]

SHORT_EXAMPLE: dict[str, Any] = {
    "id_proponente": "p-1", "uf": "MT", "renda_liquida_mes": 12000, "valor_solicitado": 80000,
    "prazo": 24,
}  # fmt: skip

# Strict models: the JSON types are the documented ones ("12" is not a number, 1 is not a
# boolean), so every body the OpenAPI document calls valid is accepted and every other refused.
_STRICT = ConfigDict(strict=True, extra="forbid")


class ShortRequest(BaseModel):
    """The short scoring request: the applicant's latest profile in the online store fills the
    rest."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={"examples": [SHORT_EXAMPLE]},
    )

    id_proponente: ApplicantId
    uf: Uf
    renda_liquida_mes: Brl = Field(description="net monthly income, BRL", examples=[12000])
    valor_solicitado: Brl = Field(description="amount requested, BRL", examples=[80000])
    prazo: Integer = Field(gt=0, le=MAX_PRAZO_MESES, description="term in months", examples=[24])

    _check_uf = field_validator("uf")(_uf)


class Localizacao(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    uf: Uf
    municipio: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)

    _check_uf = field_validator("uf")(_uf)


class FontesDadosAdicionais(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    serasa_score: Integer | None = Field(default=None, ge=0, le=1000)
    ibama_autuacoes_ativas: bool | None = None


WHOLE_EXAMPLE: dict[str, Any] = {
    "proponente_id": "7a120078-7ca9-4f16-b2ae-b80a3bb0d1e9",
    "tipo_pessoa": "FISICA",
    "renda_bruta_anual_declarada": 1363234.52,
    "valor_solicitado_credito": 564218.99,
    "finalidade_credito": "CUSTEIO_SAFRA",
    "localizacao_propriedade": {
        "uf": "MG", "municipio": "Uberaba", "latitude": -19.738182, "longitude": -47.940901,
    },
    "area_total_hectares": 148.91,
    "cultura_principal": "CANA_DE_ACUCAR",
    "possui_experiencia_atividade": True,
    "anos_experiencia": 2,
    "fontes_dados_adicionais": {"serasa_score": 645, "ibama_autuacoes_ativas": False},
    "prazo_meses": 6,
}  # fmt: skip


class WholeApplication(BaseModel):
    """A whole application, as the ``application`` Avro record carries it (v1 or v2). Other
    fields (identity, metadata) are accepted and ignored."""

    model_config = ConfigDict(
        strict=True, extra="ignore", json_schema_extra={"examples": [WHOLE_EXAMPLE]}
    )

    proponente_id: ApplicantId
    tipo_pessoa: TipoPessoa
    renda_bruta_anual_declarada: Brl
    valor_solicitado_credito: Brl
    finalidade_credito: Finalidade
    localizacao_propriedade: Localizacao
    area_total_hectares: float = Field(gt=0, le=1e8, allow_inf_nan=False)
    cultura_principal: Cultura
    possui_experiencia_atividade: bool
    anos_experiencia: Integer = Field(ge=0, le=120)
    fontes_dados_adicionais: FontesDadosAdicionais = FontesDadosAdicionais()
    prazo_meses: Integer | None = Field(default=None, gt=0, le=MAX_PRAZO_MESES)


# --- the answer and the errors (documentation of what the service sends) -------------------------


class Motivo(BaseModel):
    fator: str = Field(description="the driver's name, e.g. debt_to_income")
    descricao: str
    valor: float | str | bool | None = Field(description="the applicant's value")
    referencia: float | str | bool | None = Field(description="the training sample's median / mode")
    efeito: float = Field(description="change of the probability when the value is replaced")
    direcao: Literal["aumenta_risco", "reduz_risco"]


class AtualizacaoFeatures(BaseModel):
    feature_timestamp: str | None = Field(
        description="when the applicant's latest known application was made (ISO 8601)"
    )
    idade_segundos: float | None


class Limiares(BaseModel):
    approve_below: float
    deny_above: float


class CreditScoreAnswer(BaseModel):
    """The answer of ``POST /v1/credit-score`` (200)."""

    id_requisicao: str = Field(description="the request's id (UUID), also in the Kafka record")
    id_proponente: str
    probabilidade_inadimplencia: float = Field(ge=0, le=1)
    score: int = Field(ge=0, le=1000, description="round((1 - p) * 1000): higher is safer")
    decisao: Decisao
    motivos: list[Motivo] = Field(max_length=3)
    model_name: str
    model_version: str
    proponente_conhecido: bool = Field(description="false: no history in the online store")
    atualizacao_features: AtualizacaoFeatures
    limiares: Limiares
    latencia_ms: float
    observacao: str | None = Field(
        default=None,
        description="present for unknown applicants: how they were scored or why they go to "
        "MANUAL_REVIEW",
    )


class Erro(BaseModel):
    campo: str = Field(description="the field's dotted path, `<body>` for the body as a whole")
    motivo: str


class ErrorBody(BaseModel):
    """Every error answer: a message and, for 422, each bad field. Keys in Portuguese like the
    rest of the contract; never an internal host, port, path or exception text."""

    mensagem: str
    erros: list[Erro] | None = Field(default=None, description="422 only: each bad field")


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
    """A body with ``proponente_id`` (the application's own key) is a whole application; any
    other is a short request. As in the document's ``oneOf``: a short request allows no other
    key, so a body with ``proponente_id`` can only be a whole application (an ``id_proponente``
    in it is one more ignored field)."""
    return "proponente_id" in body


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
