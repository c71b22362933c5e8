"""Sources: the gold Iceberg tables, read in place through Trino (no exported copies).

The schema is ``<SAFRA_SCHEMA_PREFIX>gold`` (the prefix is empty in production; tests put their
own gold-like tables under a prefix), the catalog is the offline store's (``feature_store.yaml``).
"""

import os

from feast.infra.offline_stores.contrib.trino_offline_store.trino_source import TrinoSource

GOLD_SCHEMA = f"{os.environ.get('SAFRA_SCHEMA_PREFIX', '')}gold"

proponente_features_source = TrinoSource(
    name="proponente_features",
    table=f"{GOLD_SCHEMA}.proponente_features",
    timestamp_field="feature_timestamp",
    description="One row per valid application: the applicant's history up to and including it.",
)

location_features_source = TrinoSource(
    name="location_features",
    table=f"{GOLD_SCHEMA}.location_features",
    timestamp_field="feature_timestamp",
    description="Per UF and município: current-state aggregates over every application.",
)

risk_features_source = TrinoSource(
    name="risk_features",
    table=f"{GOLD_SCHEMA}.risk_features",
    timestamp_field="feature_timestamp",
    description="Per risk band and crop: current-state aggregates over every application.",
)
