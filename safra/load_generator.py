"""A load generator that does not lie: vegeta (Go), built once into the download cache, driven at
a constant rate, with latencies counted from each request's intended send time.

Why vegeta: it is an open model (request *n* leaves at its time whatever the answers before it
did: an attacker with every worker busy starts one more), it costs little CPU, and one core of
its own keeps it off the server's. A Python generator on the same cores reported a p99 8× higher
than vegeta for the same API (issue 13).

Why the correction: vegeta times a request from when a worker took it, not from when it was due.
When the generator itself falls behind (its core busy, a GC pause), the requests it sends late
look fast. Its constant pacer releases hit *n* (``seq``) at ``began + (n + 1) / rate``; every
result carries its ``seq`` and its actual send ``timestamp``, so :func:`summarize` counts latency
from the due time — ``began`` estimated as the earliest ``timestamp - due`` (no hit leaves early)
— and reports the send lag beside it: a lag that grows means the generator, not the server,
was the limit.

Pure parts (results parsing, percentiles, summaries, the saturation search) are unit tested;
:func:`attack` runs the binary. Used by ``bench/serving_bench.py``.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from safra.settings import Settings

logger = logging.getLogger(__name__)

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"
GO_FALLBACK = Path("/usr/local/go/bin/go")


# --- the binary -------------------------------------------------------------------------------


def vegeta_path(settings: Settings) -> Path:
    """Where the pinned vegeta lives: the download cache, one folder per version."""
    return settings.cache_dir / "vegeta" / VEGETA_VERSION / "vegeta"


def ensure_vegeta(settings: Settings) -> Path:
    """The pinned vegeta, built from the Go module proxy into the cache when missing (about a
    minute; nothing is built when it is there). RuntimeError naming the fix without Go."""
    binary = vegeta_path(settings)
    if binary.is_file() and os.access(binary, os.X_OK):
        logger.info("vegeta %s: %s (cached)", VEGETA_VERSION, binary)
        return binary
    go = shutil.which("go") or (str(GO_FALLBACK) if GO_FALLBACK.is_file() else None)
    if go is None:
        raise RuntimeError(
            f"vegeta is not in {binary.parent} and Go is not installed to build it: install Go "
            f"(1.22+) or put a vegeta {VEGETA_VERSION} binary at {binary}"
        )
    binary.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="vegeta-", dir=binary.parent))
    logger.info(
        "building vegeta: GOBIN=%s %s install %s@%s", staging, go, VEGETA_MODULE, VEGETA_VERSION
    )
    env = {**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    try:
        subprocess.run(
            [go, "install", f"{VEGETA_MODULE}@{VEGETA_VERSION}"],
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        (staging / "vegeta").replace(binary)  # atomic: a half-built binary is never "cached"
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"building vegeta failed:\n{exc.stdout[-2000:]}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("vegeta %s built: %s", VEGETA_VERSION, binary)
    return binary


# --- cores ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    """Which cores the load generator and the server under test run on (``taskset -c``)."""

    generator: str | None
    server: str | None

    def generator_prefix(self) -> list[str]:
        return ["taskset", "-c", self.generator] if self.generator else []

    def server_prefix(self) -> list[str]:
        return ["taskset", "-c", self.server] if self.server else []


def choose_pinning(cpus: Iterable[int], taskset_available: bool = True) -> Pinning:
    """The generator on the first usable core, the server on the second; no pinning with fewer
    than two cores or without ``taskset`` (then both share the machine: the report says so)."""
    usable = sorted(cpus)
    if len(usable) < 2 or not taskset_available:
        return Pinning(None, None)
    return Pinning(str(usable[0]), str(usable[1]))


def machine_pinning() -> Pinning:
    return choose_pinning(os.sched_getaffinity(0), shutil.which("taskset") is not None)


# --- targets and the attack -------------------------------------------------------------------


def targets_lines(url: str, bodies: Sequence[Any], headers: Mapping[str, str]) -> list[str]:
    """vegeta's JSON target format, one POST per body (vegeta cycles over them in order)."""
    header = {name: [value] for name, value in headers.items()}
    header.setdefault("Content-Type", ["application/json"])
    return [
        json.dumps(
            {
                "method": "POST",
                "url": url,
                "header": header,
                "body": base64.b64encode(json.dumps(body).encode()).decode(),
            }
        )
        for body in bodies
    ]


