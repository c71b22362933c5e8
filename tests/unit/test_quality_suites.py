"""The quality suites build without services, every expectation says whether it is critical, and
the checks the pipeline depends on are among the critical ones. Plus the gate's wording and
report, on hand-made GX results (no Trino)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import great_expectations as gx
import pytest
from great_expectations.expectations import Expectation
from pydantic import SecretStr

from quality.gate import (
    LAYERS,
    ExpectationOutcome,
    GateFailed,
    GateResult,
    describe_expectation,
    describe_observation,
    ephemeral_context,
    layer_schema,
)
from quality.report import render_report, write_report
from quality.suites import is_critical
from quality.suites.domain_values import SHA256_HEX, UFS
from safra.lakehouse import trino_sqlalchemy_connect_args, trino_sqlalchemy_url
from safra.settings import Settings


def _all(layer: str) -> list[tuple[str, Expectation]]:
    return [(table, e) for table, es in LAYERS[layer]().items() for e in es]


def _labels(layer: str, *, critical: bool) -> set[str]:
    return {
        f"{table}: {describe_expectation(e.expectation_type, e.configuration.kwargs)}"
        for table, e in _all(layer)
        if is_critical(e) is critical
    }


@pytest.mark.parametrize("layer", ["bronze", "silver", "gold"])
def test_every_expectation_is_flagged_and_explained(layer: str) -> None:
    expectations = _all(layer)
    assert expectations
    for table, expectation in expectations:
        meta = expectation.meta or {}
        assert isinstance(meta.get("critical"), bool), (table, expectation.expectation_type)
        assert meta.get("why"), (table, expectation.expectation_type)


@pytest.mark.parametrize("layer", ["bronze", "silver", "gold"])
def test_suites_load_into_a_gx_suite(layer: str) -> None:
    """Each table's expectations are valid GX Core 1.x configurations (no services needed)."""
    context = ephemeral_context()
    for table, expectations in LAYERS[layer]().items():
        suite = context.suites.add(gx.ExpectationSuite(name=f"{layer}.{table}"))
        for expectation in expectations:
            suite.add_expectation(expectation)
        assert len(suite.expectations) == len(expectations)


def test_suites_are_built_fresh_each_call() -> None:
    first, second = LAYERS["silver"](), LAYERS["silver"]()
    assert first["silver_applications"][0] is not second["silver_applications"][0]


def test_bronze_critical_expectations() -> None:
    critical = _labels("bronze", critical=True)
    for table in ("applications", "outcomes", "rejected_records"):
        assert (
            f"{table}: expect_compound_columns_to_be_unique(kafka_topic, kafka_partition, "
            "kafka_offset)" in critical
        )
        assert f"{table}: expect_column_values_to_not_be_null(ingested_at)" in critical
    assert any(
        label.startswith("applications: expect_column_values_to_be_in_set(tipo_pessoa")
        for label in critical
    )
    assert (
        "applications: expect_column_values_to_be_in_set(schema_version, value_set=[1, 2])"
        in critical
    )


def test_silver_critical_expectations() -> None:
    critical = _labels("silver", critical=True)
    table = "silver_applications"
    for label in (
        "expect_column_values_to_be_unique(id_solicitacao)",
        "expect_column_values_to_not_be_null(id_solicitacao)",
        "expect_column_values_to_not_be_null(data_solicitacao)",
        f"expect_column_values_to_match_regex(cpf_cnpj_hash, regex={SHA256_HEX!r})",
        f"expect_column_values_to_match_regex(nome_hash, regex={SHA256_HEX!r})",
        "expect_column_values_to_be_between(latitude, >= -34 and <= 6)",
        "expect_column_values_to_be_between(longitude, >= -74 and <= -34)",
        "expect_column_values_to_be_between(serasa_score, >= 0 and <= 1000)",
        "expect_column_values_to_be_in_set(registro_valido, value_set=[True], mostly=0.95)",
        "expect_column_values_to_be_between(valor_solicitado_credito, > 0) "
        "where registro_valido == True",
    ):
        assert f"{table}: {label}" in critical, label
    for column in ("uf", "classificacao_propriedade", "faixa_risco_credito"):
        assert any(
            label.startswith(f"{table}: expect_column_values_to_be_in_set({column}")
            for label in critical
        ), column
    assert "silver_outcomes: expect_column_values_to_be_unique(id_solicitacao)" in critical


def test_silver_uf_set_is_the_27_ufs() -> None:
    assert len(set(UFS)) == 27
    (uf,) = [
        e
        for table, e in _all("silver")
        if table == "silver_applications"
        and e.expectation_type == "expect_column_values_to_be_in_set"
        and e.configuration.kwargs["column"] == "uf"
    ]
    assert set(uf.configuration.kwargs["value_set"]) == set(UFS)


def test_missing_scores_are_a_warning_not_a_stop() -> None:
    warnings = _labels("silver", critical=False)
    assert (
        "silver_applications: expect_column_values_to_not_be_null(serasa_score, mostly=0.9)"
        in warnings
    )
    assert not any("serasa_score, mostly" in label for label in _labels("silver", critical=True))


