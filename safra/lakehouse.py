"""The one way into the lakehouse: Trino connections and queries, the Spark session, the pyiceberg
catalog.

All three talk to the same Iceberg REST catalog, so a table created by one engine is read by the
others. Every Trino connection in Safra is opened here (:func:`trino_connection`), and the one
SQLAlchemy URL (for Great Expectations) is built here. Spark's connectors (Iceberg runtime,
Kafka, Avro) come from Maven Central through Ivy, cached under ``<cache_dir>/ivy``.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from safra.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

PUBLISHED = "published"
"""The Iceberg tag of silver and gold tables that readers downstream read: the last state whose
audit (dbt tests and quality gate) passed (``pipelines.publish``)."""


def published(table_sql: str) -> str:
    """``table_sql`` read at its :data:`PUBLISHED` tag (Trino's ``FOR VERSION AS OF``)."""
    return f"{table_sql} FOR VERSION AS OF '{PUBLISHED}'"


def spark_packages(s: Settings) -> list[str]:
    """Maven coordinates of the connectors; Kafka and Avro must match pyspark's version."""
    scala = "2.13"
    spark_minor = ".".join(s.spark_version.split(".")[:2])
    return [
        f"org.apache.iceberg:iceberg-spark-runtime-{spark_minor}_{scala}:{s.iceberg_spark_version}",
        f"org.apache.spark:spark-sql-kafka-0-10_{scala}:{s.spark_version}",
        f"org.apache.spark:spark-avro_{scala}:{s.spark_version}",
    ]


def spark_conf(s: Settings) -> dict[str, str]:
    cat = f"spark.sql.catalog.{s.iceberg_catalog}"
    return {
        "spark.master": s.spark_master,
        "spark.driver.memory": s.spark_driver_memory,
        "spark.driver.host": s.bind_host,
        "spark.driver.bindAddress": s.bind_host,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",  # progress is the CLI's job
        "spark.jars.packages": ",".join(spark_packages(s)),
        "spark.jars.ivy": str(s.cache_dir / "ivy"),
        "spark.jars.ivySettings": str(
            importlib.resources.files("safra").joinpath("resources", "ivysettings.xml")
        ),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        cat: "org.apache.iceberg.spark.SparkCatalog",
        f"{cat}.type": "rest",
        f"{cat}.uri": s.iceberg_rest_uri,
        f"{cat}.warehouse": s.iceberg_warehouse,
        "spark.sql.defaultCatalog": s.iceberg_catalog,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.local.dir": str(s.data_dir / "spark" / "tmp"),
        "spark.sql.warehouse.dir": str(s.data_dir / "spark" / "warehouse"),
        # Hadoop's file systems (checkpoints, Iceberg's data files) set each file's mode from
        # their own umask (022 by default), not the process's: private to the user, as the rest
        "spark.hadoop.fs.permissions.umask-mode": "077",
    }


def spark_session(app_name: str = "safra", settings: Settings | None = None) -> SparkSession:
    """A Spark session wired to the Iceberg catalog, with the Kafka and Avro connectors."""
    from pyspark.sql import SparkSession

    from safra.java import find_java

    s = settings or get_settings()
    os.environ.setdefault("JAVA_HOME", str(find_java(17, s.java_home, "Spark")))
    (s.data_dir / "spark" / "tmp").mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName(app_name)
    for key, value in spark_conf(s).items():
        builder = builder.config(key, value)
    log.info("starting Spark (%s); connectors cached in %s", s.spark_master, s.cache_dir / "ivy")
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def driver_jvm_pid(spark: SparkSession) -> int | None:
    """The pid of the JVM behind ``spark`` (the driver), or None for a session without one."""
    jvm = spark.sparkContext._jvm
    return None if jvm is None else int(jvm.java.lang.ProcessHandle.current().pid())


def iceberg_catalog(settings: Settings | None = None) -> Catalog:
    """The pyiceberg view of the same REST catalog."""
    from pyiceberg.catalog import load_catalog

    s = settings or get_settings()
    return load_catalog(
        s.iceberg_catalog, type="rest", uri=s.iceberg_rest_uri, warehouse=s.iceberg_warehouse
    )


# --- Trino ------------------------------------------------------------------------------------


class TrinoPasswordRefused(ValueError):
    """Trino answered 401: the identity's password is not the one Trino holds."""


def _refused(user: str, variable: str, url: str) -> Any:
    """A requests response hook turning Trino's 401 into one message naming the setting."""

    def hook(response: Any, *_args: Any, **_kwargs: Any) -> Any:
        if response.status_code == 401:
            raise TrinoPasswordRefused(
                f"Trino at {url} refused the password of user {user} (401 Unauthorized). Fix: "
                f"check {variable} in .env (the local stack reads it at `safra stack up`; after "
                "changing it, run `safra stack up` again)"
            )
        return response

    return hook


def _basic_auth(user: str, password: str, variable: str, url: str) -> Any:
    import trino.auth

    class Auth(trino.auth.BasicAuthentication):
        def set_http_session(self, http_session: Any) -> Any:
            http_session = super().set_http_session(http_session)
            http_session.hooks["response"].append(_refused(user, variable, url))
            return http_session

    return Auth(user, password)


def trino_ca_environment(settings: Settings) -> dict[str, str]:
    """``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` naming Trino's CA bundle (nothing for the
    system's trust store). requests lets these variables override a session's own ``verify``, so
    a machine that sets them would make every Trino client distrust the local certificate: the
    libraries that open their own Trino connections (dbt, Great Expectations, Feast) run with
    these values for the duration of their call (:func:`safra.settings.temporary_environment`);
    :func:`trino_connection` ignores the environment instead."""
    verify = settings.trino_verify
    return {} if verify is True else {"REQUESTS_CA_BUNDLE": verify, "CURL_CA_BUNDLE": verify}


def trino_connection(settings: Settings, source: str = "safra", identity: str = "etl") -> Any:
    """A Trino DB-API connection to the Iceberg catalog as ``identity`` (``etl``: reads and
    writes every layer; ``ml``: reads gold and what training and drift read; ``analyst``: reads
    silver and gold), over HTTPS with the certificate verified. ``source`` names the caller in
    Trino's query list. The caller closes it; :func:`trino_cursor` does that for a block.

    A wrong password raises :class:`TrinoPasswordRefused` naming the setting (at the first
    statement: connecting is lazy); a missing one, ValueError naming the fix."""
    import requests
    import trino

    user, password, variable = settings.trino_identity(identity)
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace `verify` (see above)
    session.verify = settings.trino_verify
    return trino.dbapi.connect(
        host=settings.trino_host,
        port=settings.trino_https_port,
        user=user,
        auth=_basic_auth(user, password, variable, settings.trino_url),
        http_scheme="https",
        http_session=session,
        catalog=settings.iceberg_catalog,
        source=source,
    )


@contextmanager
def trino_cursor(settings: Settings, source: str = "safra", identity: str = "etl") -> Iterator[Any]:
    """A cursor on a fresh Trino connection (as ``identity``), closed when the block ends."""
    conn = trino_connection(settings, source, identity)
    try:
        yield conn.cursor()
    finally:
        conn.close()


def trino_query(
    settings: Settings,
    sql: str,
    params: Sequence[Any] | None = None,
    source: str = "safra",
    identity: str = "etl",
) -> list[list[Any]]:
    """The rows of one statement (DDL and DML return their one status row), as ``identity``."""
    with trino_cursor(settings, source, identity) as cur:
        cur.execute(sql, list(params) if params is not None else None)
        return [list(row) for row in cur.fetchall()]


def drop_schemas(settings: Settings, schemas: Iterable[str], source: str = "safra") -> None:
    """Drop each schema of the Iceberg catalog with its tables and views, when it exists (the
    schemas tests and benchmarks make for themselves)."""
    cat = settings.iceberg_catalog
    with trino_cursor(settings, source) as cur:
        for schema in schemas:
            cur.execute(
                "select table_name, table_type from information_schema.tables "
                "where table_schema = ?",
                [schema],
            )
            for table, kind in cur.fetchall():
                what = "view" if kind == "VIEW" else "table"
                cur.execute(f'drop {what} if exists {cat}."{schema}"."{table}"')
                cur.fetchall()
            cur.execute(f'drop schema if exists {cat}."{schema}"')
            cur.fetchall()


def trino_sqlalchemy_url(settings: Settings, schema: str, identity: str = "etl") -> str:
    """SQLAlchemy URL of Trino's Iceberg catalog with ``schema`` as the session's schema, as
    ``identity`` (with :func:`trino_sqlalchemy_connect_args`: HTTPS, the certificate
    verified). It carries the password: hand it to SQLAlchemy, never to a log."""
    user, password, _ = settings.trino_identity(identity)
    host = f"{settings.trino_host}:{settings.trino_https_port}"
    return (
        f"trino://{quote(user, safe='')}:{quote(password, safe='')}@{host}/"
        f"{settings.iceberg_catalog}/{quote(schema, safe='')}"
    )


def trino_sqlalchemy_connect_args(settings: Settings) -> dict[str, Any]:
    """``connect_args`` of a SQLAlchemy engine on :func:`trino_sqlalchemy_url`: HTTPS, and the
    CA bundle (or the system's trust store) verifying Trino's certificate."""
    return {"http_scheme": "https", "verify": settings.trino_verify}
