"""The producer against the real local Kafka: what is sent is exactly what a consumer reads."""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.producer import ProduceError, ProduceReport, produce
from pipelines.topics import ensure_topics
from safra import contracts
from safra.contracts import ContractError
from safra.kafka_clients import client_config
from safra.settings import Settings

pytestmark = pytest.mark.stack

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 7, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Read:
    partition: int
    key: bytes
    value: bytes
    headers: dict[str, bytes]


@pytest.fixture
def topics(local_stack: Settings) -> Iterator[list[str]]:
    """A factory list of unique topic names; every name handed out is deleted afterwards."""
    made: list[str] = []
    yield made
    if made:
        admin = AdminClient(client_config(local_stack))
        for future in admin.delete_topics(made, operation_timeout=30).values():
            with contextlib.suppress(KafkaException):  # never created: nothing to clean
                future.result()


def new_topic(topics: list[str], what: str) -> str:
    name = f"safra.test.producer.{what}.{uuid.uuid4().hex[:10]}"
    topics.append(name)
    return name


def read_all(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[Read]:
    """Every message of ``topic``, up to its high watermarks at the time of the call."""
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"safra-test-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            },
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        ends = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        reads: list[Read] = []
        done = {p: False for p in ends}
        while not all(done.values()):
            message = consumer.poll(timeout_s)
            assert message is not None, f"no message within {timeout_s}s; read {len(reads)}"
            assert message.error() is None, message.error()
            reads.append(
                Read(
                    partition=message.partition(),
                    key=message.key(),
                    value=message.value(),
                    headers=dict(message.headers() or []),
                )
            )
            if message.offset() + 1 >= ends[message.partition()]:
                done[message.partition()] = True
        return reads
    finally:
        consumer.close()


@pytest.fixture
def backfill(local_stack: Settings, topics: list[str]) -> tuple[ProduceReport, list[Read]]:
    """200 applications + 5 duplicates + 3 poison, and their outcomes, read back."""
    report = produce(
        local_stack,
        count=200,
        seed=42,
        start=START,
        end=END,
        duplicates=5,
        poison=3,
        topic_applications=new_topic(topics, "apps"),
        topic_outcomes=new_topic(topics, "outcomes"),
    )
    return report, read_all(local_stack, report.topic_applications)


def test_every_message_arrives_exactly_once(
    backfill: tuple[ProduceReport, list[Read]],
) -> None:
    report, reads = backfill
    assert (report.applications, report.duplicates, report.poison) == (200, 5, 3)
    assert len(reads) == 208
    assert report.delivered == 208 + report.outcomes
    assert report.failed == 0
    assert len(report.application_ids) == len(set(report.application_ids)) == 200


def test_values_decode_with_the_header_version_and_keys_are_application_ids(
    backfill: tuple[ProduceReport, list[Read]],
) -> None:
    report, reads = backfill
    ids = set(report.application_ids)
    decoded_keys = []
    poison = []
    for read in reads:
        assert read.headers["schema.subject"] == b"application"
        assert read.headers["schema.version"] == b"2"
        if read.key.startswith(b"poison-"):
            poison.append(read)
            continue
        record = contracts.decode(read.value, int(read.headers["schema.version"]), "application")
        assert record["id_solicitacao"] == read.key.decode()
        decoded_keys.append(read.key.decode())
    assert set(decoded_keys) == ids
    assert len(decoded_keys) == 205
    assert len(poison) == 3
    for read in poison:
        with pytest.raises(ContractError, match="undecodable"):
            contracts.decode(read.value, 2, "application")


def test_duplicates_repeat_key_and_bytes_on_the_same_partition(
    backfill: tuple[ProduceReport, list[Read]],
) -> None:
    _, reads = backfill
    by_key: dict[bytes, list[Read]] = {}
    for read in reads:
        by_key.setdefault(read.key, []).append(read)
    repeated = {key: copies for key, copies in by_key.items() if len(copies) > 1}
    assert sum(len(copies) - 1 for copies in repeated.values()) == 5
    for copies in repeated.values():
        assert len({(c.partition, c.value) for c in copies}) == 1


def test_outcomes_known_by_the_end_are_keyed_by_their_application(
    local_stack: Settings, backfill: tuple[ProduceReport, list[Read]]
) -> None:
    report, _ = backfill
    outcomes = read_all(local_stack, report.topic_outcomes)
    assert 0 < report.outcomes < 200  # the rest are not known by END yet
    assert len(outcomes) == report.outcomes
    end_ms = int(END.timestamp() * 1000)
    for read in outcomes:
        assert read.headers == {"schema.subject": b"outcome", "schema.version": b"1"}
        record = contracts.decode(read.value, 1, "outcome")
        assert record["id_solicitacao"] == read.key.decode()
        assert read.key.decode() in report.application_ids
        assert record["data_desfecho"] < end_ms


def test_same_seed_same_bytes(local_stack: Settings, topics: list[str]) -> None:
    def run() -> list[tuple[int, bytes, bytes]]:
        report = produce(
            local_stack,
            count=120,
            seed=7,
            start=START,
            end=END,
            duplicates=2,
            poison=1,
            with_outcomes=False,
            topic_applications=new_topic(topics, "seed"),
        )
        reads = read_all(local_stack, report.topic_applications)
        assert len(reads) == 123
        return sorted((r.partition, r.key, r.value) for r in reads)

    first, second = run(), run()
    assert first == second
    other = produce(
        local_stack,
        count=120,
        seed=8,
        start=START,
        end=END,
        with_outcomes=False,
        topic_applications=new_topic(topics, "seed"),
    )
    assert set(other.application_ids).isdisjoint(key.decode() for _, key, _ in first)


def test_v1_messages_read_with_the_v2_reader(local_stack: Settings, topics: list[str]) -> None:
    report = produce(
        local_stack,
        count=50,
        seed=3,
        start=START,
        end=END,
        schema_version=1,
        with_outcomes=False,
        topic_applications=new_topic(topics, "v1"),
    )
    reads = read_all(local_stack, report.topic_applications)
    assert len(reads) == 50
    assert {r.key.decode() for r in reads} == set(report.application_ids)
    for read in reads:
        assert read.headers["schema.version"] == b"1"
        record = contracts.decode(read.value, int(read.headers["schema.version"]), "application")
        assert record["prazo_meses"] == 12
        assert record["id_solicitacao"] == ""  # v1 has no id: it travels in the key
        assert record["metadata_evento"]["versao_schema"] == "1"
        with pytest.raises(ContractError):  # written with v1, not v2
            contracts.decode(read.value, 2, "application")


def test_live_mode_paces_applications_and_sends_no_outcomes(
    local_stack: Settings, topics: list[str]
) -> None:
    report = produce(
        local_stack,
        count=20,
        seed=5,
        rate=40.0,
        topic_applications=new_topic(topics, "live"),
        topic_outcomes=new_topic(topics, "live-outcomes"),
    )
    assert report.applications == 20 and report.outcomes == 0
    assert report.seconds >= 19 / 40.0 * 0.9  # paced, not a burst
    records = [
        contracts.decode(r.value, 2, "application")
        for r in read_all(local_stack, report.topic_applications)
    ]
    when = sorted(r["data_solicitacao"] for r in records)
    assert when[-1] - when[0] == pytest.approx(19 * 25, abs=2)
    now_ms = datetime.now(UTC).timestamp() * 1000
    assert now_ms - 60_000 < when[0] <= now_ms


def test_interrupt_flushes_what_was_sent(local_stack: Settings, topics: list[str]) -> None:
    seen: list[int] = []

    def interrupt(sent: int) -> None:
        seen.append(sent)
        if sent == 1_000:
            raise KeyboardInterrupt

    report = produce(
        local_stack,
        count=3_000,
        seed=9,
        start=START,
        end=END,
        topic_applications=new_topic(topics, "interrupt"),
        topic_outcomes=new_topic(topics, "interrupt-outcomes"),
        progress=interrupt,
    )
    assert report.interrupted
    assert seen == [1_000]
    assert report.applications == len(report.application_ids) == 1_000
    assert report.delivered == report.messages == 1_000 and report.outcomes == 0
    reads = read_all(local_stack, report.topic_applications)
    assert sorted(r.key.decode() for r in reads) == sorted(report.application_ids)


def test_progress_is_reported_every_thousand_messages(
    local_stack: Settings, topics: list[str]
) -> None:
    seen: list[int] = []
    report = produce(
        local_stack,
        count=2_500,
        seed=4,
        start=START,
        end=END,
        with_outcomes=False,
        topic_applications=new_topic(topics, "progress"),
        progress=seen.append,
    )
    assert seen == [1_000, 2_000, 2_500]
    assert report.messages == 2_500


def test_a_broker_rejection_raises_instead_of_dropping(
    local_stack: Settings, topics: list[str]
) -> None:
    topic = new_topic(topics, "tiny")
    admin = AdminClient(client_config(local_stack))
    futures = admin.create_topics(
        [
            NewTopic(
                topic, num_partitions=1, replication_factor=1, config={"max.message.bytes": "64"}
            )
        ]
    )
    futures[topic].result(timeout=30)
    with pytest.raises(ProduceError, match="failed delivery") as caught:
        produce(
            local_stack,
            count=10,
            seed=1,
            start=START,
            end=END,
            with_outcomes=False,
            topic_applications=topic,
            config={"compression.type": "none"},
            flush_timeout_s=30,
        )
    report = caught.value.report
    assert report.failed > 0 and report.delivered + report.failed <= report.messages
    assert report.first_error is not None


def test_ensure_topics_is_idempotent(local_stack: Settings, topics: list[str]) -> None:
    name = new_topic(topics, "ensure")
    assert ensure_topics(local_stack, [name]) == [name]
    assert ensure_topics(local_stack, [name]) == []
    admin = AdminClient(client_config(local_stack))
    assert len(admin.list_topics(name, timeout=10).topics[name].partitions) == 3
    assert Counter(r.key for r in read_all(local_stack, name)) == Counter()