def test_gold_critical_expectations() -> None:
    critical = _labels("gold", critical=True)
    for label in (
        "proponente_features: expect_compound_columns_to_be_unique(proponente_id, id_solicitacao)",
        "location_features: expect_compound_columns_to_be_unique(uf, municipio)",
        "risk_features: expect_compound_columns_to_be_unique(faixa_risco_credito, "
        "cultura_principal)",
        "proponente_features: expect_column_values_to_be_between(n_solicitacoes, >= 1)",
        "proponente_features: expect_column_pair_values_a_to_be_greater_than_b"
        "(valor_max >= valor_min)",
        "location_features: expect_column_values_to_be_between(share_alto_risco, >= 0 and <= 1)",
        "risk_features: expect_column_values_to_be_between(share_juridica, >= 0 and <= 1)",
    ):
        assert label in critical, label
    for table in ("proponente_features", "location_features", "risk_features"):
        assert f"{table}: expect_table_row_count_to_be_between(>= 1)" in critical
    for column in ("perfil_frequencia", "perfil_volatilidade"):
        assert any(f"expect_column_values_to_be_in_set({column}" in label for label in critical)
    assert any("expect_column_values_to_be_in_set(densidade_proponentes" in x for x in critical)


def test_observation_of_a_mostly_expectation_gives_the_share() -> None:
    text = describe_observation(
        "expect_column_values_to_be_in_set",
        {"column": "registro_valido", "value_set": [True], "mostly": 0.95},
        {"element_count": 100, "unexpected_count": 30, "missing_count": 0,
         "partial_unexpected_list": [False, False]},
    )  # fmt: skip
    assert text == "30 of 100 non-null values unexpected; observed share 0.700, expected >= 0.95" \
        "; e.g. [False, False]"  # fmt: skip


def test_observation_of_sensitive_values_withholds_them() -> None:
    text = describe_observation(
        "expect_column_values_to_match_regex",
        {"column": "cpf_cnpj_hash", "regex": SHA256_HEX},
        {"element_count": 10, "unexpected_count": 1, "partial_unexpected_list": ["52998224725"]},
        sensitive=True,
    )
    assert "52998224725" not in text
    assert text.startswith("1 of 10 non-null values unexpected")


def test_observation_of_duplicates_and_row_counts() -> None:
    dup = describe_observation(
        "expect_column_values_to_be_unique",
        {"column": "id_solicitacao"},
        {"element_count": 100, "unexpected_count": 3, "missing_count": 0},
    )
    assert dup.startswith("3 duplicate values")
    rows = describe_observation(
        "expect_table_row_count_to_be_between", {"min_value": 1}, {"observed_value": 0}
    )
    assert rows == "0 rows (expected >= 1)"


def test_layer_schemas_and_url() -> None:
    assert layer_schema("bronze", "it_", "raw") == "raw"
    assert layer_schema("silver", "it_") == "it_silver"
    assert layer_schema("gold") == "gold"
    word = secrets.token_hex(4)  # per run; "@" and "/" must be escaped in the URL
    settings = Settings(
        trino_host="trino.example", trino_https_port=9443, trino_user="svc",
        trino_password=SecretStr(f"{word}@x/y"), trino_ca_cert="/etc/ca.pem",
    )  # fmt: skip
    assert trino_sqlalchemy_url(settings, "gold") == (
        f"trino://svc:{word}%40x%2Fy@trino.example:9443/iceberg/gold"
    )
    assert trino_sqlalchemy_connect_args(settings) == {
        "http_scheme": "https", "verify": "/etc/ca.pem"
    }  # fmt: skip


def _outcomes() -> list[ExpectationOutcome]:
    return [
        ExpectationOutcome("t", "expect_a(x)", True, True, "0 of 5", "why a"),
        ExpectationOutcome("t", "expect_b(<y>)", True, False, "2 of 5", "why b"),
        ExpectationOutcome("u", "expect_c(z)", False, False, "1 of 5", "why c"),
    ]


def test_report_names_every_expectation_and_escapes_html(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    path = write_report(
        tmp_path / "quality", layer="silver", schema="iceberg.silver", outcomes=_outcomes(),
        checked_rows={"t": 5, "u": 5}, file_stem="silver", now=now,
    )  # fmt: skip
    assert path.name == "silver-20260102T030405000000Z.html"
    assert (tmp_path / "quality" / "silver-latest.html").read_text() == path.read_text()
    page = path.read_text()
    for needle in ("expect_a(x)", "expect_b(&lt;y&gt;)", "expect_c(z)", "FAILED", "2026-01-02"):
        assert needle in page
    assert "<y>" not in page
    passing = render_report("gold", "iceberg.gold", _outcomes()[:1], {"t": 5}, now)
    assert "PASSED" in passing


def test_gate_failed_carries_the_result(tmp_path: Path) -> None:
    result = GateResult(
        layer="silver", passed=False, critical_failures=["t: expect_b failed: 2 of 5"],
        warnings=[], report_path=tmp_path / "r.html", checked_rows={"t": 5},
    )  # fmt: skip
    with pytest.raises(GateFailed, match="expect_b failed") as raised:
        result.raise_for_failure()
    assert raised.value.result is result
