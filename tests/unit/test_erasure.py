"""The pure pieces of pipelines.erasure: written forms of a tax id, the bronze bucket, Feast's
Redis keys, the retention's SQL for a struct field, what names a person in raw bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from pipelines import erasure
from safra.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_punctuated_forms_of_a_cpf_and_a_cnpj() -> None:
    assert erasure.punctuated("52998224725") == ["529.982.247-25"]
    assert erasure.punctuated("11222333000181") == ["11.222.333/0001-81"]
    assert erasure.punctuated("123") == []


def test_the_bronze_bucket_names_thousands_of_cpfs_not_one() -> None:
    bucket = erasure.tax_id_bucket("52998224725")
    assert bucket == hashlib.sha256(b"52998224725").hexdigest()[:4]
    assert 16**erasure.BUCKET_HEX == 65_536  # ~15,000 valid CPFs (10^9) share each bucket


def test_feast_keys_are_the_redis_online_stores_own(tmp_path: Path) -> None:
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    config = yaml.safe_load((REPO / "feature_repo" / "feature_store.yaml").read_text())
    assert config["entity_key_serialization_version"] == erasure.FEAST_ENTITY_KEY_SERIALIZATION
    settings = Settings(data_dir=tmp_path, feast_project="proj")
    entity = EntityKey(join_keys=["proponente_id"], entity_values=[Value(string_val="p-1")])
    assert erasure.feast_keys(settings, ["p-1", "p-1"]) == [_redis_key("proj", entity, 3)]


def test_retention_sets_the_whole_struct_with_the_registry_field_null() -> None:
    struct = (
        "row(serasa_score integer, ibama_autuacoes_ativas boolean, numero_matricula_imovel varchar)"
    )
    change = erasure._retention_change(
        {"cpf_cnpj": "varchar", "nome_razao_social": "varchar", "fontes_dados_adicionais": struct}
    )
    assert change is not None
    sets, left = change
    assert sets == (
        "cpf_cnpj = NULL, nome_razao_social = NULL, fontes_dados_adicionais = CASE WHEN "
        "fontes_dados_adicionais IS NULL THEN NULL ELSE CAST(ROW(fontes_dados_adicionais."
        f"serasa_score, fontes_dados_adicionais.ibama_autuacoes_ativas, NULL) AS {struct}) END"
    )
    assert left == (
        "cpf_cnpj IS NOT NULL OR nome_razao_social IS NOT NULL OR "
        "fontes_dados_adicionais.numero_matricula_imovel IS NOT NULL"
    )
    assert erasure._retention_change({"raw_value": "varbinary"}) == (
        "raw_value = NULL",
        "raw_value IS NOT NULL",
    )
    assert erasure._retention_change({"proponente_id": "varchar"}) is None  # outcomes: nothing raw


def test_a_persons_needles_and_predicates() -> None:
    person = erasure.Person(
        proponente_ids={"p-0000001"},
        tax_ids={"52998224725"},
        application_ids={"a-1'x"},
        rows={"applications": {("t", 1, 7)}},
    )
    assert set(person.needles()) == {b"52998224725", b"529.982.247-25", b"p-0000001"}
    where = erasure._person_predicate(
        "applications",
        {c: "varchar" for c in ("proponente_id", "id_solicitacao", *erasure.KAFKA_COORDINATES)},
        person,
    )
    assert where == (
        "proponente_id IN ('p-0000001') OR id_solicitacao IN ('a-1''x') OR "
        "((kafka_topic = 't' AND kafka_partition = 1 AND kafka_offset = 7))"
    )
    assert erasure._person_predicate("location_features", {"uf": "varchar"}, person) is None


def test_the_audit_file_is_private_and_holds_no_identity(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    report = erasure._new_report("forget", "cpf")
    path = erasure.write_audit(settings, report)
    erasure.write_audit(settings, report)
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(path.read_text().splitlines()) == 2
