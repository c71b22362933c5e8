"""Bronze: what arrived from Kafka, kept as it arrived. The suite checks the ingestion's own
promises (each Kafka record once, stamped with its ingestion time and a known schema version),
not business validity: that is silver's job."""

from __future__ import annotations

import great_expectations.expectations as gxe
from great_expectations.expectations import Expectation

from quality.suites import critical, warning
from quality.suites.domain_values import TIPOS_PESSOA
from safra.contracts import VERSIONS

KAFKA_COORDINATES = ["kafka_topic", "kafka_partition", "kafka_offset"]


def _ingestion(subject: str | None) -> list[Expectation]:
    checks = [
        critical(
            gxe.ExpectCompoundColumnsToBeUnique(column_list=KAFKA_COORDINATES),
            "each Kafka record lands once: (topic, partition, offset) is the ingestion's key",
        ),
        critical(
            gxe.ExpectColumnValuesToNotBeNull(column="ingested_at"),
            "silver reads bronze incrementally by ingested_at",
        ),
    ]
    if subject is not None:
        checks.append(
            critical(
                gxe.ExpectColumnValuesToBeInSet(
                    column="schema_version", value_set=list(VERSIONS[subject])
                ),
                f"only the registered {subject} schema versions can be decoded",
            )
        )
    return checks


def expectations() -> dict[str, list[Expectation]]:
    """Bronze table -> its expectations."""
    return {
        "applications": [
            *_ingestion("application"),
            critical(
                gxe.ExpectColumnValuesToBeInSet(column="tipo_pessoa", value_set=list(TIPOS_PESSOA)),
                "tipo_pessoa is an Avro enum: anything else means decoding went wrong",
            ),
            warning(
                gxe.ExpectTableRowCountToBeBetween(min_value=1),
                "no application ingested yet: nothing downstream to build",
            ),
        ],
        "outcomes": [
            *_ingestion("outcome"),
            warning(
                gxe.ExpectColumnValuesToNotBeNull(column="id_solicitacao", mostly=0.99),
                "an outcome without its application id cannot be joined to a label",
            ),
        ],
        "rejected_records": [
            *_ingestion(None),
            critical(
                gxe.ExpectColumnValuesToNotBeNull(column="error"),
                "every rejected record says why it was rejected",
            ),
        ],
    }
