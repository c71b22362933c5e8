"""Seeded generation of credit applications and of their delayed outcomes.

- :func:`generate_applications` is the backfill mode: ``n`` applications spread over months of
  history, some applicants coming back several times.
- :func:`generate_outcomes` samples each application's repayment outcome from the hidden model,
  60 to 365 days after the application.
- :func:`live_applications` is the live mode: an endless stream, one application every
  ``1 / rate_per_s`` seconds of event time.

Records are plain dicts shaped like the Avro contracts (``application`` v2, ``outcome`` v1);
timestamps are UTC epoch milliseconds. The same seed always gives the same data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipelines.simulator.documents import generate_cnpjs, generate_cpfs
from pipelines.simulator.geography import CROPS, FARM_JITTER_DEGREES, UFS, crop_weights
from pipelines.simulator.hidden_model import default_probability
from pipelines.simulator.scenarios import Scenario, get_scenario

logger = logging.getLogger(__name__)

APPLICATION_SCHEMA_VERSION = "2"
OUTCOME_SCHEMA_VERSION = "1"
DATA_ORIGIN = "simulador-safra"

_NESTED_RECORDS = ("localizacao_propriedade", "fontes_dados_adicionais", "metadata_evento")
MS_PER_DAY = 86_400_000
MS_PER_YEAR = 365 * MS_PER_DAY
OUTCOME_DELAY_DAYS = (60, 365)
"""An outcome becomes known this many days (inclusive) after its application."""
DEFAULT_DAYS_PAST_DUE = 90
"""A credit 90 days or more past due is in default."""

# Streams of the seed, so that backfill, outcomes and live mode never share random numbers.
_STREAM_APPLICATIONS = 0
_STREAM_OUTCOMES = 1
_STREAM_LIVE = 2

IBAMA_UNKNOWN_SHARE = 0.01
EXPERIENCED_SHARE = 0.88
SCORE_MEAN, SCORE_SD, SCORE_NOISE_SD = 660.0, 140.0, 25.0
AREA_SIGMA = 0.9
PRODUCTIVITY_SIGMA = 0.35
INCOME_NOISE_SIGMA = 0.15
AMOUNT_SIGMA = 0.55
MIN_INCOME = 24_000.0
MIN_AMOUNT = 1_000.0

PURPOSES: tuple[str, ...] = (
    "CUSTEIO_SAFRA",
    "INVESTIMENTO_MAQUINARIO",
    "AMPLIACAO_AREA",
    "OUTROS",
)
PURPOSE_SHARES = np.array([0.55, 0.22, 0.13, 0.10])
AMOUNT_TO_INCOME_MEDIAN: dict[str, float] = {
    "CUSTEIO_SAFRA": 0.30,
    "INVESTIMENTO_MAQUINARIO": 0.45,
    "AMPLIACAO_AREA": 0.60,
    "OUTROS": 0.25,
}
TERM_MONTHS_BY_PURPOSE: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "CUSTEIO_SAFRA": ((6, 12, 18), (0.3, 0.6, 0.1)),
    "INVESTIMENTO_MAQUINARIO": ((24, 36, 48, 60, 72), (0.15, 0.3, 0.25, 0.2, 0.1)),
    "AMPLIACAO_AREA": ((36, 60, 84, 120), (0.25, 0.35, 0.25, 0.15)),
    "OUTROS": ((12, 24, 36), (0.5, 0.3, 0.2)),
}

MEDIAN_AREA_BY_REGION: dict[str, float] = {
    "NORTE": 250.0,
    "NORDESTE": 45.0,
    "CENTRO_OESTE": 600.0,
    "SUDESTE": 110.0,
    "SUL": 60.0,
}
AREA_FACTOR_BY_CROP: dict[str, float] = {
    "SOJA": 1.5,
    "MILHO": 1.0,
    "CAFE": 0.5,
    "CANA_DE_ACUCAR": 1.8,
    "ALGODAO": 2.5,
    "FRUTICULTURA": 0.35,
    "TRIGO": 0.9,
    "ARROZ": 0.9,
    "FEIJAO": 0.5,
    "EUCALIPTO": 2.0,
}
COMPANY_AREA_FACTOR = 4.0
GROSS_REVENUE_PER_HECTARE: dict[str, float] = {
    "SOJA": 6_000.0,
    "MILHO": 4_500.0,
    "CAFE": 18_000.0,
    "CANA_DE_ACUCAR": 9_000.0,
    "ALGODAO": 14_000.0,
    "FRUTICULTURA": 25_000.0,
    "TRIGO": 3_500.0,
    "ARROZ": 7_000.0,
    "FEIJAO": 5_000.0,
    "EUCALIPTO": 3_000.0,
}

FIRST_NAMES: tuple[str, ...] = (
    "Ana", "Antônio", "Carlos", "Cláudia", "Daniel", "Eduardo", "Fernanda", "Francisco", "Gabriel",
    "Helena", "Isabel", "João", "José", "Juliana", "Luiz", "Luciana", "Marcos", "Maria",
    "Mariana", "Paulo", "Pedro", "Rafael", "Renata", "Ricardo", "Rita", "Roberto", "Sebastião",
    "Sílvia", "Tereza", "Vanessa",
)  # fmt: skip
SURNAMES: tuple[str, ...] = (
    "Almeida", "Alves", "Araújo", "Barbosa", "Cardoso", "Carvalho", "Castro", "Costa", "Dias",
    "Fernandes", "Ferreira", "Gomes", "Lima", "Martins", "Melo", "Moreira", "Nascimento",
    "Oliveira", "Pereira", "Ribeiro", "Rocha", "Rodrigues", "Santos", "Silva", "Souza",
    "Teixeira", "Vieira", "Zanella", "Schmidt", "Bortolini",
)  # fmt: skip
COMPANY_PREFIXES: tuple[str, ...] = (
    "Agropecuária", "Agrícola", "Fazendas", "Agronegócio", "Cerealista", "Grupo",
)  # fmt: skip
COMPANY_SUFFIXES: tuple[str, ...] = ("Ltda", "S.A.", "Ltda ME")

_UF_CODES: tuple[str, ...] = tuple(UFS)
_UF_SHARES = np.array([UFS[uf].peso for uf in _UF_CODES]) / sum(UFS[uf].peso for uf in _UF_CODES)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UUID_VARIANT = {d: "89ab"[int(d, 16) % 4] for d in "0123456789abcdef"}


def _as_ms(moment: datetime | int) -> int:
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return (aware - _EPOCH) // timedelta(milliseconds=1)
    return int(moment)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` random version-4 UUID strings, drawn from ``rng`` (so reproducible)."""
    digits = rng.bytes(16 * n).hex()
    return [
        f"{digits[i : i + 8]}-{digits[i + 8 : i + 12]}-4{digits[i + 13 : i + 16]}-"
        f"{_UUID_VARIANT[digits[i + 16]]}{digits[i + 17 : i + 20]}-{digits[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


def _pick(rng: np.random.Generator, options: Sequence[str], n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), size=n)]


