"""The pseudonym key never leaves Trino: after a silver build — a whole one, and one killed while
dbt runs — neither Trino's query history, nor dbt's folder, nor Safra's logs, nor Trino's command
line hold the key; and silver's pseudonyms equal :mod:`safra.pseudonyms` (a punctuated CPF and
its digits get one pseudonym)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from trino.exceptions import TrinoUserError

from commands import stack
from pipelines.bronze_seed import BronzeWriter, create_bronze
from pipelines.dbt_runner import dbt_work_dir
from pipelines.simulator import generate_applications, generate_outcomes
from pipelines.transform import run_transform
from safra.lakehouse import drop_schemas, trino_query
from safra.pseudonyms import PseudonymKeyMismatch, check_trino_key, pseudonym, tax_id_pseudonym
from safra.settings import Settings

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
SAFRA_BIN = REPO / ".venv" / "bin" / "safra"
SEED = 20261203


def _punctuated(cpf: str) -> str:
    return f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"


@pytest.fixture(scope="module")
def bronze(local_stack: Settings) -> Iterator[dict[str, Any]]:
    """A small bronze of the test's own; application 1's CPF is application 0's, punctuated."""
    settings = local_stack
    tag = uuid.uuid4().hex[:10]
    schema = f"it_bronze_{tag}"
    create_bronze(settings, schema)
    apps = generate_applications(200, SEED, datetime(2024, 1, 1, tzinfo=UTC),
                                 datetime(2025, 1, 1, tzinfo=UTC))  # fmt: skip
    cpfs = [i for i, a in enumerate(apps) if a["tipo_pessoa"] == "FISICA"][:2]
    apps[cpfs[1]] = {**apps[cpfs[1]], "cpf_cnpj": _punctuated(apps[cpfs[0]]["cpf_cnpj"])}
    BronzeWriter(settings, schema, "applications").append(apps, [a["id_solicitacao"] for a in apps])
    outcomes = generate_outcomes(apps, SEED)
    BronzeWriter(settings, schema, "outcomes").append(
        outcomes, [o["id_solicitacao"] for o in outcomes]
    )
    prefixes = [f"it_{tag}_", f"it_{tag}_killed_"]
    yield {"schema": schema, "prefixes": prefixes, "apps": apps, "same_cpf": cpfs}
    drop_schemas(settings, [f"{p}{layer}" for p in prefixes for layer in ("silver", "gold")])
    drop_schemas(settings, [schema])


def _files_holding(key: str, *folders: Path) -> list[Path]:
    needle = key.encode()
    return [
        path for folder in folders if folder.exists() for path in folder.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    ]  # fmt: skip


def _query_history(settings: Settings) -> list[str]:
    """The text of every query Trino remembers (its web UI shows the same)."""
    return [text for (text,) in trino_query(settings, "select query from system.runtime.queries")]


def _silver_statements(settings: Settings, prefix: str) -> list[str]:
    """Remembered statements that pseudonymize into ``<prefix>silver``."""
    return [q for q in _query_history(settings)
            if "safra_tax_id_pseudonym(cpf_cnpj)" in q and f"{prefix}silver" in q]  # fmt: skip


def test_a_killed_transform_leaves_no_key(local_stack: Settings, bronze: dict[str, Any],
                                          tmp_path: Path) -> None:  # fmt: skip
    """SIGKILL `safra transform` once dbt has written silver's SQL and Trino runs it."""
    settings, key = local_stack, local_stack.require_pseudonym_key()
    prefix = bronze["prefixes"][1]
    compiled = dbt_work_dir(settings) / "target" / "compiled"
    began = time.time()
    output = tmp_path / "transform.out"
    with output.open("wb") as out:
        child = subprocess.Popen(
            [str(SAFRA_BIN), "transform", "--layer", "silver"], cwd=REPO, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "SAFRA_SCHEMA_PREFIX": prefix,
                 "SAFRA_BRONZE_SCHEMA": bronze["schema"]},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        sql: list[Path] = []
        while time.monotonic() < deadline and child.poll() is None:
            sql = [
                p for p in compiled.rglob("silver_applications.sql") if p.stat().st_mtime >= began
            ]
            if sql and _silver_statements(settings, prefix):
                break
            time.sleep(0.2)
        assert child.poll() is None, output.read_text()[-2000:]
        assert sql, "dbt did not run silver_applications within 180 s"
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    # the orphaned statements stop here, not in five minutes when Trino gives up on the client
    for (qid,) in trino_query(
        settings, "select query_id from system.runtime.queries where state not in "
        f"('FINISHED', 'FAILED') and query like '%{prefix}%' and query not like '%runtime.queries%'"
    ):  # fmt: skip
        try:
            trino_query(settings, f"call system.runtime.kill_query(query_id => '{qid}')")
        except TrinoUserError as err:  # it ended between the listing and the kill
            assert "is not running" in str(err), err

    assert "safra_tax_id_pseudonym(cpf_cnpj)" in sql[0].read_text()  # the SQL that held the key
    assert _files_holding(key, dbt_work_dir(settings), settings.logs_dir, tmp_path) == []
    assert [q for q in _query_history(settings) if key in q] == []


def test_silver_pseudonyms_equal_python_and_no_key_is_left(
    local_stack: Settings, bronze: dict[str, Any]
) -> None:
    settings, key = local_stack, local_stack.require_pseudonym_key()
    prefix = bronze["prefixes"][0]
    report = run_transform(settings, select_layers=("silver",), schema_prefix=prefix,
                           bronze_schema=bronze["schema"])  # fmt: skip
    assert report.passed, report.as_dict()

    rows = trino_query(
        settings,
        "select id_solicitacao, cpf_cnpj_hash, nome_hash, matricula_hash "
        f'from "{prefix}silver".silver_applications',
    )
    silver = {r[0]: r[1:] for r in rows}
    assert len(silver) == len(bronze["apps"])
    for app in bronze["apps"]:
        matricula = app["fontes_dados_adicionais"]["numero_matricula_imovel"]
        assert silver[app["id_solicitacao"]] == [
            tax_id_pseudonym(app["cpf_cnpj"], key),
            pseudonym(app["nome_razao_social"], key),
            None if matricula is None else pseudonym(matricula, key),
        ], app["id_solicitacao"]
    first, second = (bronze["apps"][i] for i in bronze["same_cpf"])
    assert "." in second["cpf_cnpj"] and "." not in first["cpf_cnpj"]
    assert silver[first["id_solicitacao"]][0] == silver[second["id_solicitacao"]][0]

    assert _files_holding(key, dbt_work_dir(settings), settings.logs_dir) == []
    assert _silver_statements(settings, prefix)  # the history holds the build's statements
    assert [q for q in _query_history(settings) if key in q] == []
    trino = stack.supervisor(settings).process("trino")
    assert trino is not None
    command = trino.cmdline()
    assert not [arg for arg in command if key in arg]
    assert any(arg.startswith("-Dsafra.pseudonym-key-file=") for arg in command)


def test_a_trino_keyed_otherwise_is_refused(local_stack: Settings) -> None:
    """Silver built with another key than Safra's would not match `safra forget`'s pseudonyms:
    the transform refuses to start (as when Trino still runs with a key since changed)."""
    check_trino_key(local_stack)
    rotated = local_stack.model_copy(update={"pseudonym_key": SecretStr("x" * 32)})
    with pytest.raises(PseudonymKeyMismatch, match="another key than SAFRA_PSEUDONYM_KEY"):
        check_trino_key(rotated)
    with pytest.raises(PseudonymKeyMismatch):
        run_transform(rotated, select_layers=("silver",), schema_prefix="it_never_")
