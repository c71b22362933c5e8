"""The quality gate against real Trino: small bronze, silver and gold tables of our own (under a
unique schema prefix), each case broken in one known way, judged by ``run_gate``."""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterator

import pytest

from quality.gate import GateFailed, GateResult, run_gate
from quality.suites import bronze, gold, silver
from safra.lakehouse import drop_schemas, trino_connection
from safra.settings import Settings

pytestmark = pytest.mark.stack

ROWS = 100
RAW_CPF = "52998224725"  # a valid CPF (check digits), as it would arrive before pseudonymizing


def _hash(seed: str) -> str:
    return f"lower(to_hex(sha256(to_utf8('{seed}-' || CAST(i AS varchar)))))"


SCORE = "300 + (i * 37) % 700"

# silver_applications, one expression per contract column over i in 1..ROWS; a clean batch:
# 5 % missing scores, everything valid, every hash 64 hex digits.
SILVER_APPLICATIONS: dict[str, str] = {
    "id_solicitacao": "'app-' || CAST(i AS varchar)",
    "proponente_id": "'prop-' || CAST(i % 20 AS varchar)",
    "data_solicitacao": (
        "CAST(from_unixtime(1700000000 + i * 3600) AS timestamp(6) with time zone)"
    ),
    "cpf_cnpj_hash": _hash("cpf"),
    "nome_hash": _hash("nome"),
    "tipo_pessoa": "CASE WHEN i % 5 = 0 THEN 'JURIDICA' ELSE 'FISICA' END",
    "renda_bruta_anual_declarada": "CAST(100000 + i * 1000 AS double)",
    "valor_solicitado_credito": "CAST(20000 + i * 500 AS double)",
    "finalidade_credito": "'CUSTEIO_SAFRA'",
    "latitude": "-15.0 - (i % 10) * 0.5",
    "longitude": "-50.0 + (i % 10) * 0.3",
    "municipio": "'Municipio ' || CAST(i % 7 AS varchar)",
    "uf": "element_at(ARRAY['MT', 'GO', 'PR', 'RS', 'SP'], 1 + i % 5)",
    "area_total_hectares": "CAST(10 + i * 15 AS double)",
    "cultura_principal": "element_at(ARRAY['SOJA', 'MILHO', 'CAFE'], 1 + i % 3)",
    "possui_experiencia_atividade": "i % 3 <> 0",
    "anos_experiencia": "i % 30",
    "serasa_score": f"CASE WHEN i % 20 = 0 THEN NULL ELSE {SCORE} END",
    "ibama_autuacoes_ativas": "i % 50 = 0",
    "matricula_hash": _hash("matricula"),
    "prazo_meses": "12",
    "classificacao_propriedade": (
        "CASE WHEN 10 + i * 15 < 50 THEN 'MINIFUNDIO' WHEN 10 + i * 15 < 200 THEN 'PEQUENA' "
        "WHEN 10 + i * 15 < 1000 THEN 'MEDIA' ELSE 'GRANDE' END"
    ),
    "faixa_risco_credito": "{band}",
    "cpf_cnpj_valido": "true",
    "registro_valido": "true",
    "ingested_at": "CAST(current_timestamp AS timestamp(6) with time zone)",
    "_loaded_at": "CAST(current_timestamp AS timestamp(6) with time zone)",
}

SILVER_OUTCOMES: dict[str, str] = {
    "id_solicitacao": "'app-' || CAST(i AS varchar)",
    "proponente_id": "'prop-' || CAST(i % 20 AS varchar)",
    "data_solicitacao": (
        "CAST(from_unixtime(1700000000 + i * 3600) AS timestamp(6) with time zone)"
    ),
    "data_desfecho": (
        "CAST(from_unixtime(1700000000 + i * 3600 + 86400 * 90) AS timestamp(6) with time zone)"
    ),
    "inadimplente": "i % 7 = 0",
    "dias_atraso": "CASE WHEN i % 7 = 0 THEN 95 ELSE 0 END",
    "ingested_at": "CAST(current_timestamp AS timestamp(6) with time zone)",
    "_loaded_at": "CAST(current_timestamp AS timestamp(6) with time zone)",
}

