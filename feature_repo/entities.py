"""Entities: who or what a feature row describes.

Feast entities carry one join key each, so the two composite keys of the issue — a location
(UF, município) and a crop-risk segment (risk band, crop) — are two entities each, and their
feature views are keyed by the pair.
"""

from feast import Entity, ValueType

proponente = Entity(
    name="proponente",
    join_keys=["proponente_id"],
    value_type=ValueType.STRING,
    description="A rural producer (person or company) who applies for credit; stable id.",
)

localizacao_uf = Entity(
    name="localizacao_uf",
    join_keys=["uf"],
    value_type=ValueType.STRING,
    description="Location, first key: the farm's UF (27 states).",
)
localizacao_municipio = Entity(
    name="localizacao_municipio",
    join_keys=["municipio"],
    value_type=ValueType.STRING,
    description="Location, second key: the farm's município (names repeat across UFs).",
)

segmento_faixa_risco = Entity(
    name="segmento_faixa_risco",
    join_keys=["faixa_risco_credito"],
    value_type=ValueType.STRING,
    description="Crop-risk segment, first key: the bureau risk band (BAIXO ... SEM_SCORE).",
)
segmento_cultura = Entity(
    name="segmento_cultura",
    join_keys=["cultura_principal"],
    value_type=ValueType.STRING,
    description="Crop-risk segment, second key: the main crop.",
)
