"""`safra forget` and `safra retention` on the real stack: bronze of the test's own (seeded
through pyiceberg, two batches ingested at different times, plus rejected records), silver and
gold built by the real transform, Feast keys in Redis. The proof reads every snapshot still
referenced, every file under the schemas' folders (Parquet decoded with pyarrow, Avro manifests
with fastavro: compressed bytes cannot be grepped), every Redis key and every log of the data dir.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from commands.cli import app
from pipelines import erasure
from pipelines.bronze_seed import BronzeWriter, create_bronze
from pipelines.simulator import generate_applications, generate_outcomes, is_valid_tax_id
from pipelines.transform import run_transform
from quality.gate import GateResult
from safra.lakehouse import drop_schemas, iceberg_catalog, trino_cursor
from safra.pseudonyms import pseudonym, tax_id_pseudonym
from safra.settings import Settings, get_settings, temporary_environment

pytestmark = pytest.mark.stack

SEED = 20261203
NAME = "Joaquina Esquecida de Teste"
REGISTRY = "MAT-ESQUECER-4242-0917"
ABSENT_CPF = "529.982.247-25"  # a valid CPF the simulator did not draw (asserted)


def _rows(settings: Settings, sql: str) -> list[list[Any]]:
    with trino_cursor(settings, "it-erasure") as cur:
        cur.execute(sql)
        return [list(r) for r in cur.fetchall()]


def _punctuated(cpf: str) -> str:
    return erasure.punctuated(cpf)[0]


def _rejected(writer_table: Any, topic: str, offset: int, raw: bytes, at: datetime) -> None:
    import pyarrow as pa

    row = {
        "kafka_topic": topic,
        "kafka_partition": 0,
        "kafka_offset": offset,
        "kafka_timestamp": at,
        "kafka_key": b"k",
        "raw_value": raw,
        "schema_version": "9",
        "error": "undecodable Avro for application v9",
        "ingested_at": at,
    }
    writer_table.append(pa.Table.from_pylist([row], schema=writer_table.schema().as_arrow()))


@pytest.fixture(scope="module")
def world(local_stack: Settings) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    bronze, prefix = f"it_bronze_er_{tag}", f"it_er_{tag}_"
    settings = local_stack.model_copy(update={"feast_project": f"it_er_{tag}"})
    key = settings.require_pseudonym_key()
    create_bronze(settings, bronze, ("applications", "outcomes", "rejected_records"))

    start, end = datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    apps = generate_applications(240, SEED, start, end, returning_share=0.4)
    by_pid: dict[str, list[dict[str, Any]]] = {}
    for a in apps:
        by_pid.setdefault(a["proponente_id"], []).append(a)
    target = next(
        pid
        for pid, mine in by_pid.items()
        if len(mine) >= 2
        and mine[0]["tipo_pessoa"] == "FISICA"
        and all(
            is_valid_tax_id(a["cpf_cnpj"], "FISICA") and a["localizacao_propriedade"]["uf"]
            for a in mine
        )
    )
    cpf = by_pid[target][0]["cpf_cnpj"]
    assert {a["cpf_cnpj"] for a in by_pid[target]} == {cpf}
    assert sum(a["cpf_cnpj"] == cpf for a in apps) == len(by_pid[target])
    assert all(
        a["cpf_cnpj"] not in (ABSENT_CPF, ABSENT_CPF.replace(".", "").replace("-", ""))
        for a in apps
    )
    for a in by_pid[target]:
        a["nome_razao_social"] = NAME
        a["fontes_dados_adicionais"] = {
            **a["fontes_dados_adicionais"],
            "numero_matricula_imovel": REGISTRY,
        }
    other = next(pid for pid, mine in by_pid.items() if pid != target and len(mine) >= 2)
    old, new = apps[:200], apps[200:]  # two ingestion batches, the retention cut between them

    writer = BronzeWriter(settings, bronze, "applications", keep_rows=True)
    writer.append(old, [a["id_solicitacao"] for a in old])
    rejected = iceberg_catalog(settings).load_table(f"{bronze}.rejected_records")
    first_at = datetime.now(UTC)
    # raw bytes naming the target (punctuated CPF), another applicant, and no one
    _rejected(
        rejected,
        "safra.applications",
        0,
        b"\x00\x02" + _punctuated(cpf).encode() + b"\x1a",
        first_at,
    )
    _rejected(
        rejected, "safra.applications", 1, b"\x00\x02" + apps[-1]["cpf_cnpj"].encode(), first_at
    )
    time.sleep(1.5)
    cut = datetime.now(UTC)
    time.sleep(1.5)
    writer.append(new, [a["id_solicitacao"] for a in new])
    _rejected(rejected, "safra.applications", 2, b"\x00garbage", datetime.now(UTC))
    outcomes = generate_outcomes(apps, SEED)
    BronzeWriter(settings, bronze, "outcomes").append(
        outcomes, [o["id_solicitacao"] for o in outcomes]
    )
    run_transform(settings, schema_prefix=prefix, bronze_schema=bronze, gate=_passing_gate)

    redis_keys = {pid: _write_online(settings, pid) for pid in (target, other)}
    state = {
        "settings": settings,
        "key": key,
        "bronze": bronze,
        "prefix": prefix,
        "tag": tag,
        "schemas": [bronze, f"{prefix}silver", f"{prefix}gold"],
        "target": target,
        "other": other,
        "cpf": cpf,
        "apps": apps,
        "old": old,
        "new": new,
        "cut": cut,
        "outcomes": outcomes,
        "redis_keys": redis_keys,
    }
    yield state
    drop_schemas(settings, state["schemas"])
    _redis(settings).delete(*redis_keys.values())


def _passing_gate(layer: str, settings: Settings, **_: Any) -> GateResult:
    """The quality gates are not what this test is about (and take a minute)."""
    return GateResult(layer, True, [], [], settings.reports_dir, {})


def _redis(settings: Settings) -> Any:
    import redis

    return redis.Redis.from_url(settings.redis_url)


def _write_online(settings: Settings, pid: str) -> bytes:
    """The applicant's online features in Feast's layout (serialized entity key + project)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = (
        serialize_entity_key(
            EntityKey(join_keys=["proponente_id"], entity_values=[Value(string_val=pid)]), 3
        )
        + settings.feast_project.encode()
    )
    _redis(settings).hset(
        key,
        mapping={
            "_ts:proponente_historico": b"\x08\x01",
            "feat": Value(double_val=1.5).SerializeToString(),
        },
    )
    return key


