"""Safra's Feast feature store, and the features stage behind ``safra features``.

- :func:`feature_store` builds the ``${VAR}`` environment ``feature_repo/feature_store.yaml``
  reads (:func:`feast_environment`) from the ONE settings object and opens the store;
- :func:`repo_contents` / :func:`apply_repo` load and register the repo's declarations
  (what ``feast apply`` does, without leaving the process);
- :func:`run_features`, the stage: register the repo and materialize what is new in gold into
  Redis (``materialize_incremental`` up to now); idempotent. It returns a
  :class:`FeaturesReport` (``as_dict()`` for ``--json``); the CLI only prints;
- :func:`online_history`: serving's one online read. The gold history columns become the model's
  ``hist_*`` inputs in :func:`ml.features.history_columns` (:func:`ml.features.history_inputs`
  on plain columns), which training (point-in-time join, :mod:`ml.training_set`) calls too, so
  there is no skew.

The history a model input means is the applicant's history *before* the application. The gold
row of an application includes that application, so the training join asks for the history as
of one millisecond before ``data_solicitacao`` (:mod:`ml.training_set`); serving reads the latest
row, which is the history before the new request.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd

from ml.features import HISTORY_INPUTS, LAST_APPLICATION, history_inputs
from safra.lakehouse import trino_ca_environment, trino_query
from safra.settings import Settings, get_settings, temporary_environment

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_contents import RepoContents

logger = logging.getLogger(__name__)

TRINO_IDENTITY = "ml"
"""Feast reads the gold tables as Safra's ML identity (reads only: ``safra.settings``)."""
FEATURE_SERVICE = "credit_model_v1"
"""The versioned feature service the credit model reads (``feature_repo/feature_services.py``)."""
HISTORY_VIEW = "proponente_historico"
"""The one feature view the model reads: one online read per scoring request."""
ENTITY_KEY = "proponente_id"
PROFILE_FIELDS: tuple[str, ...] = (
    "area_total_hectares",
    "cultura_principal",
    "anos_experiencia",
    "serasa_score",
)
"""The applicant's latest profile: serving's defaults for what a short request does not say."""
FRESHNESS_FIELD = "feature_timestamp"

_ENV_LOCK = threading.Lock()
_CWD_LOCK = threading.Lock()


def feature_repo_path(settings: Settings) -> Path:
    """The feature repo folder: ``settings.feature_repo`` (a relative path is looked up in the
    working directory, then in the project). FileNotFoundError naming both when absent."""
    repo = settings.feature_repo.expanduser()
    candidates = [repo] if repo.is_absolute() else [Path.cwd() / repo, _project_root() / repo]
    for candidate in candidates:
        if (candidate / "feature_store.yaml").is_file():
            return candidate.resolve()
    raise FileNotFoundError(
        f"no Feast repo (feature_store.yaml) at {' or '.join(map(str, candidates))}: "
        "set SAFRA_FEATURE_REPO to the feature_repo folder"
    )


def _project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def registry_path(settings: Settings) -> Path:
    """The file registry of ``settings.feast_project``: one file per project under the data dir,
    so that a test project never rewrites the real registry."""
    return settings.data_dir / "feast" / settings.feast_project / "registry.db"


