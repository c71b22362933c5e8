"""Erasure on request (``safra forget``) and retention of raw identity (``safra retention``).

- :func:`forget`: one person, named by CPF/CNPJ or by ``proponente_id``, leaves the lakehouse
  and the online store: their rows in every bronze, silver and gold table that keys rows by
  ``proponente_id`` or ``id_solicitacao`` (and bronze rows carrying their tax id), the rejected
  records whose raw bytes name them, and their Feast ``proponente`` keys in Redis. Aggregate
  tables (gold ``location_features``, ``risk_features``: one row per municipality or per risk
  band and crop) hold no person's row and are left as they are.
- :func:`apply_retention`: the raw identity columns of bronze (``cpf_cnpj``,
  ``nome_razao_social``, ``fontes_dados_adicionais.numero_matricula_imovel``) and the rejected
  records' raw bytes are nulled once older than ``SAFRA_RAW_RETENTION_DAYS``; silver keeps its
  pseudonyms.

Deleting a row in Iceberg only hides it: older snapshots, and the files they hold, still have it.
So each table changed then goes through :func:`_purge_history`: the data files with deletes are
rewritten (``optimize``), the refs other than ``main`` are moved to the new snapshot when they
pointed at the one before, or removed when their snapshot still holds what was erased, and every
older snapshot is expired, which deletes the files only they referenced. Both stages hold the
transform lock of the schemas (:func:`pipelines.transform.exclusive`).

Neither the CPF nor a name or land registry number is ever put in a query's text or a log line:
a person is found through their pseudonym in silver (computed in Python,
:mod:`safra.pseudonyms`, the key never leaves the process) and through a 16-bit bucket of the
tax id's SHA-256 in bronze (thousands of possible CPFs per bucket), matched exactly in Python.
Each request appends a record without the identity to ``<data_dir>/audit/erasure.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.transform import exclusive
from safra.lakehouse import iceberg_catalog, trino_cursor
from safra.pseudonyms import pseudonym, tax_id_digits, tax_id_pseudonym
from safra.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "safra-erasure"
BUCKET_HEX = 4
"""Hex digits of a tax id's SHA-256 that bronze is filtered on (16 bits: one CPF in 65,536
buckets; a query text names a bucket, never a person)."""
FEAST_ENTITY_KEY_SERIALIZATION = 3
"""``entity_key_serialization_version`` of ``feature_repo/feature_store.yaml``."""
FEAST_JOIN_KEY = "proponente_id"
"""The join key of Feast's ``proponente`` entity (``feature_repo/entities.py``)."""
KAFKA_COORDINATES = ("kafka_topic", "kafka_partition", "kafka_offset")
RAW_IDENTITY_COLUMNS = ("cpf_cnpj", "nome_razao_social")
REGISTRY_STRUCT, REGISTRY_FIELD = "fontes_dados_adicionais", "numero_matricula_imovel"
HOLD_TAG = "safra-erasure-hold-"
"""Prefix of the tag held on the current snapshot while older ones expire."""
NOT_FOUND_EXIT = 3
"""`safra forget`'s exit code when nobody matches (nothing changed)."""


class ErasureError(RuntimeError):
    """A request that cannot be carried out as asked (the message names the cause and fix)."""


@dataclass(frozen=True)
class Schemas:
    """Where the layers are: bronze, silver and gold schema names."""

    bronze: str
    silver: str
    gold: str

    @classmethod
    def of(
        cls, settings: Settings, schema_prefix: str | None = None, bronze_schema: str | None = None
    ) -> Schemas:
        prefix = settings.schema_prefix if schema_prefix is None else schema_prefix
        return cls(bronze_schema or settings.bronze_schema, f"{prefix}silver", f"{prefix}gold")


@dataclass
class TablePurge:
    """What one table lost: rows, refs moved to the new snapshot or removed, snapshots expired."""

    table: str
    rows: int
    refs_moved: list[str] = field(default_factory=list)
    refs_removed: list[str] = field(default_factory=list)
    snapshots_expired: int = 0


@dataclass
class ErasureReport:
    """One `safra forget` or `safra retention` request; holds no identity (it is the audit
    record)."""

    request_id: str
    action: str
    at: str
    identified_by: str | None
    found: bool
    tables: list[TablePurge] = field(default_factory=list)
    redis_keys_deleted: int = 0
    retention_days: int | None = None
    cutoff: str | None = None

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": self.rows}


