"""Feast's Trino offline store, verifying Trino's certificate with a CA bundle.

Feast 0.67's ``TrinoOfflineStoreConfig.verify`` (``ssl-verify``) is a bool: True trusts only the
system's certificates, so the local stack's self-signed one could be checked only by switching
verification off. This store is Feast's own (every query unchanged); its configuration also
takes a path, which Feast hands to the Trino client as is (``verify=<CA bundle>``).
``feature_repo/feature_store.yaml`` names it as ``type: ml.feast_trino.SafraTrinoOfflineStore``.
"""

from __future__ import annotations

from feast.infra.offline_stores.contrib.trino_offline_store.trino import (
    TrinoOfflineStore,
    TrinoOfflineStoreConfig,
)
from pydantic import Field, StrictBool, StrictStr


class SafraTrinoOfflineStoreConfig(TrinoOfflineStoreConfig):
    type: StrictStr = "ml.feast_trino.SafraTrinoOfflineStore"
    verify: StrictBool | StrictStr = Field(default=True, alias="ssl-verify")  # type: ignore[assignment]
    """True (the system's trust store) or the path of a CA bundle; never False in Safra."""


class SafraTrinoOfflineStore(TrinoOfflineStore):
    """Feast's Trino offline store, unchanged: only its configuration differs."""
