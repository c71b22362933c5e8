"""Nobody else on the machine reads Safra's data or its secrets: after every service has written
(Kafka, Iceberg through pyiceberg, Spark and Trino, MLflow, Redis), no file or folder under the
data folder is open to group or others, and no secret appears on a service's command line."""

from __future__ import annotations

import secrets
import time
import uuid

import psutil
import pyarrow as pa
import pytest

from commands import stack
from commands.stack.services import SPECS
from safra.kafka_clients import client_config
from safra.lakehouse import driver_jvm_pid, iceberg_catalog, spark_session, trino_query
from safra.private_files import readable_by_others
from safra.settings import Settings

pytestmark = pytest.mark.stack

SECRET_FIELDS = (
    "redis_password", "kafka_password", "pseudonym_key", "api_key", "mlflow_password",
    "mlflow_api_password", "mlflow_admin_password", "model_signing_key", "airflow_jwt_secret",
)  # fmt: skip


def _secrets(s: Settings) -> dict[str, str]:
    values = {f: getattr(s, f) for f in SECRET_FIELDS}
    out = {f: v.get_secret_value() for f, v in values.items() if v is not None}
    return {f: v for f, v in out.items() if v}


def _write_through_every_service(s: Settings) -> None:
    from confluent_kafka import Producer

    producer = Producer(client_config(s))
    producer.produce(f"it-private-{uuid.uuid4().hex[:8]}", value=b"cpf 529.982.247-25")
    assert producer.flush(30) == 0

    namespace, name = "it_private", f"t_{uuid.uuid4().hex[:8]}"
    catalog = iceberg_catalog(s)
    catalog.create_namespace_if_not_exists(namespace)
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    table = catalog.create_table(
        f"{namespace}.{name}", Schema(NestedField(1, "id", LongType(), required=False))
    )
    table.append(pa.Table.from_pylist([{"id": 1}], schema=table.schema().as_arrow()))
    spark_session("it-private", s).sql(f"INSERT INTO {namespace}.{name} VALUES (2)")
    trino_query(s, f"INSERT INTO {namespace}.{name} VALUES (3)")
    assert trino_query(s, f"SELECT count(*) FROM {namespace}.{name}") == [[3]]

    import mlflow

    mlflow.set_tracking_uri(s.mlflow_tracking_uri)
    mlflow.set_experiment("it-private")
    with mlflow.start_run():
        mlflow.log_text("an artifact", "notes/private.txt")

    import redis

    client = redis.Redis.from_url(s.redis_url, socket_timeout=5)
    client.set(f"it:private:{uuid.uuid4().hex}", "proponente-42", ex=60)


def test_nothing_under_the_data_folder_is_open_to_others(local_stack: Settings) -> None:
    _write_through_every_service(local_stack)
    opened = readable_by_others(local_stack.data_dir)
    assert opened == [], f"{len(opened)} entries open to group/others, e.g. {opened[:10]}"


def _command_lines(s: Settings) -> dict[str, list[str]]:
    """The command line (``/proc/<pid>/cmdline``) of every process the stack started, its
    children included, and of this session's Spark driver."""
    sup = stack.supervisor(s)
    lines: dict[str, list[str]] = {}
    for name in SPECS:
        proc = sup.process(name)
        if proc is None:
            continue
        for p in [proc, *proc.children(recursive=True)]:
            try:
                lines[f"{name} pid {p.pid}"] = p.cmdline()
            except psutil.Error:  # ended meanwhile
                continue
    spark_pid = driver_jvm_pid(spark_session("it-private", s))
    if spark_pid is not None:
        lines[f"spark driver pid {spark_pid}"] = psutil.Process(spark_pid).cmdline()
    return lines


def test_no_secret_on_any_command_line(local_stack: Settings) -> None:
    secrets = _secrets(local_stack)
    assert {"redis_password", "pseudonym_key", "mlflow_admin_password"} <= set(secrets)
    lines = _command_lines(local_stack)
    assert {n.split(" pid")[0] for n in lines} >= {*local_stack.local_services, "spark driver"}
    leaks = [
        f"{field} in the command line of {who}"
        for who, argv in lines.items()
        for field, value in secrets.items()
        if value in "\0".join(argv)
    ]
    assert leaks == []


def test_kafka_refuses_a_client_without_safras_credentials(local_stack: Settings) -> None:
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    assert AdminClient(client_config(local_stack)).list_topics(timeout=10).brokers
    plaintext = {"bootstrap.servers": local_stack.kafka_bootstrap}
    with pytest.raises(KafkaException, match="(?i)broker transport failure"):
        AdminClient(plaintext).list_topics(timeout=5)
    wrong = client_config(local_stack, **{"sasl.password": secrets.token_urlsafe(12)})
    errors: list[str] = []
    producer = Producer({**wrong, "error_cb": lambda e: errors.append(e.str())})
    deadline = time.monotonic() + 15
    while not errors and time.monotonic() < deadline:
        producer.poll(0.5)  # serves the error callback
    assert any("Authentication failed: Invalid username or password" in e for e in errors), errors