PROPONENTE_FEATURES: dict[str, str] = {
    "proponente_id": "'prop-' || CAST(i % 20 AS varchar)",
    "id_solicitacao": "'app-' || CAST(i AS varchar)",
    "feature_timestamp": (
        "CAST(from_unixtime(1700000000 + i * 3600) AS timestamp(6) with time zone)"
    ),
    "n_solicitacoes": "CAST(1 + i / 20 AS bigint)",
    "valor_medio": "CAST(20000 + i * 400 AS double)",
    "valor_max": "CAST(20000 + i * 500 AS double)",
    "valor_min": "CAST(20000 + i * 300 AS double)",
    "share_ibama": "CASE WHEN i % 10 = 0 THEN 0.5 ELSE 0.0 END",
    "perfil_frequencia": "CASE WHEN i <= 20 THEN 'NOVO' ELSE 'RECORRENTE' END",
    "perfil_volatilidade": "element_at(ARRAY['CONSISTENTE', 'ESTAVEL', 'MODERADO'], 1 + i % 3)",
    "inadimplencias_anteriores": "CAST(0 AS bigint)",
    "desfechos_conhecidos": "CAST(i / 40 AS bigint)",
}

LOCATION_FEATURES: dict[str, str] = {
    "uf": "element_at(ARRAY['MT', 'GO', 'PR', 'RS', 'SP'], 1 + i % 5)",
    "municipio": "'Municipio ' || CAST(i AS varchar)",
    "n_proponentes": "CAST(1 + i AS bigint)",
    "valor_medio": "CAST(30000 + i AS double)",
    "area_media": "CAST(100 + i AS double)",
    "cultura_dominante": "'SOJA'",
    "share_alto_risco": "(i % 10) / 10.0",
    "densidade_proponentes": (
        "CASE WHEN 1 + i < 10 THEN 'BAIXA' WHEN 1 + i < 50 THEN 'MEDIA' ELSE 'ALTA' END"
    ),
    "taxa_inadimplencia_observada": "CASE WHEN i % 2 = 0 THEN NULL ELSE 0.1 END",
    "feature_timestamp": (
        "CAST(from_unixtime(1700000000 + i * 3600) AS timestamp(6) with time zone)"
    ),
}

RISK_FEATURES: dict[str, str] = {
    "faixa_risco_credito": (
        "element_at(ARRAY['SEM_SCORE', 'BAIXO', 'MEDIO', 'ALTO', 'MUITO_ALTO'], 1 + i % 5)"
    ),
    "cultura_principal": "element_at(ARRAY['SOJA', 'MILHO', 'CAFE', 'TRIGO'], 1 + (i - 1) / 5)",
    "volume": "CAST(10 + i AS bigint)",
    "valor_mediano": "CAST(25000 + i AS double)",
    "score_medio": "CAST(500 + i AS double)",
    "share_juridica": "0.2",
    "taxa_inadimplencia_observada": "0.05",
    "score_risco_ajustado": "0.07",
    "volatilidade_credito": "0.3",
    "feature_timestamp": (
        "CAST(from_unixtime(1700000000 + i * 3600) AS timestamp(6) with time zone)"
    ),
}

KAFKA = {
    "kafka_topic": "'safra.applications'",
    "kafka_partition": "CAST(i % 3 AS integer)",
    "kafka_offset": "CAST(i AS bigint)",
    "kafka_timestamp": "CAST(current_timestamp AS timestamp(6))",
    "kafka_key": "'app-' || CAST(i AS varchar)",
    "ingested_at": "CAST(current_timestamp AS timestamp(6))",
}