@dataclass(frozen=True)
class Hit:
    """One vegeta result: its pacer sequence number, when it was actually sent (ns since the
    epoch), how long the answer took from there (ns), the HTTP status (0: no answer) and body."""

    seq: int
    sent_ns: int
    latency_ns: int
    code: int
    error: str = ""
    body: bytes = b""


def parse_timestamp_ns(text: str) -> int:
    """Go's RFC 3339 timestamp with nanoseconds (``2026-12-03T17:31:47.166343917Z``) as integer
    ns since the epoch, without the float rounding Python's datetime would add."""
    stamp = text.replace("Z", "+00:00")
    zone_at = max(stamp.rfind("+"), stamp.rfind("-"))
    if zone_at <= stamp.find("T"):
        raise ValueError(f"timestamp without a zone: {text!r}")
    clock, zone = stamp[:zone_at], stamp[zone_at:]
    whole, _, fraction = clock.partition(".")
    if fraction and not fraction.isdigit():
        raise ValueError(f"bad fractional seconds in {text!r}")
    seconds = int(datetime.fromisoformat(whole + zone).timestamp())
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


def parse_results(lines: Iterable[str]) -> list[Hit]:
    """``vegeta encode --to json`` output (one JSON result per line) as hits."""
    hits = []
    for line in lines:
        if not line.strip():
            continue
        raw = json.loads(line)
        body = raw.get("body") or ""
        hits.append(
            Hit(
                seq=int(raw["seq"]),
                sent_ns=parse_timestamp_ns(raw["timestamp"]),
                latency_ns=int(raw["latency"]),
                code=int(raw["code"]),
                error=raw.get("error") or "",
                body=base64.b64decode(body) if body else b"",
            )
        )
    return hits


