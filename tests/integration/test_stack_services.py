"""Each real service of the local stack does its job: Kafka, Iceberg (3 engines), MLflow, Redis."""

from __future__ import annotations

import time
import uuid

import pyarrow as pa
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from safra.kafka_clients import client_config
from safra.lakehouse import iceberg_catalog, spark_session, trino_query
from safra.settings import Settings

pytestmark = pytest.mark.stack


def test_kafka_message_is_consumed_back(local_stack: Settings) -> None:
    topic = f"it-roundtrip-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_config(local_stack))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
        timeout=30
    )
    producer = Producer(client_config(local_stack, **{"enable.idempotence": True}))
    payloads = [f"application-{i}".encode() for i in range(10)]
    for i, payload in enumerate(payloads):
        producer.produce(topic, key=str(i).encode(), value=payload)
    assert producer.flush(30) == 0

    consumer = Consumer(
        client_config(local_stack, **{"group.id": f"it-{topic}", "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < len(payloads) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
    finally:
        consumer.close()
    assert got == payloads


def test_one_iceberg_table_three_engines(local_stack: Settings) -> None:
    """Created with pyiceberg, appended by Spark, counted by Trino: the same rows."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import DoubleType, LongType, NestedField, StringType

    namespace, name = "it_engines", f"t_{uuid.uuid4().hex[:8]}"
    catalog = iceberg_catalog(local_stack)
    catalog.create_namespace_if_not_exists(namespace)
    table = catalog.create_table(
        f"{namespace}.{name}",
        Schema(
            NestedField(1, "id", LongType(), required=False),
            NestedField(2, "uf", StringType(), required=False),
            NestedField(3, "valor", DoubleType(), required=False),
        ),
    )
    rows = [{"id": 1, "uf": "MT", "valor": 1000.0}, {"id": 2, "uf": "PR", "valor": 2500.5}]
    table.append(pa.Table.from_pylist(rows, schema=table.schema().as_arrow()))

    spark = spark_session("it-three-engines", local_stack)
    spark.sql(
        f"INSERT INTO {local_stack.iceberg_catalog}.{namespace}.{name} "
        "VALUES (3, 'GO', 40.25), (4, 'MT', 9.25), (5, 'BA', 100.0)"
    )

    trino_rows = trino_query(
        local_stack, f"SELECT id, uf, valor FROM {namespace}.{name} ORDER BY id"
    )
    assert trino_rows == [
        [1, "MT", 1000.0],
        [2, "PR", 2500.5],
        [3, "GO", 40.25],
        [4, "MT", 9.25],
        [5, "BA", 100.0],
    ]
    assert len(table.refresh().scan().to_arrow()) == 5  # pyiceberg sees Spark's commit too


def test_mlflow_run_model_and_alias(local_stack: Settings, tmp_path) -> None:
    import mlflow
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(local_stack.mlflow_tracking_uri)
    mlflow.set_experiment("it-foundation")
    name = f"it-model-{uuid.uuid4().hex[:8]}"
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("auc", 0.91)
        model = LogisticRegression().fit(x, y)
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    client = MlflowClient(local_stack.mlflow_tracking_uri)
    assert client.get_run(run.info.run_id).data.metrics["auc"] == 0.91
    version = info.registered_model_version
    client.set_registered_model_alias(name, "champion", version)
    resolved = client.get_model_version_by_alias(name, "champion")
    assert resolved.version == str(version)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert list(loaded.predict(np.array([[0.0], [3.0]]))) == [0, 1]


def test_redis_write_read_back(local_stack: Settings) -> None:
    import redis

    client = redis.Redis.from_url(local_stack.redis_url, socket_timeout=5)
    key = f"it:{uuid.uuid4().hex}"
    client.set(key, "proponente-42", ex=60)
    assert client.get(key) == b"proponente-42"
    client.delete(key)
    assert client.get(key) is None


def test_catalog_takes_concurrent_commits(local_stack: Settings) -> None:
    """Several writers committing at once (ingestion, dbt, tests) never see SQLITE_BUSY."""
    from concurrent.futures import ThreadPoolExecutor

    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    namespace = f"it_concurrent_{uuid.uuid4().hex[:8]}"
    iceberg_catalog(local_stack).create_namespace(namespace)

    def writer(i: int) -> int:
        catalog = iceberg_catalog(local_stack)
        table = catalog.create_table(
            f"{namespace}.t{i}", Schema(NestedField(1, "id", LongType(), required=False))
        )
        for k in range(3):
            table.append(pa.Table.from_pylist([{"id": k}], schema=table.schema().as_arrow()))
        return len(table.refresh().scan().to_arrow())

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(writer, range(6))) == [3] * 6
