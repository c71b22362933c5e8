"""The one settings object: environment variables prefixed ``SAFRA_``, an optional ``.env``.

Defaults describe the local stack (every service on 127.0.0.1, state under ``.safra/``).
Pointing Safra at real clusters means setting the URL-style fields (``SAFRA_KAFKA_BOOTSTRAP``,
``SAFRA_ICEBERG_REST_URI``, ``SAFRA_TRINO_HOST``...) and leaving ``SAFRA_STACK_SERVICES`` empty,
so that ``safra stack up`` starts nothing locally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_SERVICES = ("redis", "kafka", "iceberg-rest", "trino", "mlflow")
OPTIONAL_SERVICES = ("api", "airflow")
"""Started only when asked: `safra stack up --with api,airflow` (they need the others up first)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SAFRA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Where state and downloads live.
    data_dir: Path = Field(default=Path(".safra"), description="logs, pids and service data")
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "safra", description="downloads, reused across runs"
    )
    bind_host: str = "127.0.0.1"
    stack_services: str = Field(
        default=",".join(LOCAL_SERVICES), description="comma-separated services `stack up` runs"
    )
    ready_timeout_s: float = 120.0
    stop_timeout_s: float = 30.0

    # Java: Kafka, the Iceberg REST catalog and Spark need 17+; Trino 476 needs 24+.
    java_home: Path | None = None
    trino_java_home: Path | None = None

    # Kafka (KRaft, single node)
    kafka_version: str = "4.1.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "512m"
    kafka_bootstrap: str = ""
    # SASL/PLAIN on the client listener: the local broker takes this identity only (.env);
    # an empty password means a broker without authentication (e.g. a cluster's own setup)
    kafka_username: str = Field(default="safra", description="Safra's Kafka identity")
    kafka_password: SecretStr = Field(default=SecretStr(""), description="its password (.env)")

    # Iceberg REST catalog (the reference fixture, catalog in SQLite, warehouse on disk)
    iceberg_rest_version: str = "1.10.1"
    iceberg_rest_port: int = 8181
    iceberg_rest_uri: str = ""
    iceberg_catalog: str = "iceberg"
    iceberg_warehouse: str = ""

    # Trino: clients speak HTTPS with a password (trino_https_port); the HTTP port (trino_port)
    # serves Trino's internal communication and refuses clients' credentials. Three identities
    # (file-based access control, commands/stack/trino_security.py): the ETL identity
    # (trino_user), the analyst, the ML identity.
    trino_version: str = "476"
    trino_port: int = 8080
    trino_https_port: int = 8443
    trino_host: str = ""
    trino_user: str = Field(default="safra", description="the ETL identity: reads and writes")
    trino_password: SecretStr = Field(default=SecretStr(""), description="its password (.env)")
    trino_analyst_user: str = Field(default="safra-analyst", description="reads silver, gold")
    trino_analyst_password: SecretStr = Field(default=SecretStr(""), description="(.env)")
    trino_ml_user: str = Field(
        default="safra-ml", description="reads gold, the silver tables training reads"
    )
    trino_ml_password: SecretStr = Field(default=SecretStr(""), description="(.env)")
    trino_ca_cert: str = Field(
        default="",
        description="CA bundle verifying Trino's certificate: empty = the local stack's own "
        "(<data_dir>/trino/tls/cert.pem), `system` = the system's trust store",
    )
    trino_heap: str = "2G"

    # Redis
    redis_port: int = 6379
    redis_url: str = Field(default="", repr=False)  # may carry the password
    redis_password: SecretStr | None = None

    # MLflow (its authentication on: Safra writes as mlflow_username, the API reads as
    # mlflow_api_username; the admin only creates those two at `safra stack up`)
    mlflow_port: int = 5000
    mlflow_tracking_uri: str = ""
    mlflow_username: str = Field(default="safra", description="Safra's MLflow identity (writes)")
    mlflow_password: SecretStr = Field(default=SecretStr(""), description="its password (.env)")
    mlflow_api_username: str = Field(
        default="safra-api", description="the scoring API's MLflow identity (reads only)"
    )
    mlflow_api_password: SecretStr = Field(default=SecretStr(""), description="(.env)")
    mlflow_admin_password: SecretStr = Field(
        default=SecretStr(""), description="the local MLflow server's admin password (.env)"
    )

    # Kafka topics (Avro values; key = application id; header `schema.version`)
    topic_applications: str = "safra.applications"
    topic_outcomes: str = "safra.outcomes"
    topic_scored_requests: str = "safra.scored-requests"

    # Lakehouse
    pseudonym_key: SecretStr = Field(
        default=SecretStr(""), description="key of the keyed hash of CPF/CNPJ and names (.env)"
    )
    ingest_trigger_s: float = 5.0
    bronze_schema: str = "bronze"
    schema_prefix: str = Field(default="", description="prefix of the silver/gold schemas")
    # 90 days: silver pseudonymizes bronze within minutes; the raw copy only serves to rebuild
    # silver (a bug fixed, a full refresh), and a quarter is time enough to find such a bug
    raw_retention_days: int = Field(
        default=90, ge=1, description="bronze raw identity (CPF, name, registry) is nulled after"
    )

    # Features (Feast: offline store = Trino over the gold Iceberg tables, online store = Redis)
    feature_repo: Path = Field(default=Path("feature_repo"), description="the Feast repo folder")
    feast_project: str = "safra"

    # Model: registry name and the business thresholds on the probability of default
    model_name: str = "safra-credit"
    approve_below: float = Field(default=0.10, gt=0, lt=1, description="APPROVE below this")
    deny_above: float = Field(default=0.30, gt=0, lt=1, description="DENY above this")
    promotion_margin: float = Field(default=0.005, ge=0, description="F1 gain needed to promote")
    model_signing_key: SecretStr = Field(
        default=SecretStr(""),
        description="Ed25519 private key signing registered models, base64 of 32 bytes (.env)",
    )
    model_verify_key: str = Field(
        default="",
        description="its public key: what loads a model verifies with it first (.env)",
    )
    label_maturity_days: int = Field(
        default=365,
        ge=0,
        description="train only on applications at least this old: a younger one may still default",
    )

    # Scoring API (BentoML)
    serving_port: int = 3000
    serving_workers: int = Field(
        default=2, ge=1, description="API worker processes (each loads the champion and follows it)"
    )
    api_key: SecretStr = Field(default=SecretStr(""), description="key of the scoring API (.env)")
    champion_poll_s: float = Field(
        default=5.0, gt=0, description="how often the API checks @champion"
    )
    serving_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="largest request body the API reads (413 above)"
    )
    serving_max_concurrency: int = Field(
        default=64,
        ge=1,
        description="scoring requests in flight per API worker; past it a 503 with Retry-After "
        "at once instead of a growing queue",
    )
    serving_max_queue_ms: float = Field(
        default=25.0,
        gt=0,
        description="a worker refuses new scoring requests (503 + Retry-After) once requests "
        "have waited longer than this for its event loop for 100 ms on end "
        "(serving.queue_delay): the queue in front of the concurrency limit",
    )
    serving_retry_after_s: int = Field(
        default=1, ge=1, description="Retry-After of the API's 503s (seconds)"
    )
    serving_access_log: bool = Field(
        default=False,
        description="BentoML's access log, a line per request: off by default, as every scored "
        "request is already on Kafka (scored requests) and counted in /metrics; on, it costs "
        "about 0.1-0.2 ms of a worker's CPU per request (bench/serving_floor_bench.py)",
    )
    serving_tracing: bool = Field(
        default=False,
        description="BentoML's OpenTelemetry span per request: off by default, as Safra "
        "configures no trace exporter and BentoML records every span even unsampled; on, for a "
        "deployment that sets BentoML's tracing exporter; it costs ~0.4 ms of a worker's CPU "
        "per request (bench/serving_floor_bench.py)",
    )
    serving_unknown_window: int = Field(
        default=50,
        ge=1,
        description="lookups over which the API judges the online store empty or stale "
        "(serving.online_features.StoreFreshness)",
    )
    serving_stale_after_days: float = Field(
        default=30.0,
        gt=0,
        description="the online store looks stale when the newest feature_timestamp among the "
        "last lookups is older than this; unknown applicants then go to MANUAL_REVIEW",
    )

    # Monitoring and orchestration
    # 0.1: two of ml.drift's 17 monitored columns; a bureau recalibration moves 3 (share 0.18),
    # baseline samples of >= 1,000 rows move none (measured: bench/drift_bench.py).
    drift_share: float = Field(
        default=0.1, gt=0, le=1, description="drifted-column share that is drift"
    )
    drift_sample_rows: int = 20_000
    # per-segment drift (ml.segment_drift): Holm over every test of a check bounds the chance of
    # a false alarm per check (bench/drift_bench.py measures the rate)
    drift_alpha: float = Field(
        default=0.01, gt=0, lt=1, description="family-wise error of a check's segment tests"
    )
    drift_min_segment_rows: int = Field(
        default=200, ge=2, description="fewer rows (reference or current): segment not judged"
    )
    # Realized performance on matured outcomes (ml.performance). Measured offline at the demo's
    # ~80 applications a day (bench/performance_bench.py): no alarm on 20 baseline windows; a
    # drought caught 435 days after it began (70 days of matured drifted applications), a bureau
    # recalibration 427 days after; a 180-day window dilutes the change more (~55 days later).
    performance_window_days: int = Field(
        default=90,
        gt=0,
        description="matured window: applications of this many days before the maturity cutoff",
    )
    performance_max_auc_drop: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="tolerated drop of the realized ROC-AUC below the champion's holdout AUC",
    )
    performance_max_calibration_gap: float = Field(
        default=0.03,
        ge=0,
        lt=1,
        description="tolerated |realized default rate - mean predicted|, overall and per segment",
    )
    performance_max_relative_gap: float = Field(
        default=0.25,
        ge=0,
        description="tolerated gap as a share of the mean predicted probability, when larger",
    )
    performance_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="false-alarm probability of one check (Holm over all its tests)",
    )
    performance_min_rows: int = Field(
        default=500, ge=1, description="matured rows below which the population is not judged"
    )
    performance_min_segment_rows: int = Field(
        default=200, ge=1, description="matured rows below which a segment is not judged"
    )
    airflow_port: int = 8088
    airflow_jwt_secret: SecretStr = Field(
        default=SecretStr(""), description="secret Airflow's API server and workers share (.env)"
    )
    # the Airflow `safra demo` triggers its DAG runs on (REST API v2): empty = the local stack's
    # (http://<bind_host>:<airflow_port>, started by the demo), signing in as airflow_username
    # with the password the local stack generated unless airflow_password is set
    airflow_url: str = Field(default="", description="Airflow's base URL (empty: local stack)")
    airflow_username: str = "admin"
    airflow_password: SecretStr = Field(
        default=SecretStr(""),
        description="its password (empty: <data_dir>/airflow/simple_auth_manager_passwords...)",
    )

    # Spark (local mode; connectors from Maven Central through Ivy)
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    spark_version: str = "4.1.1"
    iceberg_spark_version: str = "1.11.0"

    @model_validator(mode="after")
    def _fill_local_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        self.cache_dir = self.cache_dir.expanduser().resolve()
        host = self.bind_host
        if not self.kafka_bootstrap:
            self.kafka_bootstrap = f"{host}:{self.kafka_port}"
        if not self.iceberg_rest_uri:
            self.iceberg_rest_uri = f"http://{host}:{self.iceberg_rest_port}"
        if not self.iceberg_warehouse:
            self.iceberg_warehouse = (self.data_dir / "warehouse").as_uri()
        if not self.trino_host:
            self.trino_host = host
        if not self.trino_ca_cert:
            self.trino_ca_cert = str(self.trino_local_cert)
        if not self.redis_url:
            auth = f":{self.redis_password.get_secret_value()}@" if self.redis_password else ""
            self.redis_url = f"redis://{auth}{host}:{self.redis_port}/0"
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"http://{host}:{self.mlflow_port}"
        if not self.approve_below < self.deny_above:
            raise ValueError(
                f"SAFRA_APPROVE_BELOW ({self.approve_below}) must be below SAFRA_DENY_ABOVE "
                f"({self.deny_above})"
            )
        unknown = self._wanted_services() - set(LOCAL_SERVICES)
        if unknown:
            raise ValueError(
                f"SAFRA_STACK_SERVICES names unknown services {sorted(unknown)}; "
                f"known: {', '.join(LOCAL_SERVICES)}"
            )
        return self

    @property
    def local_services(self) -> list[str]:
        """The services the local stack supervises, in start order."""
        wanted = self._wanted_services()
        return [s for s in LOCAL_SERVICES if s in wanted]

    def _wanted_services(self) -> set[str]:
        return {s.strip() for s in self.stack_services.split(",") if s.strip()}

    @property
    def airflow_base_url(self) -> str:
        """Where Airflow's UI and REST API answer: ``airflow_url``, else the local stack's."""
        return (self.airflow_url or f"http://{self.bind_host}:{self.airflow_port}").rstrip("/")

    @property
    def trino_url(self) -> str:
        """Where clients reach Trino (HTTPS, a password per identity)."""
        return f"https://{self.trino_host}:{self.trino_https_port}"

    @property
    def trino_local_cert(self) -> Path:
        """The local stack's self-signed certificate of Trino (public: clients verify with it)."""
        return self.data_dir / "trino" / "tls" / "cert.pem"

    @property
    def trino_verify(self) -> str | Literal[True]:
        """What clients verify Trino's certificate with: a CA bundle's path, or True for the
        system's trust store (``SAFRA_TRINO_CA_CERT=system``). Never False."""
        return True if self.trino_ca_cert == "system" else self.trino_ca_cert

    def trino_identity(self, identity: str = "etl") -> tuple[str, str, str]:
        """``(user, password, variable naming the password)`` of a Trino identity: ``etl``
        (reads and writes every layer), ``analyst`` (reads silver and gold), ``ml`` (reads gold
        and the silver tables training reads). ValueError naming the fix for an unknown identity
        or a missing password."""
        fields = {
            "etl": ("trino_user", "trino_password"),
            "analyst": ("trino_analyst_user", "trino_analyst_password"),
            "ml": ("trino_ml_user", "trino_ml_password"),
        }
        if identity not in fields:
            raise ValueError(f"unknown Trino identity {identity!r}; known: {', '.join(fields)}")
        user_field, password_field = fields[identity]
        password = getattr(self, password_field).get_secret_value()
        variable = f"SAFRA_{password_field.upper()}"
        if not password:
            raise ValueError(
                f"{variable} is empty: Trino asks every client for a password. Fix: `make env` "
                "(generates it into .env) or set it in the environment."
            )
        return getattr(self, user_field), password, variable

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def checkpoints_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    def mlflow_environment(self) -> dict[str, str]:
        """The environment that gives MLflow's clients this identity (they read it from there,
        per process); empty without a password."""
        password = self.mlflow_password.get_secret_value()
        if not password:
            return {}
        return {
            "MLFLOW_TRACKING_USERNAME": self.mlflow_username,
            "MLFLOW_TRACKING_PASSWORD": password,
        }

    def require_api_key(self) -> str:
        """The scoring API's key; ValueError naming the fix when it is missing or short."""
        key = self.api_key.get_secret_value()
        if len(key) < 16:
            raise ValueError(
                "SAFRA_API_KEY is missing or shorter than 16 characters: it guards the "
                "scoring API. Fix: `make env` (generates it into .env) or export SAFRA_API_KEY."
            )
        return key

    def require_pseudonym_key(self) -> str:
        key = self.pseudonym_key.get_secret_value()
        if len(key) < 16:
            raise ValueError(
                "SAFRA_PSEUDONYM_KEY is missing or shorter than 16 characters: it keys the hash "
                "that replaces CPF/CNPJ and names from silver on. Fix: `make env` (generates it "
                "into .env) or set it in the environment."
            )
        return key


def redact(url: str) -> str:
    """``url`` without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def default_ports() -> dict[str, int]:
    """Each service's port setting as its environment variable, with its default
    (``SAFRA_KAFKA_PORT``: 9092, ...): what a second stack offsets (the tests' own stack, a
    benchmark's clone) to leave the user's alone."""
    prefix = Settings.model_config.get("env_prefix", "")
    return {
        f"{prefix}{name}".upper(): int(field.default)
        for name, field in Settings.model_fields.items()
        if name.endswith("_port")
    }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use (never at import time)."""
    return Settings()


@contextmanager
def temporary_environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the block, the previous values (or their absence) restored
    afterwards: for libraries that read their configuration from the environment (dbt, Feast),
    without leaking ``SAFRA_*`` values into later settings or child processes."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