def _tables(state: dict[str, Any]) -> list[tuple[str, str]]:
    listed = ", ".join(f"'{s}'" for s in state["schemas"])
    return [
        (s, t)
        for s, t in _rows(
            state["settings"],
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema in ({listed}) and table_type = 'BASE TABLE'",
        )
    ]


def _snapshots(settings: Settings, schema: str, table: str, kind: str = "snapshots") -> set[int]:
    return {
        int(r[0])
        for r in _rows(settings, f'select snapshot_id from iceberg."{schema}"."{table}${kind}"')
    }


def _counts(state: dict[str, Any]) -> dict[str, int]:
    return {
        f"{s}.{t}": _rows(state["settings"], f'select count(*) from iceberg."{s}"."{t}"')[0][0]
        for s, t in _tables(state)
    }


def _identity(state: dict[str, Any]) -> list[str]:
    """Everything that names the target: raw identity, ids and pseudonyms."""
    cpf, key = state["cpf"], state["key"]
    return [
        cpf,
        _punctuated(cpf),
        NAME,
        REGISTRY,
        state["target"],
        tax_id_pseudonym(cpf, key),
        pseudonym(NAME, key),
        pseudonym(REGISTRY, key),
    ]


def _referenced_rows_holding(state: dict[str, Any], needles: list[str]) -> list[str]:
    """Tables and snapshots (current and every ref's) with a row holding one of ``needles``,
    and tables keeping snapshots no ref reaches."""
    settings, found = state["settings"], []
    for schema, table in _tables(state):
        refs = _snapshots(settings, schema, table, "refs")
        if _snapshots(settings, schema, table) != refs:
            found.append(f"{schema}.{table}: unreferenced snapshots kept")
        for snapshot in refs:
            for row in _rows(
                settings, f'select * from iceberg."{schema}"."{table}" for version as of {snapshot}'
            ):
                text = repr(row)
                hit = [
                    n
                    for n in needles
                    if n in text or n.encode() in b"".join(v for v in row if isinstance(v, bytes))
                ]
                if hit:
                    found.append(f"{schema}.{table}@{snapshot}: {hit}")
    return found


def _files_holding(state: dict[str, Any], needles: list[str]) -> list[str]:
    """Files under the schemas' folders holding a needle, decoded (Parquet, Avro) and raw."""
    import fastavro
    import pyarrow.parquet as pq

    warehouse = Path(state["settings"].iceberg_warehouse.removeprefix("file://"))
    found = []
    for schema in state["schemas"]:
        for path in (warehouse / schema).rglob("*"):
            if not path.is_file():
                continue
            raw = path.read_bytes()
            texts = [raw.decode("latin-1")]
            if path.suffix == ".parquet":
                texts.append(repr(pq.read_table(path).to_pylist()))
            elif path.suffix == ".avro":
                with path.open("rb") as f:
                    texts.append(repr(list(fastavro.reader(f))))
            elif path.name.endswith(".gz.metadata.json"):
                texts.append(gzip.decompress(raw).decode())
            hit = [n for n in needles if any(n in t for t in texts)]
            if hit:
                found.append(f"{path}: {hit}")
    return found