@dataclass
class _Applicants:
    """Applicants, column by column: what stays the same across their applications."""

    proponente_id: np.ndarray
    tipo_pessoa: np.ndarray
    cpf_cnpj: np.ndarray
    nome: np.ndarray
    uf: np.ndarray
    municipio: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    area: np.ndarray
    cultura: np.ndarray
    experiente: np.ndarray
    anos_base: np.ndarray
    since_ms: np.ndarray
    """When the applicant had ``anos_base`` years of experience."""
    score_base: np.ndarray
    """The applicant's bureau score before noise and before any scenario shift."""
    productivity: np.ndarray
    matricula: np.ndarray

    def __len__(self) -> int:
        return len(self.proponente_id)

    def take(self, index: np.ndarray) -> _Applicants:
        return _Applicants(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def extend(self, other: _Applicants) -> _Applicants:
        return _Applicants(
            **{
                f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                for f in fields(self)
            }
        )


def _draw_crops(rng: np.random.Generator, uf_index: np.ndarray) -> np.ndarray:
    table = np.array([[crop_weights(uf)[crop] for crop in CROPS] for uf in _UF_CODES])
    cumulative = np.cumsum(table, axis=1)[uf_index]
    u = rng.random(len(uf_index))[:, None]
    choice = np.minimum((u >= cumulative).sum(axis=1), len(CROPS) - 1)
    return np.asarray(CROPS, dtype=object)[choice]


def _draw_places(rng: np.random.Generator, uf_index: np.ndarray) -> tuple[np.ndarray, ...]:
    n = len(uf_index)
    counts = np.array([len(UFS[uf].municipios) for uf in _UF_CODES])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    seats = [m for uf in _UF_CODES for m in UFS[uf].municipios]
    seat_index = offsets[uf_index] + (rng.random(n) * counts[uf_index]).astype(int)
    names = np.asarray([m.nome for m in seats], dtype=object)[seat_index]
    boxes = np.array(
        [[UFS[u].lat_min, UFS[u].lat_max, UFS[u].lon_min, UFS[u].lon_max] for u in _UF_CODES]
    )
    box = boxes[uf_index]
    jitter = rng.uniform(-FARM_JITTER_DEGREES, FARM_JITTER_DEGREES, size=(n, 2))
    lat = np.array([m.latitude for m in seats])[seat_index] + jitter[:, 0]
    lon = np.array([m.longitude for m in seats])[seat_index] + jitter[:, 1]
    lat = np.round(np.clip(lat, box[:, 0], box[:, 1]), 6)
    lon = np.round(np.clip(lon, box[:, 2], box[:, 3]), 6)
    return names, lat, lon


def _draw_names(rng: np.random.Generator, company: np.ndarray) -> np.ndarray:
    n = len(company)
    first = _pick(rng, FIRST_NAMES, n)
    middle = _pick(rng, SURNAMES, n)
    last = _pick(rng, SURNAMES, n)
    prefix = _pick(rng, COMPANY_PREFIXES, n)
    suffix = _pick(rng, COMPANY_SUFFIXES, n)
    return np.asarray(
        [
            f"{p} {m} {s}" if c else f"{f} {m} {la}"
            for c, f, m, la, p, s in zip(
                company.tolist(), first, middle, last, prefix, suffix, strict=True
            )
        ],
        dtype=object,
    )


def _new_applicants(rng: np.random.Generator, n: int, since_ms: np.ndarray) -> _Applicants:
    uf_index = rng.choice(len(_UF_CODES), size=n, p=_UF_SHARES)
    uf = np.asarray(_UF_CODES, dtype=object)[uf_index]
    municipio, lat, lon = _draw_places(rng, uf_index)
    cultura = _draw_crops(rng, uf_index)
    region = np.asarray([UFS[u].regiao for u in _UF_CODES], dtype=object)[uf_index]
    company_share = (
        0.12
        + 0.10 * (region == "CENTRO_OESTE")
        + 0.06 * np.isin(cultura, ["CANA_DE_ACUCAR", "EUCALIPTO", "ALGODAO"])
    )
    company = rng.random(n) < company_share
    cpfs = np.asarray(generate_cpfs(n, rng), dtype=object)
    cnpjs = np.asarray(generate_cnpjs(n, rng), dtype=object)
    median_area = (
        np.array([MEDIAN_AREA_BY_REGION[r] for r in region.tolist()])
        * np.array([AREA_FACTOR_BY_CROP[c] for c in cultura.tolist()])
        * np.where(company, COMPANY_AREA_FACTOR, 1.0)
    )
    area = np.round(np.clip(median_area * rng.lognormal(0.0, AREA_SIGMA, n), 1.0, 80_000.0), 2)
    experiente = rng.random(n) < EXPERIENCED_SHARE
    anos = np.where(experiente, 1 + np.minimum(rng.gamma(2.0, 6.0, n), 49).astype(int), 0)
    cartorio = rng.integers(10_000, 160_000, size=n).tolist()
    numero = rng.integers(1, 400_000, size=n).tolist()
    return _Applicants(
        proponente_id=np.asarray(_uuids(rng, n), dtype=object),
        tipo_pessoa=np.where(company, "JURIDICA", "FISICA").astype(object),
        cpf_cnpj=np.where(company, cnpjs, cpfs),
        nome=_draw_names(rng, company),
        uf=uf,
        municipio=municipio,
        latitude=lat,
        longitude=lon,
        area=area,
        cultura=cultura,
        experiente=experiente,
        anos_base=anos.astype(np.int64),
        since_ms=np.asarray(since_ms, dtype=np.int64),
        score_base=np.clip(rng.normal(SCORE_MEAN, SCORE_SD, n), 0.0, 1000.0),
        productivity=rng.lognormal(0.0, PRODUCTIVITY_SIGMA, n),
        matricula=np.asarray(
            [f"{c:06d}.2.{m:07d}" for c, m in zip(cartorio, numero, strict=True)], dtype=object
        ),
    )


def _draw_terms(rng: np.random.Generator, purpose: np.ndarray) -> np.ndarray:
    u = rng.random(len(purpose))
    terms = np.full(len(purpose), 12, dtype=np.int64)
    for name, (options, shares) in TERM_MONTHS_BY_PURPOSE.items():
        mask = purpose == name
        choice = np.minimum(
            np.searchsorted(np.cumsum(shares), u[mask], side="right"), len(options) - 1
        )
        terms[mask] = np.asarray(options)[choice]
    return terms


def _applications(
    rng: np.random.Generator,
    applicants: _Applicants,
    when_ms: np.ndarray,
    scenario: Scenario,
) -> list[dict[str, Any]]:
    """One application per row of ``applicants`` (already aligned with ``when_ms``)."""
    n = len(applicants)
    if n == 0:
        return []
    ids = _uuids(rng, n)
    purpose = np.asarray(PURPOSES, dtype=object)[
        rng.choice(len(PURPOSES), size=n, p=PURPOSE_SHARES)
    ]
    term = _draw_terms(rng, purpose)

    revenue = np.array([GROSS_REVENUE_PER_HECTARE[c] for c in applicants.cultura.tolist()])
    income = (
        applicants.area
        * revenue
        * applicants.productivity
        * rng.lognormal(0.0, INCOME_NOISE_SIGMA, n)
    )
    for shock in scenario.shocks:
        hit = (
            np.isin(applicants.uf, list(shock.ufs))
            & np.isin(applicants.cultura, list(shock.crops))
            & np.isin(applicants.tipo_pessoa, list(shock.person_types))
        )
        factor = shock.income_factor * shock.declared_income_factor
        income = np.where(hit, income * factor, income)
    income = np.round(np.maximum(income, MIN_INCOME), 2)
    ratio_median = np.array([AMOUNT_TO_INCOME_MEDIAN[p] for p in purpose.tolist()])
    amount = np.round(
        np.maximum(income * ratio_median * rng.lognormal(0.0, AMOUNT_SIGMA, n), MIN_AMOUNT), 2
    )

    score = np.clip(
        np.round(
            applicants.score_base + rng.normal(0.0, SCORE_NOISE_SD, n) + scenario.serasa_score_shift
        ),
        0,
        1000,
    ).astype(np.int64)
    score_missing = rng.random(n) < scenario.serasa_missing_share
    u_fines = rng.random(n)
    fines_unknown = u_fines < IBAMA_UNKNOWN_SHARE
    fines = u_fines > 1.0 - scenario.ibama_fine_share

    years_since = np.maximum(when_ms - applicants.since_ms, 0) // MS_PER_YEAR
    anos = np.where(applicants.experiente, applicants.anos_base + years_since, 0)
    generated_ms = when_ms + rng.integers(0, 3_000, size=n)
    origin = f"{DATA_ORIGIN}/{scenario.name}"

    columns = zip(
        ids,
        applicants.proponente_id.tolist(),
        when_ms.tolist(),
        applicants.cpf_cnpj.tolist(),
        applicants.nome.tolist(),
        applicants.tipo_pessoa.tolist(),
        income.tolist(),
        amount.tolist(),
        purpose.tolist(),
        applicants.latitude.tolist(),
        applicants.longitude.tolist(),
        applicants.municipio.tolist(),
        applicants.uf.tolist(),
        applicants.area.tolist(),
        applicants.cultura.tolist(),
        applicants.experiente.tolist(),
        anos.tolist(),
        [
            None if missing else value
            for missing, value in zip(score_missing.tolist(), score.tolist(), strict=True)
        ],
        [
            None if unknown else value
            for unknown, value in zip(fines_unknown.tolist(), fines.tolist(), strict=True)
        ],
        applicants.matricula.tolist(),
        generated_ms.tolist(),
        term.tolist(),
        strict=True,
    )
    return [
        {
            "proponente_id": pid,
            "data_solicitacao": at,
            "cpf_cnpj": tax_id,
            "nome_razao_social": nome,
            "tipo_pessoa": tipo,
            "renda_bruta_anual_declarada": renda,
            "valor_solicitado_credito": valor,
            "finalidade_credito": finalidade,
            "localizacao_propriedade": {
                "latitude": lat,
                "longitude": lon,
                "municipio": municipio,
                "uf": uf,
            },
            "area_total_hectares": area,
            "cultura_principal": cultura,
            "possui_experiencia_atividade": experiente,
            "anos_experiencia": anos_exp,
            "fontes_dados_adicionais": {
                "serasa_score": serasa,
                "ibama_autuacoes_ativas": ibama,
                "numero_matricula_imovel": matricula,
            },
            "metadata_evento": {
                "versao_schema": APPLICATION_SCHEMA_VERSION,
                "origem_dados": origin,
                "timestamp_geracao_evento": generated,
            },
            "id_solicitacao": app_id,
            "prazo_meses": prazo,
        }
        for (
            app_id, pid, at, tax_id, nome, tipo, renda, valor, finalidade, lat, lon, municipio, uf,
            area, cultura, experiente, anos_exp, serasa, ibama, matricula, generated, prazo,
        ) in columns
    ]  # fmt: skip


def generate_applications(
    n: int,
    seed: int,
    start: datetime | int,
    end: datetime | int,
    scenario: str = "baseline",
    returning_share: float = 0.3,
) -> list[dict[str, Any]]:
    """``n`` applications (Avro ``application`` v2 dicts) made in ``[start, end)``, oldest first.

    ``round(n * returning_share)`` of them come from applicants who already applied, so there are
    exactly ``n - round(n * returning_share)`` distinct applicants (at least one). An applicant
    keeps type, tax id, name, farm, area and crop across applications. ``start`` and ``end`` are
    datetimes (naive means UTC) or epoch milliseconds.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= returning_share < 1.0:
        raise ValueError(f"returning_share must be in [0, 1), got {returning_share}")
    start_ms, end_ms = _as_ms(start), _as_ms(end)
    if end_ms <= start_ms:
        raise ValueError(f"end ({end}) must be after start ({start})")
    sc = get_scenario(scenario)
    began = time.perf_counter()
    rng = _rng(seed, _STREAM_APPLICATIONS)

    distinct = max(n - round(n * returning_share), min(n, 1))
    returning = n - distinct
    when_ms = np.sort(rng.integers(start_ms, end_ms, size=n, dtype=np.int64))
    # Some applicants come back often: repeat visits follow a skewed (gamma) propensity.
    propensity = rng.gamma(0.25, 1.0, size=distinct) if distinct else np.ones(0)
    repeats = (
        rng.choice(distinct, size=returning, p=propensity / propensity.sum())
        if returning
        else np.zeros(0, dtype=np.int64)
    )
    owner = rng.permutation(np.concatenate([np.arange(distinct), repeats]).astype(np.int64))
    first_ms = np.full(distinct, end_ms, dtype=np.int64)
    np.minimum.at(first_ms, owner, when_ms)

    applicants = _new_applicants(rng, distinct, since_ms=first_ms)
    records = _applications(rng, applicants.take(owner), when_ms, sc)
    logger.info(
        "generated %d applications from %d applicants (scenario %s, seed %d) in %.2fs",
        n,
        distinct,
        sc.name,
        seed,
        time.perf_counter() - began,
    )
    return records


def applications_frame(applications: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The applications as one flat row each: nested records' fields become top-level columns.

    ``serasa_score`` is a float column (NaN when missing); ``ibama_autuacoes_ativas`` keeps None.
    """
    if not applications:
        return pd.DataFrame()
    columns: dict[str, list[Any]] = {}
    for key, value in applications[0].items():
        if key in _NESTED_RECORDS:
            for inner in value:
                columns[inner] = [r[key][inner] for r in applications]
        else:
            columns[key] = [r.get(key) for r in applications]
    frame = pd.DataFrame(columns)
    if "serasa_score" in frame.columns:
        frame["serasa_score"] = pd.to_numeric(frame["serasa_score"]).astype(float)
    return frame


def labelled_frame(
    applications: Sequence[Mapping[str, Any]], seed: int, scenario: str = "baseline"
) -> pd.DataFrame:
    """:func:`applications_frame` of ``applications`` with the label: ``inadimplente`` of each
    one's outcome (:func:`generate_outcomes` with ``seed`` and ``scenario``)."""
    frame = applications_frame(applications)
    outcomes = generate_outcomes(applications, seed, scenario)
    frame["inadimplente"] = [o["inadimplente"] for o in outcomes]
    return frame


def generate_outcomes(
    applications: Sequence[Mapping[str, Any]], seed: int, scenario: str = "baseline"
) -> list[dict[str, Any]]:
    """The repayment outcome (Avro ``outcome`` v1 dict) of each application, in the same order.

    Default is sampled from the hidden model under ``scenario``; the outcome is known 60 to 365
    days after the application. A default has 90 or more days past due; a repaid credit 0 (most)
    to 59.
    """
    sc = get_scenario(scenario)
    n = len(applications)
    if n == 0:
        return []
    rng = _rng(seed, _STREAM_OUTCOMES)
    probability = default_probability(applications_frame(applications), sc.name)
    defaulted = rng.random(n) < probability

    low, high = OUTCOME_DELAY_DAYS
    u_delay, u_late, late_now = rng.random(n), rng.random(n), rng.random(n) < 0.2
    # A default must have had time to be 90+ days past due: its outcome comes 120+ days later.
    default_low = DEFAULT_DAYS_PAST_DUE + 30
    delay_days = np.where(
        defaulted,
        default_low + np.floor(u_delay * (high - default_low + 1)),
        low + np.floor(u_delay * (high - low + 1)),
    ).astype(np.int64)
    days_late = np.where(
        defaulted,
        DEFAULT_DAYS_PAST_DUE + np.floor(u_late * (delay_days - 30 - DEFAULT_DAYS_PAST_DUE + 1)),
        np.where(late_now, 1 + np.floor(u_late * (DEFAULT_DAYS_PAST_DUE - 31)), 0),
    ).astype(np.int64)
    asked_ms = np.array([a["data_solicitacao"] for a in applications], dtype=np.int64)
    outcome_ms = asked_ms + delay_days * MS_PER_DAY + rng.integers(0, MS_PER_DAY, size=n)
    generated_ms = outcome_ms + rng.integers(0, 3_000, size=n)
    origin = f"{DATA_ORIGIN}/{sc.name}"
    logger.info(
        "sampled %d outcomes (scenario %s): default rate %.3f", n, sc.name, defaulted.mean()
    )
    return [
        {
            "id_solicitacao": app["id_solicitacao"],
            "proponente_id": app["proponente_id"],
            "data_solicitacao": asked,
            "data_desfecho": known,
            "inadimplente": bad,
            "dias_atraso": late,
            "metadata_evento": {
                "versao_schema": OUTCOME_SCHEMA_VERSION,
                "origem_dados": origin,
                "timestamp_geracao_evento": generated,
            },
        }
        for app, asked, known, bad, late, generated in zip(
            applications,
            asked_ms.tolist(),
            outcome_ms.tolist(),
            defaulted.tolist(),
            days_late.tolist(),
            generated_ms.tolist(),
            strict=True,
        )
    ]


def _applicants_from(applications: Sequence[Mapping[str, Any]], scenario: Scenario) -> _Applicants:
    """The applicants of past applications, as of each one's latest application."""
    latest: dict[str, Mapping[str, Any]] = {}
    for app in applications:
        known = latest.get(app["proponente_id"])
        if known is None or app["data_solicitacao"] >= known["data_solicitacao"]:
            latest[app["proponente_id"]] = app
    rows = list(latest.values())
    if not rows:
        return _empty_applicants()

    def col(get: Callable[[Mapping[str, Any]], Any], dtype: Any = object) -> np.ndarray:
        return np.asarray([get(r) for r in rows], dtype=dtype)

    area = col(lambda r: r["area_total_hectares"], float)
    cultura = col(lambda r: r["cultura_principal"])
    revenue = np.array([GROSS_REVENUE_PER_HECTARE[c] for c in cultura.tolist()])
    income = col(lambda r: r["renda_bruta_anual_declarada"], float)
    score = col(lambda r: r["fontes_dados_adicionais"]["serasa_score"], float)
    return _Applicants(
        proponente_id=col(lambda r: r["proponente_id"]),
        tipo_pessoa=col(lambda r: r["tipo_pessoa"]),
        cpf_cnpj=col(lambda r: r["cpf_cnpj"]),
        nome=col(lambda r: r["nome_razao_social"]),
        uf=col(lambda r: r["localizacao_propriedade"]["uf"]),
        municipio=col(lambda r: r["localizacao_propriedade"]["municipio"]),
        latitude=col(lambda r: r["localizacao_propriedade"]["latitude"], float),
        longitude=col(lambda r: r["localizacao_propriedade"]["longitude"], float),
        area=area,
        cultura=cultura,
        experiente=col(lambda r: r["possui_experiencia_atividade"], bool),
        anos_base=col(lambda r: r["anos_experiencia"], np.int64),
        since_ms=col(lambda r: r["data_solicitacao"], np.int64),
        score_base=np.where(np.isnan(score), SCORE_MEAN, score - scenario.serasa_score_shift),
        productivity=np.clip(income / np.maximum(area * revenue, 1.0), 0.05, 20.0),
        matricula=col(lambda r: r["fontes_dados_adicionais"]["numero_matricula_imovel"]),
    )


def _empty_applicants() -> _Applicants:
    return _new_applicants(np.random.default_rng(0), 0, since_ms=np.zeros(0, dtype=np.int64))


def live_applications(
    rate_per_s: float,
    seed: int,
    scenario: str = "baseline",
    *,
    returning_share: float = 0.3,
    known_applications: Sequence[Mapping[str, Any]] = (),
    start: datetime | int | None = None,
    batch_size: int = 256,
) -> Iterator[dict[str, Any]]:
    """An endless stream of applications (``application`` v2 dicts), one per ``1/rate_per_s`` s.

    The i-th application's ``data_solicitacao`` is ``start + i / rate_per_s`` (``start`` defaults
    to the wall clock at the first ``next()``): it is the moment the application is due, and the
    producer paces the stream by waiting for it; the generator never sleeps. A share
    ``returning_share`` of applications comes from applicants already seen, either in this stream
    or in ``known_applications`` (for example the backfill), so live traffic meets known history.
    """
    if rate_per_s <= 0:
        raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
    if not 0.0 <= returning_share < 1.0:
        raise ValueError(f"returning_share must be in [0, 1), got {returning_share}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sc = get_scenario(scenario)
    return _live(rate_per_s, seed, sc, returning_share, known_applications, start, batch_size)


def _live(
    rate_per_s: float,
    seed: int,
    sc: Scenario,
    returning_share: float,
    known_applications: Sequence[Mapping[str, Any]],
    start: datetime | int | None,
    batch_size: int,
) -> Iterator[dict[str, Any]]:
    rng = _rng(seed, _STREAM_LIVE)
    pool = _applicants_from(known_applications, sc)
    start_ms = _as_ms(start) if start is not None else int(time.time() * 1000)
    step_ms = 1000.0 / rate_per_s
    logger.info(
        "live applications at %.2f/s from %s (scenario %s, seed %d, %d known applicants)",
        rate_per_s,
        datetime.fromtimestamp(start_ms / 1000, tz=UTC).isoformat(),
        sc.name,
        seed,
        len(pool),
    )
    emitted = 0
    while True:
        when_ms = start_ms + np.floor((emitted + np.arange(batch_size)) * step_ms).astype(np.int64)
        returning = (rng.random(batch_size) < returning_share) & (len(pool) > 0)
        new = _new_applicants(rng, int((~returning).sum()), since_ms=when_ms[~returning])
        owner = np.empty(batch_size, dtype=np.int64)
        owner[returning] = rng.integers(0, max(len(pool), 1), size=int(returning.sum()))
        owner[~returning] = len(pool) + np.arange(len(new))
        pool = pool.extend(new)
        yield from _applications(rng, pool.take(owner), when_ms, sc)
        emitted += batch_size
