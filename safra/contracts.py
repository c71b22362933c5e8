"""Data contracts: the versioned Avro schemas of the events and how they are encoded and decoded.

Schemas live in ``safra/schemas/<subject>.v<version>.avsc``; the Kafka header names below are
the one definition every producer, consumer and the API use. Messages are schemaless Avro
(no container header); the writer's version travels beside the payload (for example in a Kafka
header or a schema-registry id) and is passed to :func:`decode`, which reads with the newest
reader schema of the subject, so old messages keep reading after the schema evolves.

Timestamps (``timestamp-millis``) are decoded as epoch milliseconds (``int``), not ``datetime``:
turning them into timestamps is the silver layer's job, done exactly once. :func:`encode` accepts
either epoch milliseconds or timezone-aware ``datetime`` values.
"""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any

import fastavro
from fastavro.validation import ValidationError, validate

logger = logging.getLogger(__name__)

SUBJECTS: tuple[str, ...] = ("application", "outcome", "scored_request")
VERSIONS: dict[str, tuple[int, ...]] = {
    "application": (1, 2),
    "outcome": (1,),
    "scored_request": (1,),
}
LATEST: dict[str, int] = {subject: max(versions) for subject, versions in VERSIONS.items()}

HEADER_SUBJECT = "schema.subject"
HEADER_VERSION = "schema.version"
"""The Kafka headers naming the writer's schema (no schema registry runs here)."""

Headers = list[tuple[str, str | bytes | None]]
"""Kafka headers, as confluent-kafka takes them."""


class ContractError(ValueError):
    """A record or payload does not honour a subject's contract (or the contract is unknown)."""

    def __init__(self, subject: str, version: int | None, cause: str) -> None:
        where = subject if version is None else f"{subject} v{version}"
        super().__init__(f"{where}: {cause}")
        self.subject = subject
        self.version = version
        self.cause = cause


def _check(subject: str, version: int) -> None:
    if subject not in VERSIONS:
        raise ContractError(subject, version, f"unknown subject; known subjects: {list(SUBJECTS)}")
    if version not in VERSIONS[subject]:
        raise ContractError(
            subject, version, f"unknown version; known versions: {list(VERSIONS[subject])}"
        )


def schema_text(subject: str, version: int) -> str:
    """The ``.avsc`` text of a schema, as it would be registered in a schema registry."""
    _check(subject, version)
    resource = files("safra") / "schemas" / f"{subject}.v{version}.avsc"
    return resource.read_text(encoding="utf-8")


@cache
def _schema_json(subject: str, version: int) -> dict[str, Any]:
    return json.loads(schema_text(subject, version))


@cache
def _parsed(subject: str, version: int) -> Any:
    return fastavro.parse_schema(copy.deepcopy(_schema_json(subject, version)))


def _without_logical_types(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_without_logical_types(v) for v in node]
    return node


def enum_symbols(subject: str, field_name: str, version: int | None = None) -> tuple[str, ...]:
    """The symbols of an enum field of ``subject`` (default: latest version): the contract is
    the one source of the domain's closed vocabularies."""
    for spec in _schema_json(subject, version or LATEST[subject])["fields"]:
        if spec["name"] == field_name:
            if isinstance(spec["type"], dict) and spec["type"].get("type") == "enum":
                return tuple(spec["type"]["symbols"])
            raise ContractError(subject, version, f"field {field_name!r} is not an enum")
    raise ContractError(subject, version, f"no field {field_name!r}")


def schema_without_logical_types(subject: str, version: int) -> Any:
    """The schema's JSON with logical types dropped: timestamps read and write as epoch ms
    (binary-identical to the logical form). Used by the decoder, the producer and Spark."""
    return _without_logical_types(_schema_json(subject, version))


@cache
def _parsed_raw(subject: str, version: int) -> Any:
    """The schema with logical types dropped, so timestamps decode as epoch milliseconds."""
    return fastavro.parse_schema(schema_without_logical_types(subject, version))


def load_schema(subject: str, version: int | None = None) -> Any:
    """The parsed (``fastavro.parse_schema``) schema of ``subject`` v``version`` (default: latest).

    The result is cached and shared: do not mutate it.
    """
    version = LATEST.get(subject, 0) if version is None else version
    _check(subject, version)
    return _parsed(subject, version)


def validate_record(record: Mapping[str, Any], subject: str, version: int | None = None) -> None:
    """Raise :class:`ContractError` unless ``record`` matches the schema, with no extra field."""
    version = LATEST.get(subject, 0) if version is None else version
    schema = load_schema(subject, version)
    try:
        validate(record, schema, raise_errors=True, strict=True)
    except ValidationError as exc:
        raise ContractError(subject, version, f"invalid record: {exc}") from exc


def encode(record: Mapping[str, Any], subject: str, version: int | None = None) -> bytes:
    """Schemaless Avro bytes of ``record`` written with ``subject`` v``version`` (default: latest).

    The record must match the schema exactly: a missing, extra or mistyped field raises
    :class:`ContractError`.
    """
    version = LATEST.get(subject, 0) if version is None else version
    validate_record(record, subject, version)
    buffer = io.BytesIO()
    try:
        fastavro.schemaless_writer(buffer, load_schema(subject, version), record, strict=True)
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
        raise ContractError(subject, version, f"cannot encode record: {exc!r}") from exc
    return buffer.getvalue()


def encode_unchecked(record: Mapping[str, Any], subject: str, version: int) -> bytes:
    """:func:`encode` without the value check, ten times faster: fastavro's strict writer still
    refuses a missing or extra field, but coerces some mistyped values (``"1.5"`` for a double).
    For records whose types the code itself fixes, once :func:`encode` accepted one (the scoring
    API's log, a record per request)."""
    buffer = io.BytesIO()
    try:
        fastavro.schemaless_writer(buffer, load_schema(subject, version), record, strict=True)
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
        raise ContractError(subject, version, f"cannot encode record: {exc!r}") from exc
    return buffer.getvalue()


def decode(payload: bytes, writer_version: int, subject: str) -> dict[str, Any]:
    """Read ``payload`` written with ``subject`` v``writer_version`` into the latest reader schema.

    Fields the writer did not have get the reader's defaults (schema resolution). Timestamps come
    back as epoch milliseconds. Bytes that do not decode, or leave bytes unread, raise
    :class:`ContractError`.
    """
    _check(subject, writer_version)
    reader_version = LATEST[subject]
    buffer = io.BytesIO(payload)
    try:
        record = fastavro.schemaless_reader(
            buffer,
            _parsed_raw(subject, writer_version),
            _parsed_raw(subject, reader_version),
        )
    except Exception as exc:  # fastavro raises many types on garbage: EOF, index, unicode...
        raise ContractError(
            subject, writer_version, f"undecodable payload ({len(payload)} bytes): {exc!r}"
        ) from exc
    if buffer.tell() != len(payload):
        raise ContractError(
            subject,
            writer_version,
            f"undecodable payload: {len(payload) - buffer.tell()} trailing bytes "
            f"after a record of {buffer.tell()} bytes",
        )
    if not isinstance(record, dict):
        raise ContractError(subject, writer_version, "payload did not decode to a record")
    return record


def schema_headers(subject: str, version: int) -> Headers:
    """The Kafka headers naming the writer's schema: ``schema.subject`` and ``schema.version``."""
    load_schema(subject, version)  # unknown subject or version: ContractError
    return [(HEADER_SUBJECT, subject.encode()), (HEADER_VERSION, str(version).encode())]
