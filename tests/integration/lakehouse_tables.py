"""Small silver/gold tables of the tests' own, in the real Iceberg catalog through Trino.

A test gets a unique schema prefix (``it_<name>_<hex>_``): ``<prefix>silver`` and ``<prefix>gold``
hold tables with the real tables' names and the columns that the gold models, the feature views
and the training set read (declared here, so that a test never depends on the real tables).
What a test inserts stands for audited data: each insert moves the table's ``published`` tag
(what Feast, the training set and drift read) to it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from safra.lakehouse import PUBLISHED, drop_schemas, iceberg_catalog, trino_connection
from safra.settings import Settings

SILVER_APPLICATIONS = {
    "id_solicitacao": "varchar",
    "proponente_id": "varchar",
    "data_solicitacao": "timestamp(6) with time zone",
    "tipo_pessoa": "varchar",
    "renda_bruta_anual_declarada": "double",
    "valor_solicitado_credito": "double",
    "finalidade_credito": "varchar",
    "latitude": "double",
    "longitude": "double",
    "municipio": "varchar",
    "uf": "varchar",
    "area_total_hectares": "double",
    "cultura_principal": "varchar",
    "possui_experiencia_atividade": "boolean",
    "anos_experiencia": "integer",
    "serasa_score": "integer",
    "ibama_autuacoes_ativas": "boolean",
    "prazo_meses": "integer",
    "origem_dados": "varchar",
    "classificacao_propriedade": "varchar",
    "faixa_risco_credito": "varchar",
    "registro_valido": "boolean",
    "_loaded_at": "timestamp(6) with time zone",
}
SILVER_OUTCOMES = {
    "id_solicitacao": "varchar",
    "proponente_id": "varchar",
    "data_solicitacao": "timestamp(6) with time zone",
    "data_desfecho": "timestamp(6) with time zone",
    "inadimplente": "boolean",
    "dias_atraso": "integer",
    "_loaded_at": "timestamp(6) with time zone",
}
GOLD_PROPONENTE = {
    "proponente_id": "varchar",
    "id_solicitacao": "varchar",
    "feature_timestamp": "timestamp(6) with time zone",
    "n_solicitacoes": "bigint",
    "valor_medio": "double",
    "valor_max": "double",
    "valor_min": "double",
    "valor_desvio": "double",
    "primeira_solicitacao": "timestamp(6) with time zone",
    "ultima_solicitacao": "timestamp(6) with time zone",
    "dias_entre_primeira_ultima": "bigint",
    "score_medio": "double",
    "share_ibama": "double",
    "area_total_hectares": "double",
    "cultura_principal": "varchar",
    "anos_experiencia": "integer",
    "serasa_score": "integer",
    "perfil_frequencia": "varchar",
    "coef_variacao": "double",
    "perfil_volatilidade": "varchar",
    "inadimplencias_anteriores": "bigint",
    "desfechos_conhecidos": "bigint",
    "_loaded_at": "timestamp(6) with time zone",
}
GOLD_LOCATION = {
    "uf": "varchar",
    "municipio": "varchar",
    "n_proponentes": "bigint",
    "valor_medio": "double",
    "area_media": "double",
    "cultura_dominante": "varchar",
    "share_alto_risco": "double",
    "densidade_proponentes": "varchar",
    "taxa_inadimplencia_observada": "double",
    "feature_timestamp": "timestamp(6) with time zone",
}
GOLD_RISK = {
    "faixa_risco_credito": "varchar",
    "cultura_principal": "varchar",
    "volume": "bigint",
    "valor_mediano": "double",
    "score_medio": "double",
    "share_juridica": "double",
    "taxa_inadimplencia_observada": "double",
    "score_risco_ajustado": "double",
    "volatilidade_credito": "double",
    "feature_timestamp": "timestamp(6) with time zone",
}


def sql_literal(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return f"TIMESTAMP '{stamp.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')} UTC'"
    return "'" + str(value).replace("'", "''") + "'"


def publish_table(settings: Settings, schema: str, table: str) -> None:
    """Point the table's published tag at its current snapshot (as a passed audit does)."""
    iceberg = iceberg_catalog(settings).load_table((schema, table))
    snapshot = iceberg.current_snapshot()
    if snapshot is not None:
        iceberg.manage_snapshots().create_tag(snapshot.snapshot_id, PUBLISHED).commit()


class TestLakehouse:
    """Schemas ``<prefix>silver`` / ``<prefix>gold`` of one test, dropped by :meth:`drop`."""

    __test__ = False

    def __init__(self, settings: Settings, name: str) -> None:
        self.prefix = f"it_{name}_{uuid.uuid4().hex[:8]}_"
        self.settings = settings
        self.catalog = settings.iceberg_catalog
        self.conn = trino_connection(settings, source=f"it-{name}")
        self.tables: list[str] = []
        self.identifiers: dict[str, tuple[str, str]] = {}
        for layer in ("silver", "gold"):
            self.execute(f'CREATE SCHEMA IF NOT EXISTS {self.catalog}."{self.prefix}{layer}"')

    def name(self, layer: str, table: str) -> str:
        return f'{self.catalog}."{self.prefix}{layer}".{table}'

    def execute(self, sql: str) -> list[Sequence[Any]]:
        cur = self.conn.cursor()
        cur.execute(sql)
        return cur.fetchall()

    def create(self, layer: str, table: str, columns: Mapping[str, str]) -> str:
        full = self.name(layer, table)
        cols = ", ".join(f'"{c}" {t}' for c, t in columns.items())
        self.execute(f"CREATE TABLE {full} ({cols})")
        self.tables.append(full)
        self.identifiers[full] = (f"{self.prefix}{layer}", table)
        return full

    def insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], batch: int = 400
    ) -> None:
        pending = [list(r) for r in rows]
        cols = ", ".join(f'"{c}"' for c in columns)
        for i in range(0, len(pending), batch):
            values = ",\n".join(
                "(" + ", ".join(sql_literal(v) for v in row) + ")" for row in pending[i : i + batch]
            )
            self.execute(f"INSERT INTO {table} ({cols}) VALUES {values}")
        self.publish(table)

    def publish(self, table: str) -> None:
        publish_table(self.settings, *self.identifiers[table])

    def snapshot(self, layer: str, table: str) -> str:
        refs = self.name(layer, f'"{table}$refs"')
        return str(self.execute(f"SELECT snapshot_id FROM {refs} WHERE name = 'main'")[0][0])

    def drop(self) -> None:
        drop_schemas(self.settings, [f"{self.prefix}silver", f"{self.prefix}gold"])
        self.conn.close()
