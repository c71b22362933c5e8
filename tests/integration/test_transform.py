"""The dbt transform (bronze -> silver -> gold) on the real local Trino and Iceberg catalog.

Bronze tables of the test's own (``it_bronze_<hex>``) are seeded with simulator events, some
duplicated, some invalid, some written with schema v1; silver and gold land in schemas of the
test's own (``it_<hex>_silver`` / ``it_<hex>_gold``). Gold is compared with an oracle computed in
pandas from the generated events, not from SQL, after a first run and after an incremental one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.bronze_seed import BronzeWriter, create_bronze
from pipelines.dbt_runner import dbt_work_dir, run_dbt
from pipelines.simulator import (
    generate_applications,
    generate_outcomes,
    is_valid_tax_id,
    live_applications,
)
from pipelines.transform import TransformReport, run_transform
from safra.lakehouse import drop_schemas, trino_cursor, trino_query
from safra.pseudonyms import tax_id_pseudonym
from safra.settings import Settings

pytestmark = pytest.mark.stack

N_APPLICATIONS = 3000
N_INVALID = 90  # the silver gate stops below 95 % valid records
SEED = 20240611
START = datetime(2023, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 1, tzinfo=UTC)
REL_TOL = 1e-9
MS_PER_DAY = 86_400_000

# --- reading Trino ---------------------------------------------------------------------------


def _frame(settings: Settings, sql: str) -> pd.DataFrame:
    with trino_cursor(settings, "it-transform") as cur:
        cur.execute(sql)
        rows = cur.fetchall()
        return pd.DataFrame(rows, columns=[d[0] for d in cur.description])


# --- the oracle: pandas over the generated events ---------------------------------------------


def event_key(row: dict[str, Any]) -> str:
    return row["id_solicitacao"] or row["kafka_key"]


def first_arrivals(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per event key, the copy with the earliest Kafka offset (then partition, ingestion)."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = event_key(row)
        rank = (row["kafka_offset"], row["kafka_partition"], row["ingested_at"])
        known = best.get(key)
        if known is None or rank < (
            known["kafka_offset"],
            known["kafka_partition"],
            known["ingested_at"],
        ):
            best[key] = row
    return best


def classificacao(area: float | None) -> str | None:
    if area is None:
        return None
    return "MINIFUNDIO" if area < 50 else "PEQUENA" if area < 200 else (
        "MEDIA" if area < 1000 else "GRANDE")  # fmt: skip


def faixa(score: int | None) -> str:
    if score is None:
        return "SEM_SCORE"
    return "BAIXO" if score >= 700 else "MEDIO" if score >= 500 else (
        "ALTO" if score >= 300 else "MUITO_ALTO")  # fmt: skip


def perfil_frequencia(n: int) -> str:
    return "NOVO" if n <= 1 else "RECORRENTE" if n <= 5 else (
        "FREQUENTE" if n <= 10 else "MUITO_FREQUENTE")  # fmt: skip


def perfil_volatilidade(cv: float | None) -> str:
    if cv is None or np.isnan(cv) or cv == 0:
        return "CONSISTENTE"
    return "ESTAVEL" if cv < 0.2 else "MODERADO" if cv < 0.5 else "VOLATIL"


def densidade(n: int) -> str:
    return "BAIXA" if n < 10 else "MEDIA" if n < 50 else "ALTA" if n < 200 else "MUITO_ALTA"


def silver_oracle(app_rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    records = []
    for key, r in first_arrivals(app_rows).items():
        loc, extra = r["localizacao_propriedade"] or {}, r["fontes_dados_adicionais"] or {}
        uf = (loc.get("uf") or "").strip() or None  # silver stores a blank UF as null
        valid = (
            is_valid_tax_id(r["cpf_cnpj"], r["tipo_pessoa"])
            and (r["valor_solicitado_credito"] or 0) > 0
            and (r["area_total_hectares"] or 0) > 0
            and uf is not None
        )
        records.append({
            "id_solicitacao": key,
            "proponente_id": r["proponente_id"],
            "data_solicitacao": r["data_solicitacao"],
            "cpf_cnpj": r["cpf_cnpj"],
            "nome_razao_social": r["nome_razao_social"],
            "matricula": extra.get("numero_matricula_imovel"),
            "tipo_pessoa": r["tipo_pessoa"],
            "valor": r["valor_solicitado_credito"],
            "area": r["area_total_hectares"],
            "cultura_principal": r["cultura_principal"],
            "anos_experiencia": r["anos_experiencia"],
            "serasa_score": extra.get("serasa_score"),
            "ibama": extra.get("ibama_autuacoes_ativas"),
            "uf": uf,
            "municipio": (loc.get("municipio") or "").strip() or None,
            "classificacao_propriedade": classificacao(r["area_total_hectares"]),
            "faixa_risco_credito": faixa(extra.get("serasa_score")),
            "cpf_cnpj_valido": is_valid_tax_id(r["cpf_cnpj"], r["tipo_pessoa"]),
            "registro_valido": valid,
            "kafka_offset": r["kafka_offset"],
        })  # fmt: skip
    return pd.DataFrame(records)


def outcomes_oracle(outcome_rows: Sequence[dict[str, Any]], silver: pd.DataFrame) -> pd.DataFrame:
    """Deduplicated outcomes of valid applications, with the application's keys."""
    outcomes = pd.DataFrame(
        [
            {"id_solicitacao": k, "data_desfecho": r["data_desfecho"],
             "inadimplente": r["inadimplente"]}
            for k, r in first_arrivals(outcome_rows).items()
        ]
    )  # fmt: skip
    valid = silver[silver.registro_valido]
    return outcomes.merge(
        valid[["id_solicitacao", "proponente_id", "uf", "municipio", "faixa_risco_credito",
               "cultura_principal"]],
        on="id_solicitacao",
    )  # fmt: skip