@dataclass
class Person:
    """What identifies one person in the lakehouse (kept in memory only, never logged)."""

    proponente_ids: set[str] = field(default_factory=set)
    tax_ids: set[str] = field(default_factory=set)
    """Digits of their CPF/CNPJ."""
    raw_tax_ids: set[str] = field(default_factory=set)
    """Their tax ids as bronze holds them (punctuated or not)."""
    application_ids: set[str] = field(default_factory=set)
    registry_numbers: set[str] = field(default_factory=set)
    rows: dict[str, set[tuple[str, int, int]]] = field(default_factory=dict)
    """bronze table -> Kafka coordinates of rows matched by content (tax id, raw bytes)."""

    @property
    def matched_content(self) -> bool:
        """Whether a silver or bronze row matched (the ids asked for alone match nothing)."""
        return bool(self.application_ids or any(self.rows.values()))

    def needles(self) -> list[bytes]:
        """Byte strings whose presence in a raw message names this person."""
        values = set(self.raw_tax_ids) | self.proponente_ids | self.registry_numbers
        values |= self.application_ids
        for digits in self.tax_ids:
            values |= {digits, *punctuated(digits)}
        return sorted(v.encode() for v in values if len(v) >= 8)


# --- SQL pieces --------------------------------------------------------------------------------


def punctuated(digits: str) -> list[str]:
    """The usual written forms of a CPF (``123.456.789-09``) or CNPJ (``12.345.678/0001-95``)."""
    if len(digits) == 11:
        return [f"{digits[:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:]}"]
    if len(digits) == 14:
        return [f"{digits[:2]}.{digits[2:5]}.{digits[5:8]}/{digits[8:12]}-{digits[12:]}"]
    return []


def tax_id_bucket(digits: str) -> str:
    """The first :data:`BUCKET_HEX` hex digits of SHA-256 over a tax id's digits: what the
    bronze query filters on (Trino computes the same of each row)."""
    return hashlib.sha256(digits.encode()).hexdigest()[:BUCKET_HEX]


