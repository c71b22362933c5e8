"""Ingestion benchmark: how fast bronze drains a Kafka backlog, and how fresh it stays live.

1. Throughput: ``--count`` application messages (pre-encoded Avro v2) are produced to a fresh
   topic, then ``run_ingest(once=True)`` drains them; rows/s = rows added / run time (the Spark
   session is started before the clock starts).
2. Freshness: ingestion runs in streaming mode (``--trigger-s``, default 1 s) while a producer
   sends ``--rate`` messages/s for ``--freshness-seconds`` to a one-partition topic; Trino is
   polled for ``count(*)`` and each message's freshness is (first poll that sees it − its produce
   time). With one partition, offsets follow production order and every commit is a prefix,
   so "count ≥ i + 1" means message i is visible. Goal: p95 ≤ 10 s.

Runs against the stack the settings point at, in a bench namespace of its own that is dropped
afterwards (``--keep`` keeps it). Prints one JSON document.

    .venv/bin/python bench/ingest_bench.py --count 100000 --freshness-seconds 30
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import threading
import time
import uuid
from datetime import datetime
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.bronze_seed import drop_ingested
from pipelines.ingest import run_ingest
from pipelines.simulator import generate_applications
from safra.contracts import encode
from safra.kafka_clients import client_config
from safra.lakehouse import spark_session, trino_query
from safra.settings import Settings, get_settings

HEADERS = [("schema.subject", b"application"), ("schema.version", b"2")]


def _payloads(n: int) -> list[tuple[bytes, bytes]]:
    records = generate_applications(n, seed=5, start=datetime(2025, 1, 1), end=datetime(2025, 7, 1))
    return [(r["id_solicitacao"].encode(), encode(r, "application", 2)) for r in records]


def _create_topic(admin: AdminClient, name: str, partitions: int) -> str:
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
        name
    ].result(timeout=30)
    return name


def _producer(s: Settings) -> Producer:
    return Producer(
        client_config(
            s,
            **{
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 1_000_000,
                "compression.type": "lz4",
            },
        )
    )


def produce_backlog(s: Settings, topic: str, count: int) -> float:
    """Produce ``count`` messages as fast as the client allows; returns the seconds taken."""
    pool = _payloads(min(count, 5000))
    producer = _producer(s)
    began = time.monotonic()
    for i in range(count):
        key, value = pool[i % len(pool)]
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=HEADERS)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(300) != 0:
        raise RuntimeError("messages left unsent after 300 s")
    return time.monotonic() - began


def _trino_count(s: Settings, table: str) -> int:
    return int(trino_query(s, f"SELECT count(*) FROM {table}", source="ingest-bench")[0][0])


def measure_freshness(
    s: Settings, spark: Any, namespace: str, topic: str, seconds: float, rate: int, trigger_s: float
) -> dict[str, Any]:
    stop = threading.Event()
    result: dict[str, Any] = {}

    def ingest() -> None:
        result["report"] = run_ingest(
            s,
            once=False,
            trigger_s=trigger_s,
            topics=[f"applications={topic}"],
            namespace=namespace,
            stop=stop,
            spark=spark,
        )

    worker = threading.Thread(target=ingest, name="ingest", daemon=True)
    worker.start()
    deadline = time.monotonic() + 300
    while len(spark.streams.active) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(5)  # let the queries run their first (empty) trigger

    table = f"{namespace}.applications"
    baseline = _trino_count(s, table)  # rows of the throughput run share the table
    polls: list[tuple[float, int]] = []
    producing = threading.Event()
    producing.set()

    def poll() -> None:
        while producing.is_set() or (polls and polls[-1][1] < len(sent)):
            polls.append((time.time(), _trino_count(s, table) - baseline))
            time.sleep(0.5)
            if polls[-1][0] > end_by + 120:
                break

    pool = _payloads(5000)
    producer = _producer(s)
    sent: list[float] = []
    end_by = time.time() + seconds
    poller = threading.Thread(target=poll, name="poll", daemon=True)
    poller.start()
    began = time.time()
    i = 0
    while time.time() < end_by:
        due = began + i / rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
        key, value = pool[i % len(pool)]
        ts = time.time()
        producer.produce(topic, key=key, value=value, headers=HEADERS, timestamp=int(ts * 1000))
        sent.append(ts)
        producer.poll(0)
        i += 1
    producer.flush(60)
    producing.clear()
    poller.join()
    stop.set()
    worker.join(120)

    latencies = []
    p = 0
    for index, produced in enumerate(sent):
        while p < len(polls) and polls[p][1] < index + 1:
            p += 1
        if p == len(polls):
            break
        latencies.append(polls[p][0] - produced)
    latencies.sort()
    missing = len(sent) - len(latencies)

    def pct(q: float) -> float | None:
        return (
            round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)
            if latencies
            else None
        )

    return {
        "messages": len(sent),
        "rate_per_s": round(len(sent) / max(sent[-1] - sent[0], 1e-9), 1) if sent else 0,
        "trigger_s": trigger_s,
        "p50_s": pct(0.50),
        "p95_s": pct(0.95),
        "max_s": round(latencies[-1], 2) if latencies else None,
        "mean_s": round(statistics.fmean(latencies), 2) if latencies else None,
        "not_visible_at_end": missing,
        "trino_polls": len(polls),
        "goal_p95_le_10s": bool(latencies) and missing == 0 and pct(0.95) <= 10.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--freshness-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=1000, help="messages/s in the freshness run")
    parser.add_argument("--trigger-s", type=float, default=1.0)
    parser.add_argument("--keep", action="store_true", help="keep the bench tables and topics")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    s = get_settings()
    tag = uuid.uuid4().hex[:8]
    namespace = f"bench_ingest_{tag}"
    admin = AdminClient(client_config(s))
    backlog = _create_topic(admin, f"bench-ingest-{tag}", args.partitions)
    live = _create_topic(admin, f"bench-ingest-live-{tag}", 1)
    out: dict[str, Any] = {"count": args.count, "partitions": args.partitions}
    try:
        out["produce_seconds"] = round(produce_backlog(s, backlog, args.count), 2)
        spark = spark_session("safra-ingest-bench", s)
        began = time.monotonic()
        report = run_ingest(
            s, once=True, topics=[f"applications={backlog}"], namespace=namespace, spark=spark
        )
        seconds = time.monotonic() - began
        rows = report.rows[f"{namespace}.applications"]
        out["throughput"] = {
            "rows": rows,
            "rejected": report.rows[f"{namespace}.rejected_records"],
            "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds, 1),
            "batches": report.batches,
        }
        if args.freshness_seconds > 0:
            out["freshness"] = measure_freshness(
                s, spark, namespace, live, args.freshness_seconds, args.rate, args.trigger_s
            )
        out["machine"] = {
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 1),
            "spark_master": s.spark_master,
        }
    finally:
        if not args.keep:
            drop_ingested(s, namespace)
            admin.delete_topics([backlog, live])
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
