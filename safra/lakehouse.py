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


def trino_connection(settings: Settings, source: str = "safra") -> Any:
    """A Trino DB-API connection to the Iceberg catalog (``source`` names the caller in Trino's
    query list). The caller closes it; :func:`trino_cursor` does that for a block."""
    import trino

    return trino.dbapi.connect(
        host=settings.trino_host,
        port=settings.trino_port,
        user=settings.trino_user,
        catalog=settings.iceberg_catalog,
        source=source,
    )


@contextmanager
def trino_cursor(settings: Settings, source: str = "safra") -> Iterator[Any]:
    """A cursor on a fresh Trino connection, closed when the block ends."""
    conn = trino_connection(settings, source)
    try:
        yield conn.cursor()
    finally:
        conn.close()


def trino_query(
    settings: Settings, sql: str, params: Sequence[Any] | None = None, source: str = "safra"
) -> list[list[Any]]:
    """The rows of one statement (DDL and DML return their one status row)."""
    with trino_cursor(settings, source) as cur:
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


def trino_sqlalchemy_url(settings: Settings, schema: str) -> str:
    """SQLAlchemy URL of Trino's Iceberg catalog with ``schema`` as the session's schema."""
    user = quote(settings.trino_user, safe="")
    host = f"{settings.trino_host}:{settings.trino_port}"
    return f"trino://{user}@{host}/{settings.iceberg_catalog}/{quote(schema, safe='')}"