def redis_connection_string(redis_url: str) -> str:
    """Feast's Redis ``connection_string`` (``host:port,password=...,db=N``) of a redis:// URL."""
    parts = urlsplit(redis_url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(
            f"SAFRA_REDIS_URL must be redis://[:password@]host:port/db, got {parts.scheme}://..."
        )
    pieces = [f"{parts.hostname}:{parts.port or 6379}"]
    if parts.password:
        pieces.append(f"password={unquote(parts.password)}")
    if parts.username:
        pieces.append(f"username={unquote(parts.username)}")
    db = parts.path.strip("/")
    if db:
        pieces.append(f"db={int(db)}")
    if parts.scheme == "rediss":
        pieces.append("ssl=true")
    return ",".join(pieces)


def feast_environment(settings: Settings) -> dict[str, str]:
    """The ``${VAR}`` values ``feature_store.yaml`` and the repo's declarations read."""
    user, password, _ = settings.trino_identity(TRINO_IDENTITY)
    verify = settings.trino_verify
    return {
        "SAFRA_FEAST_PROJECT": settings.feast_project,
        "SAFRA_FEAST_REGISTRY": str(registry_path(settings)),
        "SAFRA_FEAST_TRINO_HOST": settings.trino_host,
        "SAFRA_FEAST_TRINO_PORT": str(settings.trino_https_port),
        "SAFRA_FEAST_TRINO_CATALOG": settings.iceberg_catalog,
        "SAFRA_FEAST_TRINO_USER": user,
        "SAFRA_FEAST_TRINO_PASSWORD": password,
        "SAFRA_FEAST_TRINO_VERIFY": "true" if verify is True else str(verify),
        "SAFRA_FEAST_REDIS": redis_connection_string(settings.redis_url),
        "SAFRA_SCHEMA_PREFIX": settings.schema_prefix,
    }


def feature_store(settings: Settings | None = None) -> FeatureStore:
    """The Feast store of ``settings`` (repo ``settings.feature_repo``, project
    ``settings.feast_project``), built with :func:`feast_environment` in the environment."""
    from feast import FeatureStore

    settings = settings or get_settings()
    repo = feature_repo_path(settings)
    registry_path(settings).parent.mkdir(parents=True, exist_ok=True)
    with _feast_environment(settings):
        return FeatureStore(repo_path=str(repo))


@contextmanager
def _feast_environment(settings: Settings) -> Iterator[None]:
    """:func:`feast_environment` in this process while Feast reads it (``feature_store.yaml`` when
    a store is built, the repo's modules when parsed), restored afterwards: the values are
    ``SAFRA_*`` settings too, and must not leak into later settings or child processes."""
    with _ENV_LOCK, temporary_environment(feast_environment(settings)):
        yield


@contextmanager
def _inside(repo: Path) -> Iterator[None]:
    """Feast names the repo's modules after their path relative to the working directory and
    imports them from it (``feast apply`` changes into the repo the same way)."""
    with _CWD_LOCK:
        before = Path.cwd()
        os.chdir(repo)
        added = str(repo) not in sys.path
        if added:
            sys.path.insert(0, str(repo))
        try:
            yield
        finally:
            os.chdir(before)
            if added:
                sys.path.remove(str(repo))


def repo_contents(settings: Settings | None = None) -> RepoContents:
    """The repo's declarations (entities, sources, views, services), as ``feast apply`` sees them.

    Module-level reads of the environment (the gold schema) use :func:`feast_environment`.
    """
    from feast.repo_operations import parse_repo

    settings = settings or get_settings()
    repo = feature_repo_path(settings)
    with _feast_environment(settings):
        for name in _repo_module_names(repo):
            sys.modules.pop(name, None)  # re-read: the environment may differ from last time
        with _inside(repo):
            return parse_repo(repo)


def _repo_module_names(repo: Path) -> list[str]:
    return [p.stem for p in repo.glob("*.py")]


def apply_repo(store: FeatureStore, settings: Settings | None = None) -> RepoContents:
    """Register the repo's objects in the store's registry and create their online tables;
    objects no longer declared are removed (like ``feast apply``). Idempotent."""
    from feast.repo_operations import extract_objects_for_apply_delete

    settings = settings or get_settings()
    contents = repo_contents(settings)
    to_apply, to_delete, _, _ = extract_objects_for_apply_delete(
        store.project, store.registry, contents
    )
    store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    return contents


# --- safra features -------------------------------------------------------------------------


@dataclass
class ViewMaterialization:
    name: str
    start: str
    end: str
    rows: int
    """Gold rows in (start, end]: what the offline store had to read."""
    keys: int
    """Distinct entity keys among them: what was written to Redis (latest row per key)."""


@dataclass
class FeaturesReport:
    project: str
    registry: str
    entities: list[str]
    feature_views: list[str]
    feature_services: list[str]
    materialized: list[ViewMaterialization]
    apply_seconds: float
    materialize_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count_new_rows(settings: Settings, fv: Any, start: datetime, end: datetime) -> tuple[int, int]:
    """(gold rows, distinct entity keys) of feature view ``fv`` in (``start``, ``end``]."""
    keys = ", ".join(fv.join_keys) if fv.join_keys else "1"
    table = fv.batch_source.get_table_query_string()  # the published state, in the catalog
    ts = fv.batch_source.timestamp_field
    sql = (
        f"SELECT count(*), count(DISTINCT ({keys})) FROM {table} "
        f"WHERE {ts} > from_iso8601_timestamp('{start.isoformat()}') "
        f"AND {ts} <= from_iso8601_timestamp('{end.isoformat()}')"
    )
    ((rows, keys_n),) = trino_query(settings, sql, identity=TRINO_IDENTITY)
    return int(rows), int(keys_n)


def run_features(settings: Settings, end: datetime | None = None) -> FeaturesReport:
    """``feast apply`` of the repo, then ``materialize_incremental`` up to ``end`` (now)."""
    with temporary_environment(trino_ca_environment(settings)):  # Feast's own Trino client
        return _run_features(settings, end)


def _run_features(settings: Settings, end: datetime | None) -> FeaturesReport:
    store = feature_store(settings)
    began = time.perf_counter()
    contents = apply_repo(store, settings)
    apply_s = time.perf_counter() - began
    end = end or datetime.now(UTC)
    views = []
    for fv in store.list_feature_views(allow_cache=False):
        if not fv.online:
            continue
        start = fv.most_recent_end_time or (end - fv.ttl if fv.ttl else datetime(1970, 1, 1))
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        rows, keys = _count_new_rows(settings, fv, start, end)
        views.append(ViewMaterialization(fv.name, start.isoformat(), end.isoformat(), rows, keys))
    began = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress; keep stdout for --json
        store.materialize_incremental(end_date=end)
    materialize_s = time.perf_counter() - began
    logger.info("materialized %d views up to %s in %.1f s", len(views), end, materialize_s)
    return FeaturesReport(
        project=store.project,
        registry=str(store.config.registry.path),
        entities=sorted(e.name for e in contents.entities if not e.name.startswith("__")),
        feature_views=sorted(v.name for v in contents.feature_views),
        feature_services=sorted(s.name for s in contents.feature_services),
        materialized=views,
        apply_seconds=round(apply_s, 2),
        materialize_seconds=round(materialize_s, 2),
    )


# --- serving: the online read ---------------------------------------------------------------


_SERVICE_REFS: weakref.WeakKeyDictionary[FeatureStore, list[str]] = weakref.WeakKeyDictionary()


def service_feature_refs(store: FeatureStore, service: str = FEATURE_SERVICE) -> list[str]:
    """``view:feature`` references of ``service``, read from the registry once per store (a
    service is versioned, never edited: a new list is a new service)."""
    refs = _SERVICE_REFS.get(store)
    if refs is None:
        fs = store.get_feature_service(service, allow_cache=True)
        refs = [
            f"{projection.name_to_use()}:{feature.name}"
            for projection in fs.feature_view_projections
            for feature in projection.features
        ]
        _SERVICE_REFS[store] = refs
    return refs


def online_history(
    store: FeatureStore, proponente_ids: Sequence[str], as_of: datetime | None = None
) -> list[dict[str, Any] | None]:
    """Per id: None when the online store has no row for it (unknown applicant), else a dict with
    the ``hist_*`` keys of :data:`ml.features.HISTORY_INPUTS` (:func:`ml.features.history_inputs`
    as of ``as_of``, default now), the latest profile fields :data:`PROFILE_FIELDS` (serving's
    request defaults) and ``feature_timestamp`` (the latest application's time, UTC datetime, to
    the second: the features' freshness). One online read (one feature view, one Redis round
    trip) for all ids.
    """
    if not proponente_ids:
        return []
    response = store.get_online_features(
        features=service_feature_refs(store),
        entity_rows=[{ENTITY_KEY: str(i)} for i in proponente_ids],
    ).to_dict()
    history = history_inputs(response, len(proponente_ids), as_of)
    out: list[dict[str, Any] | None] = []
    for i, n in enumerate(response["n_solicitacoes"]):
        if n is None:
            out.append(None)
            continue
        row = {k: _plain(history[k][i]) for k in HISTORY_INPUTS}
        row.update({k: _plain(response[k][i]) for k in PROFILE_FIELDS})
        last = response[LAST_APPLICATION][i]
        row[FRESHNESS_FIELD] = _as_utc_datetime(last)
        out.append(row)
    return out


def _as_utc_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return (
        stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    ).to_pydatetime()


def _plain(value: Any) -> Any:
    """A JSON-friendly Python scalar: numpy scalars unwrapped, NaN/NA as None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
