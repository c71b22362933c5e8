"""A smoke flow over the running stack: one real round trip through each service.

Kafka (produce, consume back), Iceberg (created by pyiceberg, appended by Spark, counted by
Trino), MLflow (a run, a registered model, an alias resolved) and Redis (a write read back).
Each check removes what it made (a topic, a table and its namespace, a registered model and an
experiment, a key), so the user's stack lists nothing of the smoke afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from safra.kafka_clients import client_config
from safra.settings import Settings

log = logging.getLogger(__name__)

SMOKE_NAMESPACE = "smoke"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


def kafka_round_trip(s: Settings) -> str:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    value = uuid.uuid4().hex.encode()
    topic = f"safra.smoke-{value.decode()[:8]}"
    producer = Producer(client_config(s, **{"enable.idempotence": True}))
    consumer = Consumer(
        client_config(
            s, **{"group.id": f"safra-smoke-{value.decode()}", "auto.offset.reset": "earliest"}
        )
    )
    try:
        producer.produce(topic, key=b"smoke", value=value)
        if producer.flush(30):
            raise RuntimeError(f"Kafka at {s.kafka_bootstrap} did not acknowledge within 30 s")
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None and msg.value() == value:
                return "message consumed back from a topic of its own (deleted)"
        raise RuntimeError(f"the message produced to {topic} was not consumed back within 60 s")
    finally:
        consumer.close()
        producer.close()  # else its metadata refresh re-creates the topic deleted below
        admin = AdminClient(client_config(s))  # held while it deletes
        for future in admin.delete_topics([topic], operation_timeout=30).values():
            try:
                future.result(timeout=30)
            except Exception as exc:  # noqa: BLE001 - say so; the check's own result stands
                log.warning("could not delete the smoke topic %s: %s", topic, exc)


def iceberg_three_engines(s: Settings) -> str:
    import pyarrow as pa
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    from safra.lakehouse import iceberg_catalog, spark_session, trino_query

    name = f"{SMOKE_NAMESPACE}.engines_{uuid.uuid4().hex[:8]}"
    catalog = iceberg_catalog(s)
    catalog.create_namespace_if_not_exists(SMOKE_NAMESPACE)
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "engine", StringType(), required=False),
    )
    table = catalog.create_table(name, schema)
    try:
        table.append(pa.Table.from_pylist([{"id": 1, "engine": "pyiceberg"}],
                                          schema=table.schema().as_arrow()))  # fmt: skip
        spark_session("safra-smoke", s).sql(
            f"INSERT INTO {s.iceberg_catalog}.{name} VALUES (2, 'spark')"
        )
        [[count]] = trino_query(s, f"SELECT count(*) FROM {name}", source="safra-smoke")
    finally:
        catalog.drop_table(name)
        with contextlib.suppress(Exception):  # another smoke run may still use it
            catalog.drop_namespace(SMOKE_NAMESPACE)
    if count != 2:
        raise RuntimeError(f"Trino counted {count} rows in {name}, expected 2")
    return "pyiceberg created, Spark appended, Trino counted 2 rows"


def mlflow_registry(s: Settings) -> str:
    from ml.registry import tracking_client

    client = tracking_client(s)  # as Safra's identity (MLflow's authentication is on)
    name = f"safra-smoke-{uuid.uuid4().hex[:8]}"
    experiment = client.create_experiment(name)
    try:
        run = client.create_run(experiment, run_name="smoke")
        client.log_metric(run.info.run_id, "ok", 1.0)
        client.set_terminated(run.info.run_id)
        client.create_registered_model(name)
        try:
            version = client.create_model_version(name, f"runs:/{run.info.run_id}", run.info.run_id)
            client.set_registered_model_alias(name, "smoke", version.version)
            resolved = client.get_model_version_by_alias(name, "smoke").version
        finally:
            client.delete_registered_model(name)
    finally:
        client.delete_experiment(experiment)
    if resolved != version.version:
        raise RuntimeError(f"alias 'smoke' resolved to {resolved}, expected {version.version}")
    return f"run logged, v{resolved} registered, alias resolved (model and experiment deleted)"


def redis_round_trip(s: Settings) -> str:
    import redis

    client = redis.Redis.from_url(s.redis_url, socket_timeout=5)
    key, value = "safra:smoke", uuid.uuid4().hex
    client.set(key, value, ex=60)
    read = client.get(key)
    client.delete(key)
    if read != value.encode():
        raise RuntimeError("Redis did not return the value just written")
    return "write read back (key deleted)"


CHECKS: dict[str, Callable[[Settings], str]] = {
    "kafka": kafka_round_trip,
    "iceberg (pyiceberg + Spark + Trino)": iceberg_three_engines,
    "mlflow": mlflow_registry,
    "redis": redis_round_trip,
}


def run_smoke(s: Settings, on_check: Callable[[Check], None] | None = None) -> list[Check]:
    """Run every check; a failure is reported with its cause and the others still run."""
    checks = []
    for name, fn in CHECKS.items():
        t0 = time.monotonic()
        try:
            check = Check(name, True, fn(s), time.monotonic() - t0)
        except Exception as exc:  # report every failure by name, keep checking the rest
            log.debug("smoke check %s failed", name, exc_info=True)
            check = Check(name, False, f"{type(exc).__name__}: {exc}", time.monotonic() - t0)
        checks.append(check)
        if on_check:
            on_check(check)
    return checks