def proponente_oracle(silver: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    valid = silver[silver.registro_valido].sort_values(
        ["proponente_id", "data_solicitacao", "id_solicitacao"]
    )
    rows = []
    for pid, apps in valid.groupby("proponente_id", sort=False):
        mine = outcomes[outcomes.proponente_id == pid]
        values: list[float] = []
        scores: list[float] = []
        fines: list[bool] = []
        for app in apps.itertuples():
            values.append(app.valor)
            if app.serasa_score is not None and not pd.isna(app.serasa_score):
                scores.append(float(app.serasa_score))
            if app.ibama is not None and not pd.isna(app.ibama):
                fines.append(bool(app.ibama))
            n = len(values)
            mean = float(np.mean(values))
            std = float(np.std(values, ddof=1)) if n > 1 else None
            cv = std / mean if std is not None else None
            first = int(apps.data_solicitacao.iloc[0])
            known = mine[mine.data_desfecho <= app.data_solicitacao]
            rows.append({
                "proponente_id": pid,
                "id_solicitacao": app.id_solicitacao,
                "feature_timestamp": app.data_solicitacao,
                "n_solicitacoes": n,
                "valor_medio": mean,
                "valor_max": max(values),
                "valor_min": min(values),
                "valor_desvio": std,
                "primeira_solicitacao": first,
                "ultima_solicitacao": app.data_solicitacao,
                "dias_entre_primeira_ultima": (app.data_solicitacao - first) // MS_PER_DAY,
                "score_medio": float(np.mean(scores)) if scores else None,
                "share_ibama": float(np.mean(fines)) if fines else None,
                "area_total_hectares": app.area,
                "cultura_principal": app.cultura_principal,
                "anos_experiencia": app.anos_experiencia,
                "serasa_score": app.serasa_score,
                "perfil_frequencia": perfil_frequencia(n),
                "coef_variacao": cv,
                "perfil_volatilidade": perfil_volatilidade(cv),
                "inadimplencias_anteriores": int(known.inadimplente.sum()),
                "desfechos_conhecidos": len(known),
            })  # fmt: skip
    return pd.DataFrame(rows)


def location_oracle(silver: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    valid = silver[silver.registro_valido & silver.municipio.notna()]
    rows = []
    for (uf, municipio), apps in valid.groupby(["uf", "municipio"]):
        counts = apps.cultura_principal.value_counts()
        top = counts.max()
        mode = sorted(counts[counts == top].index)[0]
        n_prop = apps.proponente_id.nunique()
        outs = outcomes[(outcomes.uf == uf) & (outcomes.municipio == municipio)]
        rows.append({
            "uf": uf,
            "municipio": municipio,
            "n_proponentes": n_prop,
            "valor_medio": apps.valor.mean(),
            "area_media": apps.area.mean(),
            "cultura_dominante": mode,
            "share_alto_risco": apps.faixa_risco_credito.isin(["ALTO", "MUITO_ALTO"]).mean(),
            "densidade_proponentes": densidade(n_prop),
            "taxa_inadimplencia_observada": outs.inadimplente.mean() if len(outs) else None,
            "feature_timestamp": apps.data_solicitacao.max(),
        })  # fmt: skip
    return pd.DataFrame(rows)


def risk_oracle(silver: pd.DataFrame, outcomes: pd.DataFrame, prior: float = 20) -> pd.DataFrame:
    valid = silver[silver.registro_valido & silver.cultura_principal.notna()]
    global_rate = outcomes.inadimplente.mean() if len(outcomes) else None
    rows = []
    for (band, crop), apps in valid.groupby(["faixa_risco_credito", "cultura_principal"]):
        outs = outcomes[
            (outcomes.faixa_risco_credito == band) & (outcomes.cultura_principal == crop)
        ]
        defaults, known = int(outs.inadimplente.sum()), len(outs)
        scores = apps.serasa_score.dropna().astype(float)
        std = apps.valor.std(ddof=1) if len(apps) > 1 else None
        rows.append({
            "faixa_risco_credito": band,
            "cultura_principal": crop,
            "volume": len(apps),
            "valor_mediano": float(np.median(apps.valor)),
            "score_medio": scores.mean() if len(scores) else None,
            "share_juridica": (apps.tipo_pessoa == "JURIDICA").mean(),
            "taxa_inadimplencia_observada": defaults / known if known else None,
            "score_risco_ajustado": (defaults + prior * global_rate) / (known + prior)
            if global_rate is not None else None,
            "volatilidade_credito": std / apps.valor.mean() if std is not None else None,
            "feature_timestamp": apps.data_solicitacao.max(),
        })  # fmt: skip
    return pd.DataFrame(rows)


# --- comparison ----------------------------------------------------------------------------


def _ms(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    return int(value)


def assert_frames_equal(
    actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str], timestamps: Sequence[str] = ()
) -> None:
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}"
    merged = expected.merge(actual, on=keys, how="outer", suffixes=("_exp", "_act"), indicator=True)
    unmatched = merged[merged._merge != "both"]
    assert unmatched.empty, f"rows only on one side:\n{unmatched[keys + ['_merge']].head()}"
    problems = []
    for column in (c for c in expected.columns if c not in keys):
        for exp, act, *key in zip(
            merged[f"{column}_exp"], merged[f"{column}_act"], *(merged[k] for k in keys),
            strict=True,
        ):  # fmt: skip
            if column in timestamps:
                exp, act = _ms(exp), _ms(act)
            exp_missing = exp is None or (isinstance(exp, float) and np.isnan(exp))
            act_missing = act is None or (isinstance(act, float) and np.isnan(act))
            if exp_missing or act_missing:
                ok = exp_missing and act_missing
            elif isinstance(exp, float | np.floating) and not isinstance(exp, bool):
                ok = abs(float(act) - float(exp)) <= REL_TOL * max(abs(float(exp)), 1e-12)
            else:
                ok = exp == act
            if not ok:
                problems.append(f"{column} at {key}: expected {exp!r}, got {act!r}")
    assert not problems, f"{len(problems)} mismatches, first ones:\n" + "\n".join(problems[:15])


# --- the scenario ------------------------------------------------------------------------------


def _invalidate(app: dict[str, Any], how: str) -> dict[str, Any]:
    bad = {**app, "localizacao_propriedade": dict(app["localizacao_propriedade"])}
    if how == "tax_id":
        digits = bad["cpf_cnpj"]
        bad["cpf_cnpj"] = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    elif how == "amount":
        bad["valor_solicitado_credito"] = 0.0
    elif how == "area":
        bad["area_total_hectares"] = -1.0
    elif how == "uf":
        bad["localizacao_propriedade"]["uf"] = ""
    elif how == "type":
        bad["tipo_pessoa"] = "JURIDICA" if bad["tipo_pessoa"] == "FISICA" else "FISICA"
    return bad


@pytest.fixture(scope="module")
def scenario(local_stack: Settings) -> Iterator[dict[str, Any]]:
    settings = local_stack
    key = settings.require_pseudonym_key()
    tag = uuid.uuid4().hex[:10]
    bronze_schema, prefix = f"it_bronze_{tag}", f"it_{tag}_"
    create_bronze(settings, bronze_schema)

    apps = generate_applications(N_APPLICATIONS, SEED, START, END, returning_share=0.4)
    # the last 3 % are broken in one way each: they stay in silver, flagged, and never reach gold
    kinds = ["tax_id", "amount", "area", "uf", "type"]
    for i, how in zip(range(len(apps) - N_INVALID, len(apps)), kinds * (N_INVALID // 5),
                      strict=True):  # fmt: skip
        apps[i] = _invalidate(apps[i], how)
    # 10 % arrive as schema v1: no application id in the payload, only in the Kafka key
    keys = [a["id_solicitacao"] for a in apps]
    for i in range(0, len(apps), 10):
        apps[i] = {**apps[i], "id_solicitacao": "", "prazo_meses": 12}
    # outcomes of applications older than the cut (outcomes arrive late)
    cut = int(datetime(2024, 7, 1, tzinfo=UTC).timestamp() * 1000)
    with_ids = [{**a, "id_solicitacao": k} for a, k in zip(apps, keys, strict=True)]
    outcomes = [o for o in generate_outcomes(with_ids, SEED) if o["data_solicitacao"] < cut]

    app_writer = BronzeWriter(settings, bronze_schema, "applications", keep_rows=True)
    out_writer = BronzeWriter(settings, bronze_schema, "outcomes", keep_rows=True)
    app_writer.append(apps, keys)
    # at-least-once delivery: 60 applications and 40 outcomes again, later, with other content
    again = [dict(apps[i], valor_solicitado_credito=123.0) for i in range(5, 3000, 50)]
    app_writer.append(again, [keys[i] for i in range(5, 3000, 50)])
    out_writer.append(outcomes, [o["id_solicitacao"] for o in outcomes])
    out_dupes = [dict(o, inadimplente=not o["inadimplente"]) for o in outcomes[::50]]
    out_writer.append(out_dupes, [o["id_solicitacao"] for o in out_dupes])

    state = {
        "settings": settings,
        "key": key,
        "bronze_schema": bronze_schema,
        "prefix": prefix,
        "apps": with_ids,
        "app_writer": app_writer,
        "out_writer": out_writer,
        "tag": tag,
        "n_again": len(again),
    }
    yield state
    drop_schemas(settings, [f"{prefix}gold", f"{prefix}silver", bronze_schema])


def _transform(state: dict[str, Any], **kwargs: Any) -> TransformReport:
    return run_transform(
        state["settings"],
        schema_prefix=state["prefix"],
        bronze_schema=state["bronze_schema"],
        **kwargs,
    )


def _oracles(state: dict[str, Any]) -> dict[str, pd.DataFrame]:
    silver = silver_oracle(state["app_writer"].rows)
    outcomes = outcomes_oracle(state["out_writer"].rows, silver)
    return {
        "silver": silver,
        "outcomes": outcomes,
        "proponente_features": proponente_oracle(silver, outcomes),
        "location_features": location_oracle(silver, outcomes),
        "risk_features": risk_oracle(silver, outcomes),
    }


def _table(state: dict[str, Any], layer: str, table: str) -> pd.DataFrame:
    catalog = state["settings"].iceberg_catalog
    return _frame(
        state["settings"], f'select * from {catalog}."{state["prefix"]}{layer}"."{table}"'
    )


def _check_silver(state: dict[str, Any], oracle: pd.DataFrame) -> None:
    apps = _table(state, "silver", "silver_applications")
    assert apps.id_solicitacao.is_unique
    assert len(apps) == len(oracle)
    merged = oracle.merge(apps, on="id_solicitacao", suffixes=("", "_silver"))
    assert len(merged) == len(oracle)
    # the copy with the earliest offset won
    assert (merged.kafka_offset == merged.kafka_offset_silver).all()
    assert np.allclose(merged.valor, merged.valor_solicitado_credito)
    for column in ("classificacao_propriedade", "faixa_risco_credito", "cpf_cnpj_valido",
                   "registro_valido", "proponente_id"):  # fmt: skip
        left, right = merged[column], merged[f"{column}_silver"]
        assert ((left == right) | (left.isna() & right.isna())).all(), column
    assert (merged.data_solicitacao == merged.data_solicitacao_silver.map(_ms)).all()
    assert str(apps.data_solicitacao.iloc[0].tzinfo) == "UTC"
    expected_hash = merged.cpf_cnpj.map(lambda v: tax_id_pseudonym(v, state["key"]))
    assert (expected_hash == merged.cpf_cnpj_hash).all()
    assert (~oracle.registro_valido).sum() == N_INVALID
    assert oracle.registro_valido.sum() == (apps.registro_valido).sum()


def _check_gold(state: dict[str, Any], oracles: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    gold = {t: _table(state, "gold", t) for t in
            ("proponente_features", "location_features", "risk_features")}  # fmt: skip
    ts = ("feature_timestamp", "primeira_solicitacao", "ultima_solicitacao")
    assert_frames_equal(
        gold["proponente_features"].drop(columns=["_loaded_at"]),
        oracles["proponente_features"], ["proponente_id", "id_solicitacao"], ts,
    )  # fmt: skip
    assert_frames_equal(
        gold["location_features"].drop(columns=["_loaded_at"]),
        oracles["location_features"], ["uf", "municipio"], ts,
    )  # fmt: skip
    assert_frames_equal(
        gold["risk_features"].drop(columns=["_loaded_at"]),
        oracles["risk_features"], ["faixa_risco_credito", "cultura_principal"], ts,
    )  # fmt: skip
    return gold


def _check_no_pii(state: dict[str, Any]) -> None:
    raw: set[str] = set()
    for row in state["app_writer"].rows:
        raw.add(row["cpf_cnpj"])
        raw.add(row["nome_razao_social"])
        raw.add(row["fontes_dados_adicionais"]["numero_matricula_imovel"])
    tax_ids = {row["cpf_cnpj"] for row in state["app_writer"].rows}
    settings, prefix = state["settings"], state["prefix"]
    for layer in ("silver", "gold"):
        columns = trino_query(
            settings,
            "select table_name, column_name from information_schema.columns "
            f"where table_schema = '{prefix}{layer}' and data_type like 'varchar%'",
        )
        assert columns
        for table, column in columns:
            values = {
                v for (v,) in trino_query(
                    settings, f'select distinct "{column}" from "{prefix}{layer}"."{table}"'
                ) if v is not None
            }  # fmt: skip
            assert not values & raw, f"raw PII in {layer}.{table}.{column}"
            for value in values:
                for width in (11, 14):
                    windows = {value[i : i + width] for i in range(len(value) - width + 1)}
                    assert not windows & tax_ids, f"a tax id inside {layer}.{table}.{column}"
    # nor the key in anything dbt wrote (compiled SQL, run results, logs): Trino holds it
    key = state["key"].encode()
    for path in dbt_work_dir(state["settings"]).rglob("*"):
        if path.is_file():
            assert key not in path.read_bytes(), f"pseudonym key left in {path}"


def test_transform_full_then_incremental(scenario: dict[str, Any]) -> None:
    state = scenario
    first = _transform(state)
    assert first.passed, first.as_dict()
    assert first.test_failures == []
    assert first.tests_run > 20
    assert set(first.gates) == {"silver", "gold"}
    assert first.rows("silver_applications").rows_in == len(state["app_writer"].rows)

    oracles = _oracles(state)
    _check_silver(state, oracles["silver"])
    assert first.rows("silver_applications").rows_out == len(oracles["silver"])
    gold_before = _check_gold(state, oracles)
    _check_no_pii(state)

    # --- 1 % new events for a few keys, plus a late duplicate of an event silver already has
    known = state["apps"][:-N_INVALID]  # returning applicants of valid applications only
    stream = live_applications(
        1.0, SEED + 1, returning_share=0.9, known_applications=known,
        start=END + timedelta(days=1), batch_size=32,
    )  # fmt: skip
    new_apps = [next(stream) for _ in range(N_APPLICATIONS // 100)]
    late_duplicate = dict(known[7], valor_solicitado_credito=1.0)
    state["app_writer"].append(
        [*new_apps, late_duplicate],
        [a["id_solicitacao"] for a in new_apps] + [known[7]["id_solicitacao"]],
    )
    # outcomes for two applicants' older applications that had none yet
    outcome_ids = {o["id_solicitacao"] for o in state["out_writer"].rows}
    pending = [a for a in known if a["id_solicitacao"] not in outcome_ids][:3]
    new_outcomes = generate_outcomes(pending, SEED + 2)
    state["out_writer"].append(new_outcomes, [o["id_solicitacao"] for o in new_outcomes])

    second = _transform(state)
    assert second.passed, second.as_dict()
    # silver re-reads what came after its newest row: the new events, the late duplicate, and
    # the first batch's duplicates (ingested after it, skipped again by their offsets)
    assert second.rows("silver_applications").rows_in == len(new_apps) + 1 + state["n_again"]
    assert second.rows("silver_applications").rows_out == len(new_apps)
    assert second.rows("silver_outcomes").rows_out == len(new_outcomes)

    oracles = _oracles(state)
    _check_silver(state, oracles["silver"])
    gold_after = _check_gold(state, oracles)

    # only the keys with new events were recomputed
    changed_proponentes = {a["proponente_id"] for a in new_apps} | {
        o["proponente_id"] for o in new_outcomes
    }
    pf_before, pf_after = gold_before["proponente_features"], gold_after["proponente_features"]
    reloaded = set(pf_after[pf_after._loaded_at > pf_before._loaded_at.max()].proponente_id)
    assert reloaded == changed_proponentes
    silver = oracles["silver"].set_index("id_solicitacao")
    places = [a["localizacao_propriedade"] for a in new_apps]
    changed_places = {(p["uf"], p["municipio"]) for p in places} | {
        (silver.uf[o["id_solicitacao"]], silver.municipio[o["id_solicitacao"]])
        for o in new_outcomes
    }
    lf_before, lf_after = gold_before["location_features"], gold_after["location_features"]
    reloaded_places = set(
        lf_after[lf_after._loaded_at > lf_before._loaded_at.max()][["uf", "municipio"]].itertuples(
            index=False, name=None
        )
    )
    assert reloaded_places == changed_places
    _check_no_pii(state)

    # a rerun with nothing new changes nothing
    third = _transform(state)
    assert third.rows("silver_applications").rows_in == 0
    assert len(_table(state, "gold", "proponente_features")) == len(pf_after)


def test_dbt_unit_tests(scenario: dict[str, Any]) -> None:
    """The project's unit tests (business rules on fixed inputs) pass on the real Trino."""
    state = scenario
    # unit tests read the column types of the models' parents: build them (empty) first
    built = run_dbt(
        ["run", "--empty"], state["settings"],
        bronze_schema=state["bronze_schema"], schema_prefix=state["prefix"] + "unit_",
    )  # fmt: skip
    assert built.success, built.failures()
    try:
        result = run_dbt(
            ["test", "--select", "test_type:unit"], state["settings"],
            bronze_schema=state["bronze_schema"], schema_prefix=state["prefix"] + "unit_",
        )  # fmt: skip
        assert result.success, result.failures()
        assert len([n for n in result.nodes if n.resource_type == "unit_test"]) >= 10
    finally:
        drop_schemas(state["settings"],
                     [f"{state['prefix']}unit_gold", f"{state['prefix']}unit_silver"])  # fmt: skip


def test_a_batch_breaking_a_critical_expectation_stops_before_gold(local_stack: Settings) -> None:
    """A bronze batch with 30 % invalid records passes dbt (silver flags them) but fails the silver
    gate: gold is never built, and the report names the expectation and the observed share."""
    settings = local_stack
    tag = uuid.uuid4().hex[:10]
    bronze_schema, prefix = f"it_bad_bronze_{tag}", f"it_bad_{tag}_"
    create_bronze(settings, bronze_schema)
    try:
        apps = generate_applications(200, SEED + 1, START, END)
        for i in range(0, 60):  # 30 % with a zero amount
            apps[i] = _invalidate(apps[i], "amount")
        writer = BronzeWriter(settings, bronze_schema, "applications")
        writer.append(apps, [a["id_solicitacao"] for a in apps])

        report = run_transform(
            settings, schema_prefix=prefix, bronze_schema=bronze_schema, raise_on_failure=False
        )
        assert not report.passed
        assert report.stopped_at == "silver quality gate"
        assert "registro_valido" in report.reason and "0.700" in report.reason
        assert [m.layer for m in report.models] == ["silver", "silver"]  # no gold model ran
        gold_tables = trino_query(
            settings,
            f"select table_name from information_schema.tables where table_schema = '{prefix}gold'",
        )
        assert gold_tables == []
        html = report.gates["silver"].report_path.read_text()
        assert "registro_valido" in html
    finally:
        drop_schemas(settings, [f"{prefix}gold", f"{prefix}silver", bronze_schema])