def _literal(value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def _in(column: str, values: Iterable[str | int]) -> str | None:
    listed = sorted(set(values))  # type: ignore[type-var]
    return f"{column} IN ({', '.join(_literal(v) for v in listed)})" if listed else None


def _coordinates_in(rows: Iterable[tuple[str, int, int]]) -> str | None:
    clauses = [
        f"(kafka_topic = {_literal(t)} AND kafka_partition = {p} AND kafka_offset = {o})"
        for t, p, o in sorted(set(rows))
    ]
    return "(" + " OR ".join(clauses) + ")" if clauses else None


def _any(clauses: Sequence[str | None]) -> str | None:
    present = [c for c in clauses if c]
    return " OR ".join(present) if present else None


class _Trino:
    """A cursor with the catalog's name at hand."""

    def __init__(self, cur: Any, catalog: str) -> None:
        self.cur, self.catalog = cur, catalog

    def rows(self, sql: str) -> list[list[Any]]:
        self.cur.execute(sql)
        return [list(r) for r in self.cur.fetchall()]

    def stream(self, sql: str, size: int = 500) -> Iterator[Sequence[Any]]:
        self.cur.execute(sql)
        while batch := self.cur.fetchmany(size):
            yield from batch

    def name(self, schema: str, table: str) -> str:
        return f'{self.catalog}."{schema}"."{table}"'

    def meta(self, schema: str, table: str, kind: str) -> str:
        return f'{self.catalog}."{schema}"."{table}${kind}"'

    def tables(self, schemas: Sequence[str]) -> dict[tuple[str, str], dict[str, str]]:
        """(schema, table) -> {column: type} of the base tables of ``schemas``."""
        listed = ", ".join(_literal(s) for s in schemas)
        found: dict[tuple[str, str], dict[str, str]] = {}
        for schema, table, column, kind in self.rows(
            "SELECT c.table_schema, c.table_name, c.column_name, c.data_type "
            "FROM information_schema.columns c JOIN information_schema.tables t "
            "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            f"WHERE c.table_schema IN ({listed}) AND t.table_type = 'BASE TABLE' "
            "ORDER BY c.table_schema, c.table_name, c.ordinal_position"
        ):
            found.setdefault((schema, table), {})[column] = kind
        return found

    def main_snapshot(self, schema: str, table: str) -> int | None:
        rows = self.rows(
            f"SELECT snapshot_id FROM {self.meta(schema, table, 'refs')} WHERE name = 'main'"
        )
        return int(rows[0][0]) if rows else None

    def count(self, schema: str, table: str, where: str, snapshot: int | None = None) -> int:
        version = f" FOR VERSION AS OF {snapshot}" if snapshot is not None else ""
        sql = f"SELECT count(*) FROM {self.name(schema, table)}{version} WHERE {where}"
        return int(self.rows(sql)[0][0])


# --- finding the person -----------------------------------------------------------------------


def find_person(
    db: _Trino,
    schemas: Schemas,
    tables: dict[tuple[str, str], dict[str, str]],
    key: str,
    cpf: str | None = None,
    proponente_id: str | None = None,
) -> Person:
    """Everything that identifies the person named by ``cpf`` or ``proponente_id``: their ids
    and tax ids, closed over silver (pseudonyms) and bronze (raw), and the rejected records
    whose raw bytes name them."""
    person = Person()
    if cpf is not None:
        person.tax_ids.add(tax_id_digits(cpf))
    if proponente_id is not None:
        person.proponente_ids.add(proponente_id)
    silver = (schemas.silver, "silver_applications")
    bronze = (schemas.bronze, "applications")
    for _ in range(3):  # ids -> tax ids -> ids: the closure is reached in two rounds
        before = (len(person.proponente_ids), len(person.tax_ids))
        if silver in tables:
            _match_silver(db, silver, key, person)
        if bronze in tables:
            _match_bronze(db, bronze, person)
        if (len(person.proponente_ids), len(person.tax_ids)) == before:
            break
    rejected = (schemas.bronze, "rejected_records")
    if rejected in tables and (person.matched_content or person.proponente_ids):
        _match_rejected(db, rejected, person)
    return person


def _match_silver(db: _Trino, table: tuple[str, str], key: str, person: Person) -> None:
    hashes = {tax_id_pseudonym(t, key) for t in person.tax_ids}
    hashes |= {pseudonym(t, key) for t in person.raw_tax_ids}  # silver before digits-only hashing
    where = _any([_in("cpf_cnpj_hash", hashes), _in("proponente_id", person.proponente_ids)])
    if where is None:
        return
    for pid, app_id in db.rows(
        f"SELECT DISTINCT proponente_id, id_solicitacao FROM {db.name(*table)} WHERE {where}"
    ):
        if pid:
            person.proponente_ids.add(pid)
        if app_id:
            person.application_ids.add(app_id)


def _match_bronze(db: _Trino, table: tuple[str, str], person: Person) -> None:
    buckets = {tax_id_bucket(t) for t in person.tax_ids}
    bucket_sql = (
        f"substr(to_hex(sha256(to_utf8(regexp_replace(coalesce(cpf_cnpj, ''), '[^0-9]', '')))), "
        f"1, {BUCKET_HEX})"
    )
    where = _any(
        [
            _in("proponente_id", person.proponente_ids),
            _in(f"lower({bucket_sql})", buckets),
        ]
    )
    if where is None:
        return
    for pid, raw, registry, app_id, topic, partition, offset in db.stream(
        f"SELECT proponente_id, cpf_cnpj, {REGISTRY_STRUCT}.{REGISTRY_FIELD}, "
        "coalesce(nullif(id_solicitacao, ''), kafka_key), kafka_topic, kafka_partition, "
        f"kafka_offset FROM {db.name(*table)} WHERE {where}"
    ):
        digits = tax_id_digits(raw) if raw else None
        if pid not in person.proponente_ids and digits not in person.tax_ids:
            continue  # another person in the same bucket
        if pid:
            person.proponente_ids.add(pid)
        if raw:
            person.raw_tax_ids.add(raw)
            if digits:
                person.tax_ids.add(digits)
        if registry:
            person.registry_numbers.add(registry)
        if app_id:
            person.application_ids.add(app_id)
        person.rows.setdefault(table[1], set()).add((topic, int(partition), int(offset)))


def _match_rejected(db: _Trino, table: tuple[str, str], person: Person) -> None:
    """Rejected records are raw bytes that could not be decoded: no column to filter on, so
    each is read here and searched for the person's ids (they are few: the exception path)."""
    needles = person.needles()
    for topic, partition, offset, raw in db.stream(
        f"SELECT kafka_topic, kafka_partition, kafka_offset, raw_value FROM {db.name(*table)} "
        "WHERE raw_value IS NOT NULL"
    ):
        if any(n in raw for n in needles):
            person.rows.setdefault(table[1], set()).add((topic, int(partition), int(offset)))


def _person_predicate(table: str, columns: dict[str, str], person: Person) -> str | None:
    """The rows of ``table`` that are the person's, or None when it keys no person's row."""
    clauses = []
    if "proponente_id" in columns:
        clauses.append(_in("proponente_id", person.proponente_ids))
    if "id_solicitacao" in columns:
        clauses.append(_in("id_solicitacao", person.application_ids))
    if all(c in columns for c in KAFKA_COORDINATES):
        clauses.append(_coordinates_in(person.rows.get(table, ())))
    return _any(clauses)


# --- rewriting history ------------------------------------------------------------------------


def _purge_history(
    db: _Trino, settings: Settings, schema: str, table: str, before: int | None, held: str
) -> TablePurge:
    """After rows of ``schema.table`` were deleted or rewritten (``before``: its snapshot
    then): rewrite the data files with deletes (``optimize``) and the manifests (a removed
    file's manifest entry keeps its column bounds: values of the erased rows), move the refs
    that pointed at ``before`` to the new snapshot and remove the other refs whose snapshot
    still has a row matching ``held``, then expire every snapshot older than the current one.

    Iceberg's incremental cleanup (what expiring uses on a table with one ref) deletes only the
    files that an *expired* snapshot removed, not those the retained current one removed (the
    rewritten ones): a tag held on the current snapshot during the expiry makes it compute what
    stays reachable instead, and delete everything else the expired snapshots referenced.
    """
    purge = TablePurge(table=f"{schema}.{table}", rows=0)
    name = db.name(schema, table)
    db.rows(f"ALTER TABLE {name} EXECUTE optimize(file_size_threshold => '1B')")  # files w/ deletes
    db.rows(f"ALTER TABLE {name} EXECUTE optimize_manifests")
    after = db.main_snapshot(schema, table)
    refs = db.rows(
        f"SELECT name, type, snapshot_id FROM {db.meta(schema, table, 'refs')} "
        "WHERE name <> 'main' ORDER BY name"
    )
    iceberg = iceberg_catalog(settings).load_table(f"{schema}.{table}")
    manage = iceberg.manage_snapshots()
    for ref, kind, snapshot in refs:
        current = iceberg.metadata.refs[ref]
        if ref.startswith(HOLD_TAG):  # left by an interrupted run
            manage.remove_tag(ref)
        elif before is not None and int(snapshot) == before and after is not None:
            if kind == "TAG":
                manage.create_tag(after, ref, max_ref_age_ms=current.max_ref_age_ms)
            else:
                manage.create_branch(
                    after,
                    ref,
                    current.max_ref_age_ms,
                    current.max_snapshot_age_ms,
                    current.min_snapshots_to_keep,
                )
            purge.refs_moved.append(ref)
        elif _holds(db, schema, table, held, int(snapshot)):
            if kind == "TAG":
                manage.remove_tag(ref)
            else:
                manage.remove_branch(ref)
            purge.refs_removed.append(ref)
    hold = f"{HOLD_TAG}{uuid.uuid4().hex[:12]}"
    if after is not None:
        manage.create_tag(after, hold)
    manage.commit()
    snapshots = db.meta(schema, table, "snapshots")
    n_before = int(db.rows(f"SELECT count(*) FROM {snapshots}")[0][0])
    db.rows(f"ALTER TABLE {name} EXECUTE expire_snapshots(retention_threshold => '0s')")
    purge.snapshots_expired = n_before - int(db.rows(f"SELECT count(*) FROM {snapshots}")[0][0])
    if after is not None:
        iceberg_catalog(settings).load_table(f"{schema}.{table}").manage_snapshots().remove_tag(
            hold
        ).commit()
    return purge


def _holds(db: _Trino, schema: str, table: str, where: str, snapshot: int) -> bool:
    """Whether ``snapshot`` of the table has a row matching ``where`` (True when it cannot be
    read with today's columns: such a ref is removed rather than trusted)."""
    import trino

    try:
        return db.count(schema, table, where, snapshot) > 0
    except trino.exceptions.TrinoQueryError:
        return True


# --- the stages -------------------------------------------------------------------------------


def forget(
    settings: Settings,
    *,
    cpf: str | None = None,
    proponente_id: str | None = None,
    schema_prefix: str | None = None,
    bronze_schema: str | None = None,
) -> ErasureReport:
    """Erase the person named by ``cpf`` (CPF or CNPJ, punctuated or not) or ``proponente_id``
    from bronze, silver, gold, their snapshots and files, and the online store.

    Returns the report (also appended to the audit file); ``found`` is False, and nothing is
    changed, when nobody matches. :class:`ErasureError` for a malformed request.
    """
    if (cpf is None) == (proponente_id is None):
        raise ErasureError("name the person by exactly one of --cpf or --proponente-id")
    if cpf is not None and len(tax_id_digits(cpf)) not in (11, 14):
        raise ErasureError(
            "--cpf expects a CPF (11 digits) or a CNPJ (14 digits), punctuated or not"
        )
    if proponente_id is not None and not proponente_id.strip():
        raise ErasureError("--proponente-id is empty")
    key = settings.require_pseudonym_key()
    schemas = Schemas.of(settings, schema_prefix, bronze_schema)
    report = _new_report("forget", "cpf" if cpf is not None else "proponente_id")
    prefix = settings.schema_prefix if schema_prefix is None else schema_prefix
    with exclusive(settings, prefix), trino_cursor(settings, SOURCE) as cur:
        db = _Trino(cur, settings.iceberg_catalog)
        tables = db.tables([schemas.bronze, schemas.silver, schemas.gold])
        person = find_person(db, schemas, tables, key, cpf, proponente_id)
        scope = {}  # (schema, table) -> (predicate, snapshot before, rows now)
        for (schema, table), columns in tables.items():
            where = _person_predicate(table, columns, person)
            if where is None:
                continue  # an aggregate: no person's row
            before = db.main_snapshot(schema, table)
            rows = db.count(schema, table, where) if before is not None else 0
            scope[schema, table] = (where, before, rows)
        online = online_feature_keys(settings, person.proponente_ids)
        report.found = any(rows for _, _, rows in scope.values()) or bool(online)
        if not report.found:
            log.info("forget %s: nobody matches; nothing changed", report.request_id)
            write_audit(settings, report)
            return report
        for (schema, table), (where, before, rows) in scope.items():
            if rows:
                db.rows(f"DELETE FROM {db.name(schema, table)} WHERE {where}")
            purge = _purge_history(db, settings, schema, table, before if rows else None, where)
            purge.rows = rows
            report.tables.append(purge)
            log.info(
                "forget %s: %s: %d rows, refs moved %s, removed %s, %d snapshots expired",
                report.request_id,
                purge.table,
                rows,
                purge.refs_moved,
                purge.refs_removed,
                purge.snapshots_expired,
            )
    report.redis_keys_deleted = delete_online_features(settings, online)
    write_audit(settings, report)
    return report


def _redis(settings: Settings) -> Any:
    import redis

    return redis.Redis.from_url(settings.redis_url)


def online_feature_keys(settings: Settings, proponente_ids: Iterable[str]) -> list[bytes]:
    """The Redis keys of Feast's ``proponente`` entity for ``proponente_ids`` that exist."""
    keys = feast_keys(settings, proponente_ids)
    if not keys:
        return []
    client = _redis(settings)
    try:
        with client.pipeline(transaction=False) as pipe:
            for k in keys:
                pipe.exists(k)
            return [k for k, n in zip(keys, pipe.execute(), strict=True) if n]
    finally:
        client.close()


def delete_online_features(settings: Settings, keys: Sequence[bytes]) -> int:
    """Delete ``keys`` from the online store; returns how many existed."""
    if not keys:
        return 0
    client = _redis(settings)
    try:
        return int(client.delete(*keys))
    finally:
        client.close()


def feast_keys(settings: Settings, proponente_ids: Iterable[str]) -> list[bytes]:
    """Feast's Redis keys of the ``proponente`` entity for ``proponente_ids``: Feast's own
    serialization of the entity key, then the project's name (``feast.infra.online_stores.redis``
    of feast 0.67)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return [
        serialize_entity_key(
            EntityKey(join_keys=[FEAST_JOIN_KEY], entity_values=[Value(string_val=pid)]),
            entity_key_serialization_version=FEAST_ENTITY_KEY_SERIALIZATION,
        )
        + settings.feast_project.encode()
        for pid in sorted(set(proponente_ids))
    ]


def apply_retention(
    settings: Settings,
    days: int | None = None,
    *,
    schema_prefix: str | None = None,
    bronze_schema: str | None = None,
    now: datetime | None = None,
) -> ErasureReport:
    """Null bronze's raw identity columns, and the rejected records' raw bytes, of the rows
    ingested more than ``days`` (default ``SAFRA_RAW_RETENTION_DAYS``) ago; then rewrite those
    tables' history like :func:`forget`. Idempotent: rows already nulled are not touched."""
    days = settings.raw_retention_days if days is None else days
    if days < 1:
        raise ErasureError(f"--days must be at least 1, got {days}")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    schemas = Schemas.of(settings, schema_prefix, bronze_schema)
    report = _new_report("retention", None)
    report.retention_days, report.cutoff = days, cutoff.isoformat()
    report.found = True
    older = f"ingested_at < from_iso8601_timestamp({_literal(cutoff.isoformat())})"
    prefix = settings.schema_prefix if schema_prefix is None else schema_prefix
    with exclusive(settings, prefix), trino_cursor(settings, SOURCE) as cur:
        db = _Trino(cur, settings.iceberg_catalog)
        tables = db.tables([schemas.bronze])
        for (schema, table), columns in tables.items():
            change = _retention_change(columns)
            if change is None:
                continue
            assignments, raw_left = change
            held = f"{older} AND ({raw_left})"
            before = db.main_snapshot(schema, table)
            rows = db.count(schema, table, held) if before is not None else 0
            if not rows:
                continue
            db.rows(f"UPDATE {db.name(schema, table)} SET {assignments} WHERE {held}")
            purge = _purge_history(db, settings, schema, table, before, held)
            purge.rows = rows
            report.tables.append(purge)
            log.info(
                "retention: %s: %d rows nulled, %d snapshots expired",
                purge.table,
                rows,
                purge.snapshots_expired,
            )
    write_audit(settings, report)
    return report


def _retention_change(columns: dict[str, str]) -> tuple[str, str] | None:
    """(SET clause, "raw identity left" predicate) for a bronze table, None when it has none."""
    sets, left = [], []
    for column in RAW_IDENTITY_COLUMNS:
        if column in columns:
            sets.append(f"{column} = NULL")
            left.append(f"{column} IS NOT NULL")
    struct_type = columns.get(REGISTRY_STRUCT, "")
    if f"{REGISTRY_FIELD} " in struct_type and struct_type.startswith("row("):
        # one field of a struct: the whole struct again, with that field null
        fields = [f.strip().split(" ")[0] for f in struct_type[4:-1].split(",")]
        values = ", ".join(
            "NULL" if f == REGISTRY_FIELD else f"{REGISTRY_STRUCT}.{f}" for f in fields
        )
        sets.append(
            f"{REGISTRY_STRUCT} = CASE WHEN {REGISTRY_STRUCT} IS NULL THEN NULL "
            f"ELSE CAST(ROW({values}) AS {struct_type}) END"
        )
        left.append(f"{REGISTRY_STRUCT}.{REGISTRY_FIELD} IS NOT NULL")
    if "raw_value" in columns:  # rejected records: undecodable bytes, identity possibly inside
        sets.append("raw_value = NULL")
        left.append("raw_value IS NOT NULL")
    return (", ".join(sets), " OR ".join(left)) if sets else None


# --- the audit trail --------------------------------------------------------------------------


def _new_report(action: str, identified_by: str | None) -> ErasureReport:
    return ErasureReport(
        request_id=uuid.uuid4().hex,
        action=action,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        identified_by=identified_by,
        found=False,
    )


def audit_path(settings: Settings) -> Path:
    return settings.data_dir / "audit" / "erasure.jsonl"


def write_audit(settings: Settings, report: ErasureReport) -> Path:
    """Append ``report`` (no identity: request id, time, what kind of id named the person,
    counts) as one JSON line to :func:`audit_path`, a file only its owner reads (0600)."""
    path = audit_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(json.dumps(report.as_dict(), sort_keys=True) + "\n")
    os.chmod(path, 0o600)
    return path