BRONZE_APPLICATIONS: dict[str, str] = {
    "proponente_id": "'prop-' || CAST(i % 20 AS varchar)",
    "data_solicitacao": "CAST(1700000000000 + i * 3600000 AS bigint)",
    "tipo_pessoa": "CASE WHEN i % 5 = 0 THEN 'JURIDICA' ELSE 'FISICA' END",
    "valor_solicitado_credito": "CAST(20000 + i * 500 AS double)",
    "localizacao_propriedade": (
        "CAST(ROW(-15.0, -50.0, 'Sorriso', 'MT') AS "
        "ROW(latitude double, longitude double, municipio varchar, uf varchar))"
    ),
    "id_solicitacao": "'app-' || CAST(i AS varchar)",
    "schema_version": "CAST(1 + i % 2 AS integer)",
    **KAFKA,
}

BRONZE_OUTCOMES: dict[str, str] = {
    "id_solicitacao": "'app-' || CAST(i AS varchar)",
    "inadimplente": "i % 7 = 0",
    "schema_version": "CAST(1 AS integer)",
    **KAFKA,
    "kafka_topic": "'safra.outcomes'",
}

BRONZE_REJECTED: dict[str, str] = {
    **KAFKA,
    "kafka_topic": "'safra.applications'",
    "kafka_offset": "CAST(1000 + i AS bigint)",
    "raw_value": "to_utf8('garbage')",
    "schema_version": "'9'",
    "error": "'undecodable payload'",
}


def _band(score: str) -> str:
    return (
        f"CASE WHEN ({score}) IS NULL THEN 'SEM_SCORE' WHEN ({score}) >= 700 THEN 'BAIXO' "
        f"WHEN ({score}) >= 500 THEN 'MEDIO' WHEN ({score}) >= 300 THEN 'ALTO' "
        "ELSE 'MUITO_ALTO' END"
    )


class Lakehouse:
    """Creates (and at the end drops) this module's schemas and tables through Trino."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = settings.iceberg_catalog
        self.conn = trino_connection(settings, source="it-quality-gate")
        self.run_id = uuid.uuid4().hex[:8]
        self.schemas: list[str] = []

    def execute(self, sql: str) -> list[tuple]:
        cursor = self.conn.cursor()
        cursor.execute(sql)
        return cursor.fetchall()

    def prefix(self, case: str) -> str:
        return f"it_q_{self.run_id}_{case}_"

    def create(self, schema: str, table: str, columns: dict[str, str], rows: int = ROWS) -> None:
        if schema not in self.schemas:
            self.execute(f'CREATE SCHEMA IF NOT EXISTS {self.catalog}."{schema}"')
            self.schemas.append(schema)
        select = ",\n  ".join(f'{expr} AS "{name}"' for name, expr in columns.items())
        self.execute(
            f'CREATE TABLE {self.catalog}."{schema}"."{table}" AS\n'
            f"SELECT\n  {select}\nFROM UNNEST(sequence(1, {rows})) AS t(i)"
        )

    def silver(self, case: str, **overrides: str) -> str:
        """``<prefix>silver`` with both silver tables; ``overrides`` replace application columns.
        Returns the prefix."""
        columns = {**SILVER_APPLICATIONS, **overrides}
        columns["faixa_risco_credito"] = columns["faixa_risco_credito"].format(
            band=_band(columns["serasa_score"])
        )
        prefix = self.prefix(case)
        self.create(f"{prefix}silver", "silver_applications", columns)
        self.create(f"{prefix}silver", "silver_outcomes", SILVER_OUTCOMES, rows=ROWS // 2)
        return prefix

    def gold(self, case: str, **overrides: dict[str, str]) -> str:
        prefix = self.prefix(case)
        for table, columns in (
            ("proponente_features", PROPONENTE_FEATURES),
            ("location_features", LOCATION_FEATURES),
            ("risk_features", RISK_FEATURES),
        ):
            self.create(f"{prefix}gold", table, {**columns, **overrides.get(table, {})}, rows=20)
        return prefix

    def bronze(self, case: str, **overrides: dict[str, str]) -> str:
        schema = f"{self.prefix(case)}bronze"
        for table, columns in (
            ("applications", BRONZE_APPLICATIONS),
            ("outcomes", BRONZE_OUTCOMES),
            ("rejected_records", BRONZE_REJECTED),
        ):
            self.create(schema, table, {**columns, **overrides.get(table, {})}, rows=30)
        return schema

    def drop_all(self) -> None:
        drop_schemas(self.settings, self.schemas)
        self.conn.close()


@pytest.fixture(scope="module")
def lakehouse(local_stack: Settings) -> Iterator[Lakehouse]:
    house = Lakehouse(local_stack)
    yield house
    house.drop_all()


@pytest.fixture(scope="module")
def gate_settings(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The stack's settings with reports written to a temporary folder, not the real one."""
    return local_stack.model_copy(update={"data_dir": tmp_path_factory.mktemp("quality-gate")})


