"""Sources: the gold Iceberg tables, read in place through Trino (no exported copies), at their
``published`` tag: the last state whose audit passed (``pipelines/publish.py``).

The schema is ``<SAFRA_SCHEMA_PREFIX>gold`` (the prefix is empty in production; tests put their
own gold-like tables under a prefix), the catalog is the offline store's (``feature_store.yaml``).
"""

import os

from feast.infra.offline_stores.contrib.trino_offline_store.trino_source import TrinoSource

GOLD_SCHEMA = f"{os.environ.get('SAFRA_SCHEMA_PREFIX', '')}gold"


def published(table: str) -> str:
    """A query reading ``table`` at its published tag (Feast wraps a query in its own SQL)."""
    return f"(SELECT * FROM {GOLD_SCHEMA}.{table} FOR VERSION AS OF 'published')"


proponente_features_source = TrinoSource(
    name="proponente_features",
    query=published("proponente_features"),
    timestamp_field="feature_timestamp",
    description="One row per valid application: the applicant's history up to and including it.",
)

location_features_source = TrinoSource(
    name="location_features",
    query=published("location_features"),
    timestamp_field="feature_timestamp",
    description="Per UF and município: current-state aggregates over every application.",
)

risk_features_source = TrinoSource(
    name="risk_features",
    query=published("risk_features"),
    timestamp_field="feature_timestamp",
    description="Per risk band and crop: current-state aggregates over every application.",
)
