"""The bronze contract in Trino's DDL (tests and benchmarks create bronze through Trino)."""

from __future__ import annotations

import re

from pipelines import bronze


def test_spark_types_translate_to_trino_types() -> None:
    assert bronze.trino_type("STRING") == "varchar"
    assert bronze.trino_type(" BIGINT ") == "bigint"
    assert bronze.trino_type("TIMESTAMP") == "timestamp(6) with time zone"
    assert bronze.trino_type("MAP<STRING, DOUBLE>") == "MAP(varchar, double)"
    assert (
        bronze.trino_type("STRUCT<latitude: DOUBLE, uf: STRING,\n     inner: STRUCT<n: INT>>")
        == "ROW(latitude double, uf varchar, inner ROW(n integer))"
    )


def test_every_bronze_column_is_translated_once_in_order() -> None:
    for table, (spark_columns, _) in bronze.TABLES.items():
        columns = bronze.trino_columns(table)
        # a column starts its line with "name TYPE"; a struct's fields read "name: TYPE"
        assert [c.split(" ", 1)[0] for c in columns] == re.findall(
            r"^\s*(\w+) [A-Z]", spark_columns, re.MULTILINE
        ), table
        assert not any(t in c for c in columns for t in ("STRING", "STRUCT", "<", ":")), table
        assert "kafka_offset bigint NOT NULL" in columns
        assert "kafka_timestamp timestamp(6) with time zone" in columns


def test_nested_records_become_rows() -> None:
    columns = bronze.trino_columns("applications")
    assert (
        "localizacao_propriedade ROW(latitude double, longitude double, municipio varchar, "
        "uf varchar)"
    ) in columns
    assert "features MAP(varchar, double)" in bronze.trino_columns("scored_requests")
    assert "kafka_key varbinary" in bronze.trino_columns("rejected_records")
