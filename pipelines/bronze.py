"""Bronze: what arrived from Kafka, decoded, plus where it came from. Tables are created if
missing and never dropped.

Fields keep their Avro shape (nested structs stay structs; timestamps stay epoch milliseconds
as on the wire; silver converts them once). Each row carries its Kafka coordinates, the
writer's schema version and the ingestion time.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from safra.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

NAMESPACE = "bronze"

KAFKA_COLUMNS = """
    kafka_topic STRING NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset BIGINT NOT NULL,
    kafka_timestamp TIMESTAMP,
    kafka_key STRING,
    schema_version INT,
    ingested_at TIMESTAMP NOT NULL
"""

APPLICATIONS = f"""
    proponente_id STRING,
    data_solicitacao BIGINT,
    cpf_cnpj STRING,
    nome_razao_social STRING,
    tipo_pessoa STRING,
    renda_bruta_anual_declarada DOUBLE,
    valor_solicitado_credito DOUBLE,
    finalidade_credito STRING,
    localizacao_propriedade STRUCT<latitude: DOUBLE, longitude: DOUBLE, municipio: STRING,
                                   uf: STRING>,
    area_total_hectares DOUBLE,
    cultura_principal STRING,
    possui_experiencia_atividade BOOLEAN,
    anos_experiencia INT,
    fontes_dados_adicionais STRUCT<serasa_score: INT, ibama_autuacoes_ativas: BOOLEAN,
                                   numero_matricula_imovel: STRING>,
    metadata_evento STRUCT<versao_schema: STRING, origem_dados: STRING,
                           timestamp_geracao_evento: BIGINT>,
    id_solicitacao STRING,
    prazo_meses INT,
    {KAFKA_COLUMNS}
"""

OUTCOMES = f"""
    id_solicitacao STRING,
    proponente_id STRING,
    data_solicitacao BIGINT,
    data_desfecho BIGINT,
    inadimplente BOOLEAN,
    dias_atraso INT,
    metadata_evento STRUCT<versao_schema: STRING, origem_dados: STRING,
                           timestamp_geracao_evento: BIGINT>,
    {KAFKA_COLUMNS}
"""

SCORED_REQUESTS = f"""
    id_requisicao STRING,
    proponente_id STRING,
    requested_at BIGINT,
    model_name STRING,
    model_version STRING,
    probabilidade_inadimplencia DOUBLE,
    score INT,
    decisao STRING,
    features MAP<STRING, DOUBLE>,
    latency_ms DOUBLE,
    proponente_conhecido BOOLEAN,
    {KAFKA_COLUMNS}
"""

REJECTED = """
    kafka_topic STRING NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset BIGINT NOT NULL,
    kafka_timestamp TIMESTAMP,
    kafka_key BINARY,
    raw_value BINARY,
    schema_version STRING,
    error STRING NOT NULL,
    ingested_at TIMESTAMP NOT NULL
"""

#: table -> (columns DDL, Iceberg partitioning)
TABLES: dict[str, tuple[str, str]] = {
    "applications": (APPLICATIONS, "months(ingested_at), tipo_pessoa"),
    "outcomes": (OUTCOMES, "months(ingested_at)"),
    "scored_requests": (SCORED_REQUESTS, "months(ingested_at)"),
    "rejected_records": (REJECTED, "kafka_topic, months(ingested_at)"),
}


def table_name(s: Settings, table: str, namespace: str = NAMESPACE) -> str:
    return f"{s.iceberg_catalog}.{namespace}.{table}"


def ensure_bronze_tables(spark: SparkSession, s: Settings, namespace: str = NAMESPACE) -> list[str]:
    """Create the bronze namespace and tables when missing; never drop or replace. Returns the
    names of the tables created now. ``namespace`` lets tests use bronze tables of their own."""
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {s.iceberg_catalog}.{namespace}")
    created = []
    for table, (columns, partitioning) in TABLES.items():
        name = table_name(s, table, namespace)
        if spark.catalog.tableExists(name):
            continue
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS {name} ({columns}) USING iceberg "
            f"PARTITIONED BY ({partitioning}) "
            "TBLPROPERTIES ('format-version'='2', 'write.metadata.delete-after-commit.enabled'="
            "'true', 'write.metadata.previous-versions-max'='50', "
            "'commit.retry.num-retries'='10')"
        )
        log.info("created %s", name)
        created.append(name)
    return created


# --- the same contract in Trino's DDL (tests and benchmarks create bronze through Trino) -------

_TRINO_TYPES = {
    "STRING": "varchar",
    "INT": "integer",
    "BIGINT": "bigint",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
    "BINARY": "varbinary",
    "TIMESTAMP": "timestamp(6) with time zone",
}


def trino_type(spark_type: str) -> str:
    """A Spark DDL type of this module's tables as a Trino type (``STRUCT<a: INT>`` ->
    ``ROW(a integer)``, ``MAP<STRING, DOUBLE>`` -> ``MAP(varchar, double)``)."""
    t = re.sub(r"\s+", " ", spark_type.strip())
    t = re.sub(r"\bSTRUCT<", "ROW(", t)
    t = re.sub(r"\bMAP<", "MAP(", t)
    t = t.replace(">", ")")
    t = re.sub(r"(\w+): ", r"\1 ", t)
    return re.sub(r"\b(STRING|INT|BIGINT|DOUBLE|BOOLEAN|BINARY|TIMESTAMP)\b",
                  lambda m: _TRINO_TYPES[m.group(1)], t)  # fmt: skip


def trino_columns(table: str) -> list[str]:
    """The columns of bronze ``table`` as Trino column definitions (``name type [NOT NULL]``)."""
    spark_columns, _ = TABLES[table]
    columns, depth, current = [], 0, ""
    for ch in spark_columns:  # split at the commas outside STRUCT<...> and MAP<...>
        depth += (ch == "<") - (ch == ">")
        if ch == "," and depth == 0:
            columns.append(current)
            current = ""
        else:
            current += ch
    columns.append(current)
    out = []
    for column in (c.strip() for c in columns if c.strip()):
        name, _, spark_type = column.partition(" ")
        not_null = " NOT NULL" if spark_type.rstrip().endswith("NOT NULL") else ""
        out.append(f"{name} {trino_type(spark_type.replace('NOT NULL', ''))}{not_null}")
    return out
