"""Kafka → Iceberg bronze with the real stack: every message lands once, poison is kept aside,
old and new writer versions both land, and a crash mid-run neither loses nor repeats a row."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.bronze_seed import drop_ingested
from pipelines.checkpoint_lock import checkpoint_locks
from pipelines.ingest import plan_queries, run_ingest, select_sources
from pipelines.simulator import generate_applications, generate_outcomes
from safra.contracts import encode
from safra.kafka_clients import client_config
from safra.lakehouse import iceberg_catalog, spark_session, trino_query
from safra.settings import Settings

pytestmark = pytest.mark.stack

Headers = list[tuple[str, bytes]]
Message = tuple[bytes | None, bytes | None, Headers]  # key, value, headers


def _headers(subject: str, version: int | str | None) -> Headers:
    headers = [("schema.subject", subject.encode())]
    if version is not None:
        headers.append(("schema.version", str(version).encode()))
    return headers


def _create_topic(settings: Settings, partitions: int = 3) -> str:
    topic = f"it-ingest-{uuid.uuid4().hex[:10]}"
    admin = AdminClient(client_config(settings))
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    future[topic].result(timeout=30)
    return topic


def _produce(settings: Settings, topic: str, messages: Sequence[Message]) -> list[tuple[int, int]]:
    """Send ``messages`` in order; returns each one's (partition, offset)."""
    producer = Producer(client_config(settings, **{"enable.idempotence": True, "linger.ms": 5}))
    where: list[tuple[int, int] | None] = [None] * len(messages)
    errors: list[str] = []

    def delivered(index: int):
        def callback(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                where[index] = (msg.partition(), msg.offset())

        return callback

    for i, (key, value, headers) in enumerate(messages):
        producer.produce(topic, key=key, value=value, headers=headers, on_delivery=delivered(i))
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors
    assert all(w is not None for w in where)
    return [w for w in where if w is not None]


def _application_message(record: dict[str, Any], version: int) -> Message:
    """The message a producer of ``version`` sends; the key is the application id."""
    key = record["id_solicitacao"].encode()
    if version == 1:
        record = {k: v for k, v in record.items() if k not in ("id_solicitacao", "prazo_meses")}
        record["metadata_evento"] = {**record["metadata_evento"], "versao_schema": "1"}
    return key, encode(record, "application", version), _headers("application", version)


def _applications(n: int, seed: int) -> list[dict[str, Any]]:
    return generate_applications(n, seed=seed, start=datetime(2025, 1, 1), end=datetime(2025, 7, 1))


def _scored_request(i: int) -> dict[str, Any]:
    return {
        "id_requisicao": f"req-{i}",
        "proponente_id": f"prop-{i}",
        "requested_at": 1_760_000_000_000 + i,
        "model_name": "credit-score",
        "model_version": "3",
        "probabilidade_inadimplencia": 0.1 + i / 100,
        "score": 900 - i,
        "decisao": "APPROVE",
        "features": {"renda": 1000.0 * i, "serasa_score": None},
        "latency_ms": 4.5,
        "proponente_conhecido": i % 2 == 0,
    }


def _trino_rows(settings: Settings, sql: str) -> list[list[Any]]:
    return trino_query(settings, sql, source="it-ingest")


@pytest.fixture(scope="module")
def spark(local_stack: Settings):
    return spark_session("it-ingest", local_stack)


@pytest.fixture
def namespace(local_stack: Settings) -> Iterator[str]:
    """A bronze namespace of the test's own; its tables and checkpoints are removed after."""
    ns = f"it_bronze_{uuid.uuid4().hex[:8]}"
    yield ns
    drop_ingested(local_stack, ns)


def test_every_message_lands_once_and_poison_is_kept_aside(
    local_stack: Settings, spark, namespace: str
) -> None:
    s = local_stack
    apps_topic, outcomes_topic, scored_topic = (_create_topic(s) for _ in range(3))
    apps = _applications(300, seed=11)
    v2, v1 = apps[:250], apps[250:]  # an old producer still writes v1 on the same topic
    good = [_application_message(r, 2) for r in v2] + [_application_message(r, 1) for r in v1]
    duplicates = good[:10]  # resent by a retrying producer: same key, same bytes
    payload = good[0][1]
    poison: list[tuple[Message, str | None, str]] = [
        ((b"poison-garbage", b"\xff" * 40, _headers("application", 2)), "2", "undecodable Avro"),
        (
            (b"poison-truncated", payload[: len(payload) // 2], _headers("application", 2)),
            "2",
            "undecodable Avro for application v2",
        ),
        ((b"poison-v9", payload, _headers("application", 9)), "9", "unknown schema version '9'"),
        ((b"poison-no-version", payload, []), None, "missing schema.version header"),
    ]
    where = _produce(s, apps_topic, good + duplicates + [m for m, _, _ in poison])
    poison_where = where[len(good) + len(duplicates) :]

    outcomes = generate_outcomes(apps[:40], seed=11)
    _produce(
        s,
        outcomes_topic,
        [
            (o["id_solicitacao"].encode(), encode(o, "outcome", 1), _headers("outcome", 1))
            for o in outcomes
        ]
        + [(b"tombstone", None, _headers("outcome", 1))],
    )
    scored = [_scored_request(i) for i in range(20)]
    _produce(
        s,
        scored_topic,
        [
            (
                r["id_requisicao"].encode(),
                encode(r, "scored_request", 1),
                _headers("scored_request", 1),
            )
            for r in scored
        ]
        + [(b"wrong-subject", good[0][1], _headers("application", 1))],
    )
    topics = [
        f"applications={apps_topic}",
        f"outcomes={outcomes_topic}",
        f"scored_requests={scored_topic}",
    ]

    report = run_ingest(s, once=True, topics=topics, namespace=namespace, spark=spark)

    assert report.rows == {
        f"{namespace}.applications": 310,
        f"{namespace}.outcomes": 40,
        f"{namespace}.scored_requests": 20,
        f"{namespace}.rejected_records": 6,
    }
    ns = namespace
    [[rows, keys, coordinates]] = _trino_rows(
        s,
        f"SELECT count(*), count(DISTINCT kafka_key), "
        f"count(DISTINCT (kafka_partition, kafka_offset)) FROM {ns}.applications",
    )
    assert (rows, keys, coordinates) == (310, 300, 310)  # duplicates kept: dedup is silver's job

    landed = {
        r[0]: r[1:]
        for r in _trino_rows(
            s,
            f"SELECT kafka_key, schema_version, id_solicitacao, prazo_meses, cpf_cnpj, "
            f"data_solicitacao, tipo_pessoa, localizacao_propriedade.uf, "
            f"fontes_dados_adicionais.serasa_score, metadata_evento.timestamp_geracao_evento, "
            f"kafka_topic FROM {ns}.applications",
        )
    }
    for record in v2:
        assert landed[record["id_solicitacao"]] == [
            2,
            record["id_solicitacao"],
            record["prazo_meses"],
            record["cpf_cnpj"],
            record["data_solicitacao"],  # epoch ms, as on the wire
            record["tipo_pessoa"],
            record["localizacao_propriedade"]["uf"],
            record["fontes_dados_adicionais"]["serasa_score"],
            record["metadata_evento"]["timestamp_geracao_evento"],
            apps_topic,
        ]
    for record in v1:  # v1 rows take v2's defaults
        version, id_solicitacao, prazo, cpf = landed[record["id_solicitacao"]][:4]
        assert (version, id_solicitacao, prazo, cpf) == (1, "", 12, record["cpf_cnpj"])

    rejected = _trino_rows(
        s,
        f"SELECT kafka_partition, kafka_offset, kafka_key, raw_value, schema_version, error "
        f"FROM {ns}.rejected_records WHERE kafka_topic = '{apps_topic}' ORDER BY kafka_key",
    )
    expected = sorted(
        (
            (p, o, m[0], m[1], version, reason)
            for (m, version, reason), (p, o) in zip(poison, poison_where, strict=True)
        ),
        key=lambda e: e[2],  # by key, as the query orders
    )
    assert len(rejected) == len(expected) == 4
    for got, (partition, offset, key, value, version, reason) in zip(
        rejected, expected, strict=True
    ):
        assert got[:5] == [partition, offset, key, value, version]
        assert reason in got[5]
    other_rejects = _trino_rows(
        s,
        f"SELECT kafka_topic, error FROM {ns}.rejected_records "
        f"WHERE kafka_topic <> '{apps_topic}' ORDER BY kafka_topic",
    )
    assert sorted(other_rejects) == sorted(
        [
            [outcomes_topic, "null value (tombstone) for outcome"],
            [
                scored_topic,
                "schema.subject 'application' does not belong on this topic "
                "(expects 'scored_request')",
            ],
        ]
    )
    [[outcome_rows, defaults]] = _trino_rows(
        s, f"SELECT count(*), count_if(inadimplente) FROM {ns}.outcomes"
    )
    assert (outcome_rows, defaults) == (40, sum(o["inadimplente"] for o in outcomes))
    [[features]] = _trino_rows(
        s, f"SELECT features FROM {ns}.scored_requests WHERE id_requisicao = 'req-3'"
    )
    assert features == {"renda": 3000.0, "serasa_score": None}

    # A restart finds nothing new: nothing is written twice.
    again = run_ingest(s, once=True, topics=topics, namespace=namespace, spark=spark)
    assert again.total == 0
    # New messages after the restart: only they are added.
    more = _applications(5, seed=12)
    _produce(s, apps_topic, [_application_message(r, 2) for r in more])
    third = run_ingest(s, once=True, topics=topics[:1], namespace=namespace, spark=spark)
    assert third.rows == {f"{ns}.applications": 5, f"{ns}.rejected_records": 0}
    assert _trino_rows(s, f"SELECT count(*) FROM {ns}.applications") == [[315]]


def _ingest_process(namespace: str, topic: str, log_path) -> subprocess.Popen:
    """``safra ingest --once`` as a separate process (and session: nothing of it outlives the
    test, see the kill test's cleanup)."""
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "safra"),
            "ingest",
            "--once",
            "--namespace",
            namespace,
            "--topic",
            f"applications={topic}",
            "--max-offsets-per-trigger",
            "400",
        ],
        cwd=os.getcwd(),
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _bronze_rows(settings: Settings, identifier: str) -> int | None:
    """Rows committed to ``identifier`` so far (None while the table does not exist)."""
    catalog = iceberg_catalog(settings)
    if not catalog.table_exists(identifier):
        return None
    snapshot = catalog.load_table(identifier).current_snapshot()
    return int(snapshot.summary["total-records"] or 0) if snapshot and snapshot.summary else 0


def _data_files(settings: Settings, identifier: str) -> dict[Path, tuple[int, int, str]]:
    """The data files ``identifier`` references now: path -> (size in the manifest, size on
    disk, sha256 of the bytes on disk)."""
    files = {}
    for task in iceberg_catalog(settings).load_table(identifier).scan().plan_files():
        path = Path(task.file.file_path.removeprefix("file://").removeprefix("file:"))
        data = path.read_bytes()
        files[path] = (task.file.file_size_in_bytes, len(data), hashlib.sha256(data).hexdigest())
    return files


def test_kill_9_mid_run_then_restart_lands_each_message_exactly_once(
    local_stack: Settings, namespace: str, tmp_path
) -> None:
    """What a user does: ``kill -9`` the ingestion's driver mid-run and start it again at once.

    The restart replays the micro-batch in flight, often one the killed run had already
    committed to Iceberg (killed before Spark recorded it); its Spark JVM may outlive the driver
    for a moment. Every message still lands exactly once, and no file the table references is
    ever rewritten (a rewritten file breaks readers: Trino's "can not read class PageHeader")."""
    s = local_stack
    topic = _create_topic(s)
    messages = [_application_message(r, 2) for r in _applications(2000, seed=21)]
    _produce(s, topic, messages)
    table = f"{namespace}.applications"
    log_path = tmp_path / "ingest.log"

    first = _ingest_process(namespace, topic, log_path)
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        committed = None
        while time.monotonic() < deadline and first.poll() is None:
            committed = _bronze_rows(s, table)
            if committed:
                break
            time.sleep(0.2)
        if first.poll() is None:
            tree = psutil.Process(first.pid).children(recursive=True)
            first.send_signal(signal.SIGKILL)  # the driver only: its JVM may linger
        first.wait(30)
        assert committed, f"no commit before the kill; log:\n{log_path.read_text()[-3000:]}"
        assert first.returncode == -signal.SIGKILL, "the first run ended before it was killed"
        assert 0 < committed < 2000
        assert any("java" in p.name() for p in tree), "the killed driver had no Spark JVM"
        before = _data_files(s, table)
        assert before and all(manifest == disk for manifest, disk, _ in before.values())

        second = _ingest_process(namespace, topic, log_path)
        assert second.wait(300) == 0, log_path.read_text()[-3000:]
        # The restart began only once the killed run's JVM was gone (the checkpoint lock).
        assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    finally:
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(tree, timeout=30)

    [[rows, coordinates, keys]] = _trino_rows(
        s,
        f"SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)), "
        f"count(DISTINCT kafka_key) FROM {table}",
    )
    assert (rows, coordinates, keys) == (2000, 2000, 2000)
    assert _trino_rows(s, f"SELECT count(*) FROM {namespace}.rejected_records") == [[0]]
    after = _data_files(s, table)
    assert {path: after.get(path) for path in before} == before  # not one byte rewritten
    assert all(manifest == disk for manifest, disk, _ in after.values())

    # The restart wrote into a folder of its own (``data/run-<id>/<partition>/``), apart
    # from the killed run's.
    def run_folders(paths: Iterable[Path]) -> set[str]:
        return {next(part for part in path.parts if part.startswith("run-")) for path in paths}

    assert len(run_folders(after.keys() - before.keys()) - run_folders(before)) == 1


def test_a_second_ingestion_on_the_same_checkpoints_is_refused_naming_the_first(
    local_stack: Settings, namespace: str, tmp_path
) -> None:
    """Two runs on one checkpoint could both commit the same micro-batch: the second is refused
    before it starts Spark, and told which process holds the checkpoint."""
    topic = "it-ingest-never-created"
    chosen = select_sources(local_stack, [f"applications={topic}"])
    checkpoints = [q.checkpoint for q in plan_queries(local_stack, chosen, namespace)]
    log_path = tmp_path / "ingest.log"
    with checkpoint_locks(checkpoints, "holding-run"):
        began = time.monotonic()
        second = _ingest_process(namespace, topic, log_path)
        assert second.wait(120) == 1
        seconds = time.monotonic() - began
    output = " ".join(log_path.read_text().split())  # rich wraps long lines
    assert f"is in use by safra ingest pid {os.getpid()}, run holding-run" in output
    assert "starting Spark" not in output
    assert seconds < 60, seconds
    assert not iceberg_catalog(local_stack).namespace_exists(namespace)  # nothing was created