def attack(
    vegeta: Path,
    targets: Sequence[str],
    rate: int,
    seconds: float,
    workdir: Path,
    pinning: Pinning,
    timeout_s: float = 10.0,
    max_body: int = -1,
) -> list[Hit]:
    """``vegeta attack`` at ``rate`` requests per second for ``seconds`` (pinned to the
    generator's core), its results encoded to JSON and parsed. ``targets``: see
    :func:`targets_lines`; ``max_body``: response bytes kept per result (-1: all)."""
    workdir.mkdir(parents=True, exist_ok=True)
    targets_file = workdir / "targets.jsonl"
    targets_file.write_text("\n".join(targets) + "\n")
    results_bin = workdir / f"results-{rate}.bin"
    command = [
        *pinning.generator_prefix(), str(vegeta), "attack",
        "-format", "json", "-targets", str(targets_file),
        "-rate", f"{rate}/1s", "-duration", f"{seconds}s", "-timeout", f"{timeout_s}s",
        "-max-body", str(max_body), "-output", str(results_bin),
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    encoded = subprocess.run(
        [str(vegeta), "encode", "--to", "json", str(results_bin)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    results_bin.unlink()
    return parse_results(encoded.splitlines())


# --- summaries --------------------------------------------------------------------------------


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 < q ≤ 1) by nearest rank: a value that was observed (the p99 of 100
    latencies is the 99th smallest, of 1,000 the 990th)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _ms(ns: float) -> float:
    return round(ns / 1e6, 2)


def summarize(hits: Sequence[Hit], rate: float, ok_status: int = 200) -> dict[str, Any]:
    """One run's figures. Latencies (p50/p99/max) run from each request's intended send time
    (see the module doc) to its answer, over every request that got one — a 503 answered fast
    counts as fast, and as a failure in ``success``; requests with no answer (timeouts, refused
    connections) count only there. ``service_*``: vegeta's own (from the actual send);
    ``send_lag_*``: how late the generator sent; ``achieved_rps``: requests sent per second
    over the run; ``throughput_rps``: ``ok_status`` answers per second until the last answer."""
    if not hits:
        return {"target_rps": rate, "requests": 0, "success": 0.0, "status_codes": {}}
    interval_ns = 1e9 / rate
    due = {h.seq: (h.seq + 1) * interval_ns for h in hits}
    began = min(h.sent_ns - due[h.seq] for h in hits)
    answered = [h for h in hits if h.code != 0]
    from_due = sorted(h.sent_ns + h.latency_ns - (began + due[h.seq]) for h in answered)
    service = sorted(h.latency_ns for h in answered)
    lag = sorted(h.sent_ns - (began + due[h.seq]) for h in hits)
    first_sent = min(h.sent_ns for h in hits)
    last_sent = max(h.sent_ns for h in hits)
    last_end = max(h.sent_ns + h.latency_ns for h in hits)
    ok = sum(1 for h in hits if h.code == ok_status)
    codes = Counter(str(h.code) for h in hits)
    errors = Counter(h.error for h in hits if h.code == 0 and h.error)
    span_sent = (last_sent - first_sent) / 1e9
    out: dict[str, Any] = {
        "target_rps": rate,
        "requests": len(hits),
        "achieved_rps": round((len(hits) - 1) / span_sent, 1) if span_sent > 0 else None,
        "throughput_rps": round(ok / ((last_end - first_sent) / 1e9), 1) if ok else 0.0,
        "success": round(ok / len(hits), 5),
        "status_codes": dict(sorted(codes.items())),
        "p50_ms": _ms(nearest_rank(from_due, 0.50)) if from_due else None,
        "p99_ms": _ms(nearest_rank(from_due, 0.99)) if from_due else None,
        "max_ms": _ms(from_due[-1]) if from_due else None,
        "service_p50_ms": _ms(nearest_rank(service, 0.50)) if service else None,
        "service_p99_ms": _ms(nearest_rank(service, 0.99)) if service else None,
        "send_lag_p99_ms": _ms(nearest_rank(lag, 0.99)),
        "send_lag_max_ms": _ms(lag[-1]),
    }
    if errors:
        out["errors"] = dict(errors.most_common(3))
    return out


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its live descendants (a server under
    test: its supervisor and workers); 0.0 when it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


# --- the saturation search --------------------------------------------------------------------


@dataclass
class SaturationSearch:
    """The highest constant rate a server sustains: success ≥ ``min_success`` and p99 ≤
    ``p99_bound_ms``. From ``start``, doubling until a rate fails (or ``max_rate`` holds) — or
    halving until one holds (None below ``min_rate``) — then bisection between the highest rate
    that held and the lowest that failed, until they are within ``precision`` (relative) of each
    other. ``measure(rate)`` returns :func:`summarize`'s dict; every step is kept in ``steps``."""

    measure: Callable[[int], dict[str, Any]]
    p99_bound_ms: float = 100.0
    min_success: float = 0.999
    start: int = 100
    max_rate: int = 5_000
    min_rate: int = 10
    precision: float = 0.1
    steps: list[dict[str, Any]] = field(default_factory=list)

    def holds(self, run: Mapping[str, Any]) -> bool:
        p99 = run.get("p99_ms")
        return bool(
            run.get("success", 0.0) >= self.min_success
            and p99 is not None
            and p99 <= self.p99_bound_ms
        )

    def _try(self, rate: int) -> bool:
        run = dict(self.measure(rate))
        run["holds"] = self.holds(run)
        run.setdefault("target_rps", rate)
        self.steps.append(run)
        logger.info(
            "rate %d/s: success %s, p99 %s ms -> %s",
            rate,
            run.get("success"),
            run.get("p99_ms"),
            "holds" if run["holds"] else "fails",
        )
        return bool(run["holds"])

    def run(self) -> int | None:
        """The saturation rate (requests per second), None when even ``min_rate`` fails."""
        good: int | None = None
        bad: int | None = None
        rate = self.start
        while good is None:  # down until a rate holds
            if rate < self.min_rate:
                return None
            if self._try(rate):
                good = rate
            else:
                bad, rate = rate, rate // 2
        while bad is None:  # up until a rate fails
            if good >= self.max_rate:
                return good
            rate = min(good * 2, self.max_rate)
            if self._try(rate):
                good = rate
            else:
                bad = rate
        while bad - good > max(1, self.precision * good):
            rate = (good + bad) // 2
            if self._try(rate):
                good = rate
            else:
                bad = rate
        return good