def _logs_holding(settings: Settings, needles: list[str]) -> list[str]:
    found = []
    for path in settings.data_dir.rglob("*"):
        if path.is_file() and (path.suffix in (".log", ".jsonl") or "logs" in path.parts):
            text = path.read_bytes().decode("latin-1")
            found += [f"{path}: {n}" for n in needles if n in text]
    return found


def test_forget_of_an_unknown_person_changes_nothing(world: dict[str, Any]) -> None:
    settings = world["settings"]
    before = {t: _snapshots(settings, *t) for t in _tables(world)}
    for request in ({"cpf": ABSENT_CPF}, {"proponente_id": str(uuid.UUID(int=7))}):
        report = erasure.forget(
            settings, schema_prefix=world["prefix"], bronze_schema=world["bronze"], **request
        )
        assert report.found is False and report.tables == [] and report.rows == 0
    # the command: the CPF from stdin (off the command line), exit 3, a JSON report
    env = {
        "SAFRA_SCHEMA_PREFIX": world["prefix"],
        "SAFRA_BRONZE_SCHEMA": world["bronze"],
        "SAFRA_FEAST_PROJECT": settings.feast_project,
    }
    with temporary_environment(env):
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(
                app, ["forget", "--cpf", "-", "--json"], input=ABSENT_CPF + "\n"
            )
        finally:
            get_settings.cache_clear()
    assert result.exit_code == erasure.NOT_FOUND_EXIT, result.output
    assert json.loads(result.output[result.output.index("{") :])["found"] is False
    assert {t: _snapshots(settings, *t) for t in _tables(world)} == before
    assert _redis(settings).exists(*world["redis_keys"].values()) == 2


def test_a_malformed_request_names_the_fix(world: dict[str, Any]) -> None:
    with pytest.raises(erasure.ErasureError, match="11 digits"):
        erasure.forget(world["settings"], cpf="123")
    with pytest.raises(erasure.ErasureError, match="exactly one"):
        erasure.forget(world["settings"], cpf=world["cpf"], proponente_id=world["target"])


def test_forget_erases_one_applicant_everywhere(world: dict[str, Any]) -> None:
    settings, target, bronze, prefix = (
        world["settings"],
        world["target"],
        world["bronze"],
        world["prefix"],
    )
    silver = f"{prefix}silver"
    mine_apps = [a for a in world["apps"] if a["proponente_id"] == target]
    mine_ids = {a["id_solicitacao"] for a in mine_apps}
    mine_outcomes = [o for o in world["outcomes"] if o["id_solicitacao"] in mine_ids]
    gold_rows = _rows(
        settings,
        f'select count(*) from iceberg."{prefix}gold".proponente_features '
        f"where proponente_id = '{target}'",
    )[0][0]
    assert gold_rows == len(mine_apps)  # all valid: the target is in every layer
    # a published tag on silver's current snapshot (write-audit-publish), a quarantine tag on
    # bronze's first batch (it holds the target), a tag on bronze's empty first snapshot
    apps_table = iceberg_catalog(settings).load_table(f"{silver}.silver_applications")
    apps_table.manage_snapshots().create_tag(
        apps_table.current_snapshot().snapshot_id, "published"
    ).commit()
    bronze_apps = iceberg_catalog(settings).load_table(f"{bronze}.applications")
    history = sorted(bronze_apps.snapshots(), key=lambda s: s.timestamp_ms)
    manage = bronze_apps.manage_snapshots()
    manage.create_tag(history[1].snapshot_id, "quarantine-batch-1")
    manage.create_tag(history[0].snapshot_id, "before-anything").commit()
    counts = _counts(world)

    report = erasure.forget(
        settings, cpf=_punctuated(world["cpf"]), schema_prefix=prefix, bronze_schema=bronze
    )

    assert report.found
    rows = {t.table: t.rows for t in report.tables}
    assert rows == {
        f"{bronze}.applications": len(mine_apps),
        f"{bronze}.outcomes": len(mine_outcomes),
        f"{bronze}.rejected_records": 1,
        f"{silver}.silver_applications": len(mine_apps),
        f"{silver}.silver_outcomes": len(mine_outcomes),
        f"{prefix}gold.proponente_features": gold_rows,
    }
    refs = {t.table: (t.refs_moved, t.refs_removed) for t in report.tables}
    assert refs[f"{silver}.silver_applications"] == (["published"], [])
    assert refs[f"{bronze}.applications"] == ([], ["quarantine-batch-1"])
    assert "before-anything" in {
        r[0] for r in _rows(settings, f'select name from iceberg."{bronze}"."applications$refs"')
    }
    published = _rows(
        settings,
        f'select snapshot_id from iceberg."{silver}".'
        "\"silver_applications$refs\" where name = 'published'",
    )
    assert (
        published[0][0]
        == _rows(
            settings,
            f'select snapshot_id from iceberg."{silver}".'
            "\"silver_applications$refs\" where name = 'main'",
        )[0][0]
    )
    # the others are untouched: exactly the target's rows are gone, aggregates keep their rows
    after = _counts(world)
    assert {t: counts[t] - after[t] for t in counts if counts[t] != after[t]} == rows
    assert report.redis_keys_deleted == 1
    assert _redis(settings).exists(world["redis_keys"][target]) == 0
    assert _redis(settings).exists(world["redis_keys"][world["other"]]) == 1

    needles = _identity(world)
    assert _referenced_rows_holding(world, needles) == []
    held = _files_holding(world, needles)
    assert held == []
    client = _redis(settings)
    assert [k for k in client.scan_iter(count=1000) if target.encode() in k] == []
    assert _logs_holding(settings, needles[:4]) == []
    audit = [json.loads(line) for line in erasure.audit_path(settings).read_text().splitlines()]
    assert audit[-1]["request_id"] == report.request_id and audit[-1]["rows"] == report.rows
    assert not any(n in erasure.audit_path(settings).read_text() for n in needles)
    assert erasure.audit_path(settings).stat().st_mode & 0o777 == 0o600


