"""The data plane end to end on the real stack: simulator → Kafka → Spark → bronze → dbt silver/gold
behind the quality gates. Exact counts, no raw PII past bronze, gold checked against pandas over
the produced events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest

from pipelines.ingest import run_ingest
from pipelines.producer import produce
from pipelines.simulator import generate_applications, generate_outcomes
from pipelines.transform import run_transform
from safra.lakehouse import drop_schemas, trino_query
from safra.settings import Settings

pytestmark = pytest.mark.stack

N, DUPLICATES, POISON, SEED = 1500, 25, 4, 99
START, END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)


def query(s: Settings, sql: str) -> list[list]:
    return trino_query(s, sql, source="e2e-data-plane")


@pytest.fixture(scope="module")
def run(local_stack: Settings) -> Iterator[dict]:
    tag = uuid.uuid4().hex[:8]
    topics = {"applications": f"e2e-apps-{tag}", "outcomes": f"e2e-outcomes-{tag}"}
    namespace, prefix = f"e2e_bronze_{tag}", f"e2e_{tag}_"
    report = produce(
        local_stack, N, SEED, start=START, end=END, duplicates=DUPLICATES, poison=POISON,
        topic_applications=topics["applications"], topic_outcomes=topics["outcomes"],
    )  # fmt: skip
    ingest = run_ingest(local_stack, once=True, topics=topics, namespace=namespace)
    transform = run_transform(local_stack, schema_prefix=prefix, bronze_schema=namespace)
    yield {"produced": report, "ingest": ingest, "transform": transform,
           "namespace": namespace, "prefix": prefix}  # fmt: skip
    drop_schemas(local_stack, [f"{prefix}gold", f"{prefix}silver", namespace])


def test_bronze_holds_every_message_once_and_poison_aside(local_stack: Settings, run) -> None:
    ns, produced = run["namespace"], run["produced"]
    assert produced.applications == N and produced.failed == 0
    assert run["ingest"].rows[f"{ns}.applications"] == N + DUPLICATES
    assert run["ingest"].rows[f"{ns}.rejected_records"] == POISON
    assert run["ingest"].rows[f"{ns}.outcomes"] == produced.outcomes
    assert query(local_stack, f"SELECT count(*), count(DISTINCT kafka_key), count(DISTINCT "
                              f"(kafka_partition, kafka_offset)) FROM {ns}.applications") == [
        [N + DUPLICATES, N, N + DUPLICATES]
    ]  # fmt: skip
    rejected = f"SELECT count(*) FROM {ns}.rejected_records WHERE error LIKE 'undecodable%'"
    assert query(local_stack, rejected) == [[POISON]]


def test_silver_and_gold_are_deduplicated_pseudonymized_and_right(local_stack: Settings, run):
    prefix, transform = run["prefix"], run["transform"]
    assert transform.passed, transform.reason
    assert query(local_stack, f"SELECT count(*), count(DISTINCT id_solicitacao) "
                              f"FROM {prefix}silver.silver_applications") == [[N, N]]  # fmt: skip

    apps = pd.json_normalize(generate_applications(N, SEED, START, END))
    raw = set(apps.cpf_cnpj) | set(apps.nome_razao_social)
    for layer in ("silver", "gold"):
        columns = query(local_stack, "SELECT table_name, column_name FROM information_schema."
                        f"columns WHERE table_schema = '{prefix}{layer}' AND data_type LIKE "
                        "'varchar%'")  # fmt: skip
        for table, column in columns:
            sql = f'SELECT DISTINCT "{column}" FROM {prefix}{layer}."{table}"'
            values = {v for (v,) in query(local_stack, sql)}
            assert not values & raw, f"raw PII in {layer}.{table}.{column}"

    # gold against pandas over the produced events: per applicant, the last history row counts
    # every application and carries the max and min amount of them all
    expected = apps.groupby("proponente_id").valor_solicitado_credito.agg(["count", "max", "min"])
    gold = pd.DataFrame(
        query(local_stack, "SELECT proponente_id, max(n_solicitacoes), max(valor_max), "
                           f"min(valor_min) FROM {prefix}gold.proponente_features GROUP BY 1"),
        columns=["proponente_id", "count", "max", "min"],
    ).set_index("proponente_id").sort_index()  # fmt: skip
    pd.testing.assert_frame_equal(gold, expected.sort_index(), check_dtype=False)
    outcomes = generate_outcomes(generate_applications(N, SEED, START, END), SEED)
    end_ms = int(END.timestamp() * 1000)
    arrived = [o for o in outcomes if o["data_desfecho"] < end_ms]
    assert query(local_stack, f"SELECT count(*) FROM {prefix}silver.silver_outcomes") == [
        [len(arrived)]
    ]
