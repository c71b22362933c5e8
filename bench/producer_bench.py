"""Throughput of the Kafka producer: prints one JSON object per compression codec.

    .venv/bin/python bench/producer_bench.py                      # 200,000 applications, lz4
    .venv/bin/python bench/producer_bench.py --compression lz4 zstd none --count 100000

Runs :func:`pipelines.producer.produce` itself (backfill mode, applications only) against the
Kafka of the settings, into a fresh topic ``safra.bench.<suffix>`` that is deleted afterwards
(``--keep-topic`` keeps it). ``msgs_per_s`` is encode + produce + flush (every message
acknowledged by the broker); data generation is timed apart and counted in ``end_to_end``.
The machine is shared: ``cpu_seconds`` (this process, librdkafka's threads included) and the
load average say how much of the wall clock was ours. A last line compares the producer's
compiled Avro writer with ``fastavro.schemaless_writer`` on the same records (CPU time).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import fastavro
from confluent_kafka.admin import AdminClient

from pipelines.producer import PRODUCER_CONFIG, AvroEncoder, produce
from pipelines.simulator import generate_applications
from safra import contracts
from safra.kafka_clients import client_config
from safra.settings import get_settings

GOAL_MSGS_PER_S = 50_000


def run(count: int, seed: int, compression: str, keep_topic: bool) -> dict[str, Any]:
    settings = get_settings()
    topic = f"safra.bench.{uuid.uuid4().hex[:10]}"
    load_before = os.getloadavg()[0]
    try:
        report = produce(
            settings,
            count=count,
            seed=seed,
            with_outcomes=False,
            topic_applications=topic,
            config={"compression.type": compression},
        )
    finally:
        if not keep_topic:
            admin = AdminClient(client_config(settings))
            for future in admin.delete_topics([topic], operation_timeout=30).values():
                future.result()
    end_to_end_s = report.generation_seconds + report.seconds
    return {
        "bench": "producer",
        "topic": topic if keep_topic else f"{topic} (deleted)",
        "applications": report.applications,
        "messages": report.messages,
        "delivered": report.delivered,
        "failed": report.failed,
        "compression": compression,
        "linger_ms": PRODUCER_CONFIG["linger.ms"],
        "batch_size": PRODUCER_CONFIG["batch.size"],
        "produce_seconds": round(report.seconds, 3),
        "msgs_per_s": round(report.msgs_per_s),
        "cpu_seconds": round(report.cpu_seconds, 3),
        "msgs_per_cpu_s": round(report.messages / report.cpu_seconds),
        "goal_msgs_per_s": GOAL_MSGS_PER_S,
        "goal_met": report.msgs_per_s >= GOAL_MSGS_PER_S,
        "generation_seconds": round(report.generation_seconds, 3),
        "end_to_end_seconds": round(end_to_end_s, 3),
        "end_to_end_msgs_per_s": round(report.messages / end_to_end_s),
        "cpus": os.cpu_count(),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "python": platform.python_version(),
    }


def compare_encoders(count: int, seed: int) -> dict[str, Any]:
    """Records per CPU second: the producer's writer vs ``fastavro.schemaless_writer``."""
    records = generate_applications(
        count, seed, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)
    )
    encoder = AvroEncoder("application", 2)
    schema = contracts.load_schema("application", 2)
    buffer = io.BytesIO()

    def with_fastavro(record: dict[str, Any]) -> bytes:
        buffer.seek(0)
        buffer.truncate()
        fastavro.schemaless_writer(buffer, schema, record)
        return buffer.getvalue()

    rates: dict[str, int] = {}
    for name, encode in (
        ("producer_writer", encoder),
        ("fastavro_schemaless_writer", with_fastavro),
    ):
        began = time.process_time()
        for record in records:
            encode(record)
        rates[name] = round(len(records) / (time.process_time() - began))
    return {
        "bench": "avro_encode",
        "records": count,
        "records_per_cpu_s": rates,
        "compiled_writer": encoder.compiled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="applications to send")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--compression",
        nargs="+",
        default=[PRODUCER_CONFIG["compression.type"]],
        choices=["lz4", "zstd", "snappy", "gzip", "none"],
        help="one run per codec",
    )
    parser.add_argument("--keep-topic", action="store_true", help="do not delete the topic")
    parser.add_argument(
        "--encode-sample",
        type=int,
        default=50_000,
        help="records of the encoder comparison (0: skip)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for compression in args.compression:
        print(json.dumps(run(args.count, args.seed, compression, args.keep_topic)), flush=True)
    if args.encode_sample:
        print(json.dumps(compare_encoders(args.encode_sample, args.seed)), flush=True)


if __name__ == "__main__":
    main()
