"""The dbt project parses without services, and every model is documented and tested."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.dbt_runner import DBT_PROJECT_DIR
from pipelines.publish import LAYER_TABLES

RULE_UNIT_TESTS = {
    "silver_applications_classificacao_propriedade_thresholds",
    "silver_applications_faixa_risco_credito_thresholds",
    "silver_applications_tax_id_check_digits",
    "silver_applications_registro_valido",
    "silver_applications_epoch_ms_and_dedup",
    "silver_outcomes_dedup_and_epoch_ms",
    "proponente_features_perfil_frequencia",
    "proponente_features_perfil_volatilidade",
    "proponente_features_history_and_outcomes",
    "location_features_densidade_thresholds",
    "location_features_mode_risk_and_defaults",
    "risk_features_exact_median",
    "risk_features_smoothed_default_rate",
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`dbt parse` (it does not connect to Trino), without the pseudonym key."""
    from dbt.cli.main import dbtRunner

    out = tmp_path_factory.mktemp("dbt")
    mp = pytest.MonkeyPatch()
    mp.delenv("SAFRA_PSEUDONYM_KEY", raising=False)
    mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    try:
        result = dbtRunner().invoke([
            "parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", str(out / "target"), "--log-path", str(out / "logs"), "--quiet",
            "--no-partial-parse",
        ])  # fmt: skip
    finally:
        mp.undo()
    assert result.success, result.exception
    return result.result


def _models(manifest: Any) -> dict[str, Any]:
    return {n.name: n for n in manifest.nodes.values() if n.resource_type == "model"}


def test_the_layers_have_their_models(manifest: Any) -> None:
    assert set(_models(manifest)) == {
        "silver_applications", "silver_outcomes",
        "proponente_features", "location_features", "risk_features",
    }  # fmt: skip
    layers = {layer: {n for n, m in _models(manifest).items() if m.fqn[1] == layer}
              for layer in LAYER_TABLES}  # fmt: skip
    assert layers == {layer: set(tables) for layer, tables in LAYER_TABLES.items()}


def test_gold_reads_silver_at_its_published_tag_only(manifest: Any) -> None:
    """Write–audit–publish: gold never reads a silver row its audit has not passed."""
    for name in LAYER_TABLES["gold"]:
        code = _models(manifest)[name].raw_code
        assert code.count("published(ref('silver_") == code.count("ref('silver_") == 2, name
    for name, node in _models(manifest).items():
        layer = node.fqn[1]
        assert node.config.schema == layer, name
        assert node.config.materialized == "incremental", name
        expected = "merge" if layer == "silver" else "delete+insert"
        assert node.config.incremental_strategy == expected, name


def test_every_model_has_its_own_yaml_beside_its_sql(manifest: Any) -> None:
    for name, node in _models(manifest).items():
        assert node.patch_path, f"{name} has no YAML"
        yaml_file = Path(node.patch_path.split("://", 1)[1])
        assert yaml_file.stem == name and yaml_file.parent == Path(node.original_file_path).parent
        assert node.description, f"{name} is not described"


def test_every_model_has_data_tests_and_a_unique_key_test(manifest: Any) -> None:
    tests_by_model: dict[str, list[str]] = {}
    for node in manifest.nodes.values():
        if node.resource_type == "test":
            for parent in node.depends_on.nodes:
                tests_by_model.setdefault(parent.split(".")[-1], []).append(node.name)
    for name in _models(manifest):
        names = tests_by_model.get(name, [])
        assert len(names) >= 5, f"{name}: {names}"
        assert any(t.startswith(("unique_", "unique_combination_")) for t in names), name
        assert any(t.startswith("not_null_") for t in names), name


def test_business_rules_have_unit_tests(manifest: Any) -> None:
    unit_tests = {u.name for u in manifest.unit_tests.values()}
    assert unit_tests >= RULE_UNIT_TESTS


def test_bands_are_checked_with_accepted_values(manifest: Any) -> None:
    checked = {
        (n.attached_node.split(".")[-1], n.column_name)
        for n in manifest.nodes.values()
        if n.resource_type == "test"
        and n.test_metadata
        and n.test_metadata.name == "accepted_values"
    }
    for pair in [
        ("silver_applications", "classificacao_propriedade"),
        ("silver_applications", "faixa_risco_credito"),
        ("proponente_features", "perfil_frequencia"),
        ("proponente_features", "perfil_volatilidade"),
        ("location_features", "densidade_proponentes"),
        ("risk_features", "faixa_risco_credito"),
    ]:
        assert pair in checked, pair


def test_sources_declare_freshness_on_ingestion_time(manifest: Any) -> None:
    sources = {s.name: s for s in manifest.sources.values()}
    assert set(sources) >= {"applications", "outcomes"}
    for source in sources.values():
        assert source.loaded_at_field == "ingested_at"
        assert source.freshness.error_after.count


def test_no_secret_or_raw_pii_in_the_project() -> None:
    texts = {p: p.read_text() for p in DBT_PROJECT_DIR.rglob("*") if p.is_file()
             and p.suffix in {".sql", ".yml"} and "target" not in p.parts}  # fmt: skip
    for path, text in texts.items():
        assert "SAFRA_PSEUDONYM_KEY=" not in text, path
        assert "env_var('SAFRA_PSEUDONYM_KEY'" not in text, path  # Trino reads the key, not dbt
    profiles = texts[DBT_PROJECT_DIR / "profiles.yml"]
    assert "env_var('SAFRA_TRINO_HOST'" in profiles
    # the password comes from the environment (dbt_runner.dbt_environment), never a literal
    assert "password: \"{{ env_var('SAFRA_TRINO_PASSWORD') }}\"" in profiles
    assert profiles.count("password") == 1
    # raw tax ids and names are read by silver_applications only, and hashed there
    for path, text in texts.items():
        if path.suffix == ".sql" and path.parent.name in {"silver", "gold"}:
            body = text.replace("pseudonymize_tax_id('cpf_cnpj')", "").replace(
                "pseudonymize('nome_razao_social')", "")  # fmt: skip
            body = body.replace("is_valid_tax_id('cpf_cnpj', 'tipo_pessoa')", "")
            assert "cpf_cnpj," not in body and "nome_razao_social" not in body, path
