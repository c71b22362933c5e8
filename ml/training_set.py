"""The labelled training set: outcomes + applications (silver) + history (Feast, point in time).

One row per valid application with a known outcome:

- the label ``inadimplente`` comes from ``silver_outcomes``;
- the application's own fields (amount, income, area, crop, score...) come from
  ``silver_applications``: they are known at application time;
- the applicant's history comes from Feast's point-in-time join over ``gold.proponente_features``
  (feature service :data:`ml.feature_store.FEATURE_SERVICE`) as of ``data_solicitacao`` minus one
  millisecond. A gold row includes its own application, so "strictly before" is what makes the
  history mean *before this application*: the row's own amount, and anything later, never reach
  it (tests/integration/test_features.py proves it).

The entity rows are a SQL query, not a DataFrame: Feast's Trino offline store runs the whole join
in Trino, over the Iceberg tables where they are, and nothing is uploaded from this process. The
silver tables are read at pinned snapshots (``FOR VERSION AS OF``); their ids and the gold table's
are returned as lineage tags.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
import trino

from ml.feature_store import FEATURE_SERVICE, HISTORY_VIEW, TRINO_IDENTITY
from ml.features import APPLICATION_FIELDS, HISTORY_INPUTS, history_columns
from safra.lakehouse import PUBLISHED, trino_ca_environment, trino_connection
from safra.settings import Settings, temporary_environment

if TYPE_CHECKING:
    from feast import FeatureStore

logger = logging.getLogger(__name__)

LABEL = "inadimplente"
"""The label: whether the credit defaulted (``silver_outcomes``)."""
APPLICATION_COLUMNS: tuple[str, ...] = (
    "id_solicitacao",
    "proponente_id",
    "data_solicitacao",
    *APPLICATION_FIELDS,
    "municipio",
    "faixa_risco_credito",
    "origem_dados",
)
"""The application fields each row carries (silver names): the ids and time, what
:func:`ml.features.model_inputs` reads, and the location, risk band and origin."""
ENTITY_TIMESTAMP = "event_timestamp"
"""The moment each row asks the history about: ``data_solicitacao`` minus one millisecond."""
SOURCE_TABLES: Mapping[str, tuple[str, str]] = {
    "silver_applications": ("silver", "silver_applications"),
    "silver_outcomes": ("silver", "silver_outcomes"),
    "proponente_features": ("gold", "proponente_features"),
}
"""Lineage name → (layer, table) of every table the training set reads."""


@dataclass
class TrainingSet:
    """The labelled rows and where they came from."""

    frame: pd.DataFrame
    """Application fields + ``hist_*`` inputs + ``inadimplente``, oldest first."""
    lineage: dict[str, str]
    """Tags: Iceberg snapshot id of every table read, feature service, project."""
    seconds: float
    """Wall time of the point-in-time join (Trino) and the fetch."""
    entity_sql: str = field(repr=False, default="")

    @property
    def scenarios(self) -> list[str]:
        """The simulator scenarios the rows were generated under (``origem_dados``), if any."""
        return sorted({scenario_of(o) for o in self.frame["origem_dados"].dropna().unique()})


def scenario_of(origem_dados: str) -> str:
    """The simulator scenario recorded in ``origem_dados`` (``simulador-safra/<scenario>``);
    ``baseline`` when the origin names none."""
    _, _, scenario = str(origem_dados).partition("/")
    return scenario or "baseline"


def table_name(settings: Settings, layer: str, table: str) -> str:
    """``catalog."<prefix><layer>".table``."""
    return f'{settings.iceberg_catalog}."{settings.schema_prefix}{layer}".{table}'


def current_snapshots(settings: Settings) -> dict[str, int]:
    """The published snapshot id (tag :data:`safra.lakehouse.PUBLISHED`: the last state whose
    audit passed) of every table in :data:`SOURCE_TABLES`.

    ValueError naming the table when one is missing or has no snapshot (nothing loaded yet).
    """
    out: dict[str, int] = {}
    conn = trino_connection(settings, "safra-training-set", TRINO_IDENTITY)
    try:
        cur = conn.cursor()
        for name, (layer, table) in SOURCE_TABLES.items():
            refs = table_name(settings, layer, f'"{table}$refs"')
            try:
                cur.execute(f"SELECT snapshot_id FROM {refs} WHERE name = ?", [PUBLISHED])
                rows = cur.fetchall()
            except trino.exceptions.TrinoUserError as exc:
                raise ValueError(
                    f"cannot read {table_name(settings, layer, table)}: {exc.message} "
                    "(run `safra transform` first)"
                ) from exc
            if not rows:
                raise ValueError(
                    f"{table_name(settings, layer, table)} has nothing published yet: "
                    "run `safra transform` (its layer's audit must pass)"
                )
            out[name] = int(rows[0][0])
    finally:
        conn.close()
    return out


def _literal(moment: datetime) -> str:
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return f"TIMESTAMP '{stamp.strftime('%Y-%m-%d %H:%M:%S.%f')} UTC'"


def entity_sql(
    settings: Settings,
    snapshots: Mapping[str, int],
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """The entity rows: labelled valid applications at the pinned silver snapshots, with
    ``event_timestamp`` = ``data_solicitacao`` − 1 ms; ``since`` ≤ ``data_solicitacao`` < ``until``
    when given (naive datetimes are UTC)."""
    apps = table_name(settings, *SOURCE_TABLES["silver_applications"])
    outcomes = table_name(settings, *SOURCE_TABLES["silver_outcomes"])
    columns = ",\n    ".join(f"a.{c}" for c in APPLICATION_COLUMNS)
    window = ""
    if since is not None:
        window += f"\n  AND a.data_solicitacao >= {_literal(since)}"
    if until is not None:
        window += f"\n  AND a.data_solicitacao < {_literal(until)}"
    return (
        f"SELECT\n    {columns},\n"
        f"    date_add('millisecond', -1, a.data_solicitacao) AS {ENTITY_TIMESTAMP},\n"
        f"    o.{LABEL}\n"
        f"FROM {apps} FOR VERSION AS OF {int(snapshots['silver_applications'])} AS a\n"
        f"JOIN {outcomes} FOR VERSION AS OF {int(snapshots['silver_outcomes'])} AS o\n"
        f"  ON o.id_solicitacao = a.id_solicitacao\n"
        f"WHERE a.registro_valido AND o.{LABEL} IS NOT NULL{window}"
    )


def _count(settings: Settings, sql: str) -> int:
    conn = trino_connection(settings, "safra-training-set", TRINO_IDENTITY)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT count(*) FROM ({sql})")
        return int(cur.fetchone()[0])
    finally:
        conn.close()


def build_training_set(
    store: FeatureStore,
    settings: Settings,
    since: datetime | None = None,
    until: datetime | None = None,
) -> TrainingSet:
    """The labelled training set (see the module docstring), oldest application first.

    ``until`` defaults to ``settings.label_maturity_days`` before now: only applications whose
    outcome had time to arrive, defaults included. ValueError when the window holds no labelled
    application.
    """
    if until is None and settings.label_maturity_days > 0:
        # right-censored labels: a repayment is known after 60 days, a default only after 120 to
        # 365, so recent applications with an outcome are mostly repaid ones; they would teach
        # the model (and show the promotion holdout) a default rate far too low
        until = datetime.now(UTC) - timedelta(days=settings.label_maturity_days)
    snapshots = current_snapshots(settings)
    sql = entity_sql(settings, snapshots, since, until)
    if _count(settings, sql) == 0:  # Feast's Trino store fails obscurely on no entity rows
        raise ValueError(
            "no labelled application in the window"
            + (f" since {since}" if since else "")
            + (f" until {until}" if until else "")
            + ": produce, ingest and transform data with outcomes first"
        )
    service = store.get_feature_service(FEATURE_SERVICE)
    began = time.perf_counter()
    with temporary_environment(trino_ca_environment(settings)):  # Feast's own Trino client
        joined = store.get_historical_features(
            entity_df=sql, features=service, full_feature_names=True
        ).to_df()
    seconds = time.perf_counter() - began
    frame = training_frame(joined)
    logger.info(
        "training set: %d labelled rows, %d with history, point-in-time join %.1f s",
        len(frame),
        int(frame["hist_n_solicitacoes"].notna().sum()),
        seconds,
    )
    lineage = {f"iceberg.snapshot.{name}": str(sid) for name, sid in snapshots.items()}
    lineage.update(
        {
            "feature_service": FEATURE_SERVICE,
            "feature_service_version": service.tags.get("version", ""),
            "feast_project": store.project,
            "training_set.rows": str(len(frame)),
        }
    )
    if since is not None:
        lineage["training_set.since"] = pd.Timestamp(since).isoformat()
    if until is not None:
        lineage["training_set.until"] = pd.Timestamp(until).isoformat()
    return TrainingSet(frame=frame, lineage=lineage, seconds=seconds, entity_sql=sql)


def training_frame(joined: pd.DataFrame) -> pd.DataFrame:
    """Feast's joined rows → application fields + ``hist_*`` inputs + label, oldest first."""
    prefix = f"{HISTORY_VIEW}__"
    when = pd.to_datetime(joined["data_solicitacao"], utc=True)
    history = history_columns(joined, as_of=when, prefix=prefix)
    frame = joined.loc[:, [*APPLICATION_COLUMNS, LABEL]].copy()
    frame["data_solicitacao"] = when
    frame[LABEL] = frame[LABEL].astype(bool)
    frame = pd.concat([frame, history[list(HISTORY_INPUTS)]], axis=1)
    return frame.sort_values(["data_solicitacao", "id_solicitacao"], kind="stable").reset_index(
        drop=True
    )