def test_retention_nulls_raw_identity_older_than_the_cut(world: dict[str, Any]) -> None:
    settings, bronze, prefix = world["settings"], world["bronze"], world["prefix"]
    table = f'iceberg."{bronze}".applications'
    raw = (
        "cpf_cnpj is not null or nome_razao_social is not null "
        "or fontes_dados_adicionais.numero_matricula_imovel is not null"
    )
    old_with_raw = len([a for a in world["old"] if a["proponente_id"] != world["target"]])
    new_n = len([a for a in world["new"] if a["proponente_id"] != world["target"]])
    cut = world["cut"]
    assert _rows(settings, f"select count(*) from {table} where {raw}")[0][0] == (
        old_with_raw + new_n
    )
    hashes = _rows(
        settings, f'select count(cpf_cnpj_hash) from iceberg."{prefix}silver".silver_applications'
    )[0][0]

    report = erasure.apply_retention(
        settings, 30, schema_prefix=prefix, bronze_schema=bronze, now=cut + timedelta(days=30)
    )

    assert {t.table: t.rows for t in report.tables} == {
        f"{bronze}.applications": old_with_raw,
        f"{bronze}.rejected_records": 1,
    }
    stamp = f"from_iso8601_timestamp('{cut.isoformat()}')"
    assert (
        _rows(settings, f"select count(*) from {table} where ingested_at < {stamp} and ({raw})")[0][
            0
        ]
        == 0
    )
    assert _rows(settings, f"select count(*) from {table} where ingested_at < {stamp}")[0][0] == (
        old_with_raw
    )  # rows stay, their raw identity goes
    assert (
        _rows(
            settings,
            f"select count(*) from {table} where ingested_at >= {stamp} "
            "and cpf_cnpj is not null and nome_razao_social is not null "
            "and fontes_dados_adicionais.numero_matricula_imovel is not null",
        )[0][0]
        == new_n
    )
    scores = sum(
        a["fontes_dados_adicionais"]["serasa_score"] is not None
        for a in world["old"]
        if a["proponente_id"] != world["target"]
    )
    assert (
        _rows(
            settings,
            f"select count(fontes_dados_adicionais.serasa_score) from {table} "
            f"where ingested_at < {stamp}",
        )[0][0]
        == scores
    )  # the struct's rest
    assert (
        _rows(
            settings,
            f'select count(cpf_cnpj_hash) from iceberg."{prefix}silver".silver_applications',
        )[0][0]
        == hashes
    )  # pseudonyms stay
    # no referenced snapshot, file or log holds an old applicant's raw identity
    new_people = {a["proponente_id"] for a in world["new"]}
    old_only = [
        a
        for a in world["old"]
        if a["proponente_id"] not in new_people and a["proponente_id"] != world["target"]
    ]
    needles = sorted(
        {a["cpf_cnpj"] for a in old_only}
        | {a["fontes_dados_adicionais"]["numero_matricula_imovel"] for a in old_only}
    )
    assert len(needles) > 50
    assert _referenced_rows_holding({**world, "schemas": [bronze]}, needles) == []
    assert _files_holding({**world, "schemas": [bronze]}, needles) == []
    again = erasure.apply_retention(
        settings, 30, schema_prefix=prefix, bronze_schema=bronze, now=cut + timedelta(days=30)
    )
    assert again.tables == []  # idempotent
