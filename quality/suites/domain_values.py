"""The domain's closed vocabularies (docs: DOMAIN.md), as the quality suites check them."""

from __future__ import annotations

from safra.contracts import enum_symbols

UFS: tuple[str, ...] = (
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA",
    "PB", "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO",
)  # fmt: skip

# the enums of the application contract (pipelines/schemas), never written out twice
TIPOS_PESSOA: tuple[str, ...] = enum_symbols("application", "tipo_pessoa")
FINALIDADES_CREDITO: tuple[str, ...] = enum_symbols("application", "finalidade_credito")
CULTURAS: tuple[str, ...] = enum_symbols("application", "cultura_principal")
CLASSIFICACOES_PROPRIEDADE: tuple[str, ...] = ("MINIFUNDIO", "PEQUENA", "MEDIA", "GRANDE")
FAIXAS_RISCO_CREDITO: tuple[str, ...] = ("SEM_SCORE", "BAIXO", "MEDIO", "ALTO", "MUITO_ALTO")
PERFIS_FREQUENCIA: tuple[str, ...] = ("NOVO", "RECORRENTE", "FREQUENTE", "MUITO_FREQUENTE")
PERFIS_VOLATILIDADE: tuple[str, ...] = ("CONSISTENTE", "ESTAVEL", "MODERADO", "VOLATIL")
DENSIDADES_PROPONENTES: tuple[str, ...] = ("BAIXA", "MEDIA", "ALTA", "MUITO_ALTA")

#: A keyed hash (HMAC-SHA256) as silver writes it: 64 lowercase hex digits. A raw CPF/CNPJ or
#: name never matches, which is how the silver suite proves no raw PII got through.
SHA256_HEX = r"^[0-9a-f]{64}$"

#: Brazil's bounding box, degrees.
LATITUDE_RANGE = (-34.0, 6.0)
LONGITUDE_RANGE = (-74.0, -34.0)
