"""What ``make test`` must leave as it found it in the user's own stack: the registered models
with their aliases (``@champion``, ``@challenger``...), every topic's end offsets, the row count of
every lakehouse table. A service that is not running is recorded as such (CI has no user stack).

    .venv/bin/python -m tests.user_world save FILE      # before the tests
    .venv/bin/python -m tests.user_world compare FILE   # after: exit 1 naming what changed
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from commands.stack.process import port_open
from safra.kafka_clients import client_config
from safra.settings import Settings, get_settings


def _registry(s: Settings) -> dict[str, Any]:
    from ml.registry import tracking_client

    client = tracking_client(s)  # as Safra's identity (MLflow's authentication is on)
    return {
        m.name: {"aliases": dict(sorted(m.aliases.items()))}
        for m in client.search_registered_models(max_results=1000)
    }


def _topics(s: Settings) -> dict[str, Any]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(client_config(s, **{"group.id": "safra-user-world"}))
    try:
        offsets = {}
        for topic, meta in sorted(consumer.list_topics(timeout=10).topics.items()):
            if topic.startswith("__"):
                continue
            offsets[topic] = [
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in sorted(meta.partitions)
            ]
        return offsets
    finally:
        consumer.close()


def _tables(s: Settings) -> dict[str, Any]:
    from safra.lakehouse import trino_query

    rows = trino_query(
        s,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('information_schema', 'system') AND table_type = 'BASE TABLE'",
        source="safra-user-world",
    )
    return {
        f"{schema}.{table}": trino_query(s, f'SELECT count(*) FROM "{schema}"."{table}"')[0][0]
        for schema, table in sorted(rows)
    }


def _listening(address: str) -> bool:
    """Something accepts connections at ``host:port`` (or a URL's): a service that is not
    running is known at once, not after its client's retries (minutes in CI, which has no user
    stack)."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    return port_open(parts.hostname or "", parts.port or 0, timeout=2.0)


def snapshot(s: Settings) -> dict[str, Any]:
    """The user's world, one entry per service: its state, or why it could not be read."""
    out: dict[str, Any] = {}
    for name, read, address in (
        ("registry", _registry, s.mlflow_tracking_uri),
        ("topics", _topics, s.kafka_bootstrap.split(",")[0]),
        ("tables", _tables, s.trino_url),
    ):
        if not _listening(address):
            out[name] = "not reachable: nothing listens"
            continue
        try:
            out[name] = read(s)
        except Exception as exc:  # a service that is down is a state, not an error
            out[name] = f"not reachable: {type(exc).__name__}"
    return out


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    lines = []
    for part in sorted(set(before) | set(after)):
        b, a = before.get(part), after.get(part)
        if isinstance(b, dict) and isinstance(a, dict):
            for key in sorted(set(b) | set(a)):
                if b.get(key) != a.get(key):
                    lines.append(f"{part} {key}: {b.get(key)} -> {a.get(key)}")
        elif b != a:
            lines.append(f"{part}: {b} -> {a}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "compare"):
        print(__doc__)
        return 2
    path = Path(argv[1])
    now = snapshot(get_settings())
    if argv[0] == "save":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(now, indent=1, sort_keys=True))
        print(f"user's stack before the tests: {_summary(now)}")
        return 0
    changed = differences(json.loads(path.read_text()), now)
    if changed:
        print("make test changed the user's stack:\n  " + "\n  ".join(changed))
        return 1
    print(f"user's stack unchanged by the tests: {_summary(now)}")
    return 0


def _summary(world: dict[str, Any]) -> str:
    return "; ".join(
        f"{part}: {len(value)}" if isinstance(value, dict) else f"{part}: {value}"
        for part, value in sorted(world.items())
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
