"""The Kafka topics of the pipelines: created when missing (the producer and ingestion both may
come first)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from safra.kafka_clients import client_config
from safra.settings import Settings

logger = logging.getLogger(__name__)


def ensure_topics(
    settings: Settings,
    topics: Iterable[str],
    partitions: int = 3,
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the ``topics`` that do not exist yet; return those created. Idempotent."""
    wanted = sorted(set(topics))
    admin = AdminClient(client_config(settings))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [t for t in wanted if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(t, num_partitions=partitions, replication_factor=replication_factor)
            for t in missing
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(topic)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # created meanwhile by someone else: fine
            raise
    if created:
        logger.info("created topics %s (%d partitions)", created, partitions)
    return created