def _one(messages: list[str], *needles: str) -> str:
    """The single message containing every needle."""
    found = [m for m in messages if all(n in m for n in needles)]
    assert len(found) == 1, f"expected one message with {needles}, got {found} in {messages}"
    return found[0]


def test_clean_silver_passes_and_reports_every_expectation(
    lakehouse: Lakehouse, gate_settings: Settings
) -> None:
    prefix = lakehouse.silver("clean")

    result = run_gate("silver", gate_settings, schema_prefix=prefix)

    assert result.passed, result.summary()
    assert result.critical_failures == []
    assert result.warnings == []
    assert result.checked_rows == {"silver_applications": ROWS, "silver_outcomes": ROWS // 2}
    assert result.report_path.is_file()
    assert result.report_path.parent == gate_settings.reports_dir / "quality"
    report = result.report_path.read_text(encoding="utf-8")
    expected = sum(len(es) for es in silver.expectations().values())
    assert len(result.outcomes) == expected
    for outcome in result.outcomes:
        assert outcome.passed, outcome.message()
        assert html.escape(outcome.expectation) in report
    assert "PASSED" in report
    assert result.raise_for_failure() is result


def test_mostly_invalid_batch_stops_the_pipeline(
    lakehouse: Lakehouse, gate_settings: Settings
) -> None:
    prefix = lakehouse.silver("invalid", registro_valido="i % 10 >= 3")  # 30 % invalid

    result = run_gate("silver", gate_settings, schema_prefix=prefix)

    assert not result.passed
    message = _one(result.critical_failures, "expect_column_values_to_be_in_set(registro_valido")
    assert message.startswith("silver_applications: ")
    assert "observed share 0.700" in message and "expected >= 0.95" in message
    assert "30 of 100" in message
    with pytest.raises(GateFailed) as raised:
        result.raise_for_failure()
    assert raised.value.result is result
    assert "FAILED" in result.report_path.read_text(encoding="utf-8")


def test_raw_cpf_in_hash_column_fails_without_leaking_it(
    lakehouse: Lakehouse, gate_settings: Settings
) -> None:
    prefix = lakehouse.silver(
        "rawcpf", cpf_cnpj_hash=f"CASE WHEN i = 7 THEN '{RAW_CPF}' ELSE {_hash('cpf')} END"
    )

    result = run_gate("silver", gate_settings, schema_prefix=prefix)

    assert not result.passed
    message = _one(result.critical_failures, "expect_column_values_to_match_regex(cpf_cnpj_hash")
    assert "1 of 100" in message
    assert len(result.critical_failures) == 1, result.critical_failures
    # the report and the messages never repeat the raw tax id they caught
    assert RAW_CPF not in result.report_path.read_text(encoding="utf-8")
    assert all(RAW_CPF not in m for m in result.critical_failures + result.warnings)


def test_duplicate_application_id_fails_uniqueness(
    lakehouse: Lakehouse, gate_settings: Settings
) -> None:
    prefix = lakehouse.silver(
        "dup", id_solicitacao="'app-' || CAST(CASE WHEN i <= 3 THEN 1 ELSE i END AS varchar)"
    )

    result = run_gate("silver", gate_settings, schema_prefix=prefix)

    assert not result.passed
    message = _one(result.critical_failures, "expect_column_values_to_be_unique(id_solicitacao)")
    assert message.startswith("silver_applications: ")
    assert "3 duplicate values" in message


def test_many_missing_scores_only_warn(lakehouse: Lakehouse, gate_settings: Settings) -> None:
    prefix = lakehouse.silver(
        "nullscore", serasa_score=f"CASE WHEN i % 4 = 0 THEN NULL ELSE {SCORE} END"
    )

    result = run_gate("silver", gate_settings, schema_prefix=prefix)

    assert result.passed, result.summary()
    message = _one(result.warnings, "expect_column_values_to_not_be_null(serasa_score")
    assert "25 of 100 values are null" in message and "observed share 0.750" in message


def test_missing_tables_fail_the_gate(gate_settings: Settings) -> None:
    result = run_gate("silver", gate_settings, schema_prefix=f"it_q_absent_{uuid.uuid4().hex[:8]}_")

    assert not result.passed
    _one(result.critical_failures, "silver_applications", "does not exist")
    _one(result.critical_failures, "silver_outcomes", "does not exist")
    assert result.checked_rows == {}


def test_gold_clean_passes_and_broken_aggregates_fail(
    lakehouse: Lakehouse, gate_settings: Settings
) -> None:
    clean = run_gate("gold", gate_settings, schema_prefix=lakehouse.gold("goldok"))
    assert clean.passed, clean.summary()
    assert len(clean.outcomes) == sum(len(es) for es in gold.expectations().values())
    assert clean.checked_rows == {
        "proponente_features": 20,
        "location_features": 20,
        "risk_features": 20,
    }

    broken_prefix = lakehouse.gold(
        "goldbad",
        proponente_features={"valor_min": "CAST(20000 + i * 600 AS double)"},  # min > max
        location_features={"share_alto_risco": "1.5", "municipio": "'Sorriso'"},
        risk_features={"faixa_risco_credito": "'ALTISSIMO'"},
    )
    broken = run_gate("gold", gate_settings, schema_prefix=broken_prefix)

    assert not broken.passed
    failures = broken.critical_failures
    _one(failures, "proponente_features", "valor_max >= valor_min")
    _one(failures, "location_features", "expect_column_values_to_be_between(share_alto_risco")
    _one(failures, "location_features", "expect_compound_columns_to_be_unique(uf, municipio)")
    _one(failures, "risk_features", "expect_column_values_to_be_in_set(faixa_risco_credito")


def test_bronze_duplicate_kafka_records_and_unknown_schema_version_fail(
    lakehouse: Lakehouse, gate_settings: Settings
) -> None:
    clean = run_gate("bronze", gate_settings, bronze_schema=lakehouse.bronze("bronzeok"))
    assert clean.passed, clean.summary()
    assert clean.checked_rows == {"applications": 30, "outcomes": 30, "rejected_records": 30}
    assert len(clean.outcomes) == sum(len(es) for es in bronze.expectations().values())

    broken_schema = lakehouse.bronze(
        "bronzebad",
        applications={
            "kafka_offset": "CAST(CASE WHEN i <= 6 THEN 0 ELSE i END AS bigint)",
            "kafka_partition": "CAST(0 AS integer)",
            "schema_version": "CAST(CASE WHEN i = 1 THEN 3 ELSE 2 END AS integer)",
        },
    )
    broken: GateResult = run_gate("bronze", gate_settings, bronze_schema=broken_schema)

    assert not broken.passed
    _one(
        broken.critical_failures,
        "applications: expect_compound_columns_to_be_unique(kafka_topic, kafka_partition, "
        "kafka_offset)",
        "6 duplicate values",
    )
    _one(broken.critical_failures, "applications: expect_column_values_to_be_in_set(schema_version")
