"""The load generator's pure parts: vegeta's results read exactly, latency counted from the
intended send time (a late send is not a fast answer), nearest-rank percentiles, the saturation
search's steps, the cores chosen and the targets written. Nothing here runs vegeta or a clock."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from safra.load_generator import (
    Hit,
    Pinning,
    SaturationSearch,
    choose_pinning,
    nearest_rank,
    parse_results,
    parse_timestamp_ns,
    summarize,
    targets_lines,
    tree_cpu_s,
    vegeta_path,
)
from safra.settings import Settings

# two lines of `vegeta encode --to json` as v12.13.0 writes them (headers trimmed)
VEGETA_JSON = [
    '{"attack":"","seq":0,"code":200,"timestamp":"2026-12-03T17:31:47.166343917Z",'
    '"latency":7625160,"bytes_out":0,"bytes_in":10,"error":"","body":"eyJhIjogMX0=",'
    '"method":"POST","url":"http://127.0.0.1:1/v1/credit-score","headers":{}}',
    "",
    '{"attack":"","seq":1,"code":0,"timestamp":"2026-12-03T17:31:47.2155Z",'
    '"latency":10000000000,"bytes_out":0,"bytes_in":0,"error":"Post \\"x\\": timeout",'
    '"body":null,"method":"POST","url":"http://127.0.0.1:1/v1/credit-score","headers":null}',
]
EPOCH_20261203_173147 = 1_796_319_107  # 2026-12-03T17:31:47Z in seconds since the epoch
MS = 1_000_000


def test_go_timestamps_keep_their_nanoseconds_and_zone() -> None:
    assert parse_timestamp_ns("2026-12-03T17:31:47.166343917Z") == (
        EPOCH_20261203_173147 * 10**9 + 166_343_917
    )
    assert parse_timestamp_ns("2026-12-03T17:31:47.2155Z") == (
        EPOCH_20261203_173147 * 10**9 + 215_500_000
    )
    assert parse_timestamp_ns("2026-12-03T14:31:47-03:00") == EPOCH_20261203_173147 * 10**9
    with pytest.raises(ValueError):
        parse_timestamp_ns("2026-12-03T17:31:47.1")


def test_vegeta_results_parse_into_hits() -> None:
    first, second = parse_results(VEGETA_JSON)
    assert first == Hit(
        seq=0,
        sent_ns=EPOCH_20261203_173147 * 10**9 + 166_343_917,
        latency_ns=7_625_160,
        code=200,
        error="",
        body=b'{"a": 1}',
    )
    assert (second.seq, second.code, second.body) == (1, 0, b"")
    assert second.error == 'Post "x": timeout'


def test_nearest_rank_is_an_observed_value() -> None:
    hundred = [float(i) for i in range(1, 101)]
    assert nearest_rank(hundred, 0.50) == 50.0
    assert nearest_rank(hundred, 0.99) == 99.0
    assert nearest_rank(hundred, 1.0) == 100.0
    assert nearest_rank([float(i) for i in range(1, 1001)], 0.99) == 990.0
    assert nearest_rank([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        nearest_rank([], 0.5)


def _hits(rate: int, sends: list[tuple[float, float, int]]) -> list[Hit]:
    """Hits at ``rate`` from (send lag ms, latency ms, status), seq in order; the attack began
    at 1,000 s (any epoch works: only differences count)."""
    began = 1_000 * 10**9
    interval = 10**9 // rate
    return [
        Hit(seq, began + (seq + 1) * interval + int(lag * MS), int(latency * MS), code)
        for seq, (lag, latency, code) in enumerate(sends)
    ]


def test_a_late_send_counts_from_its_due_time_not_from_when_it_left() -> None:
    # 100/s: one hit every 10 ms; the generator stalled 30 ms before hit 2, then sent hits 2,
    # 3 and 4 together (30, 20 and 10 ms late); the server answered each in 1 ms
    hits = _hits(100, [(0, 1, 200), (0, 1, 200), (30, 1, 200), (20, 1, 200), (10, 1, 200)])
    run = summarize(hits, 100)
    assert run["p50_ms"] == 11.0  # from the due times: 1, 1, 31, 21, 11 ms
    assert run["max_ms"] == 31.0  # vegeta alone would say 1 ms
    assert run["p99_ms"] == 31.0
    assert run["service_p99_ms"] == 1.0
    assert (run["send_lag_p99_ms"], run["send_lag_max_ms"]) == (30.0, 30.0)
    assert run["success"] == 1.0
    assert run["status_codes"] == {"200": 5}
    assert run["requests"] == 5
    # sent from 10 ms to 60 ms: 4 intervals in 50 ms; the 5 answers by 61 ms
    assert run["achieved_rps"] == 80.0
    assert run["throughput_rps"] == 98.0


def test_refusals_and_timeouts_fail_success_and_only_answers_have_latency() -> None:
    hits = _hits(50, [(0, 2, 200), (0, 3, 503), (0, 10_000, 0), (0, 4, 200)])
    hits[2] = Hit(2, hits[2].sent_ns, hits[2].latency_ns, 0, error="timeout")
    run = summarize(hits, 50)
    assert run["success"] == 0.5
    assert run["status_codes"] == {"0": 1, "200": 2, "503": 1}
    assert run["errors"] == {"timeout": 1}
    assert run["max_ms"] == 4.0  # the timed-out request has no answer to time
    assert run["p50_ms"] == 3.0


def test_summary_of_nothing_says_nothing_was_sent() -> None:
    assert summarize([], 200) == {
        "target_rps": 200,
        "requests": 0,
        "success": 0.0,
        "status_codes": {},
    }


def _fake_server(capacity: int):
    def measure(rate: int) -> dict[str, float]:
        return {"success": 1.0, "p99_ms": 5.0 if rate <= capacity else 900.0}

    return measure


def test_saturation_doubles_then_bisects_to_the_precision() -> None:
    search = SaturationSearch(_fake_server(730), p99_bound_ms=50, start=100, precision=0.1)
    assert search.run() == 700
    assert [s["target_rps"] for s in search.steps] == [100, 200, 400, 800, 600, 700, 750]
    assert [s["holds"] for s in search.steps] == [True, True, True, False, True, True, False]


def test_saturation_halves_from_a_failing_start_then_bisects() -> None:
    search = SaturationSearch(_fake_server(70), start=200, min_rate=10, precision=0.1)
    assert search.run() == 68
    # 200, 100 fail; 50 holds; bisection of (50, 100): 75 fails, 62 and 68 hold, 71 fails;
    # 71 - 68 is within 10 % of 68
    assert [s["target_rps"] for s in search.steps] == [200, 100, 50, 75, 62, 68, 71]


def test_saturation_is_none_below_min_rate_and_capped_at_max_rate() -> None:
    failing = SaturationSearch(_fake_server(5), start=40, min_rate=10)
    assert failing.run() is None
    assert [s["target_rps"] for s in failing.steps] == [40, 20, 10]
    unbounded = SaturationSearch(_fake_server(10**6), start=100, max_rate=1000)
    assert unbounded.run() == 1000
    assert [s["target_rps"] for s in unbounded.steps] == [100, 200, 400, 800, 1000]


def test_a_rate_holds_only_with_enough_success_and_a_p99_under_the_bound() -> None:
    search = SaturationSearch(_fake_server(0), p99_bound_ms=50, min_success=0.999)
    assert search.holds({"success": 0.999, "p99_ms": 50.0})
    assert not search.holds({"success": 0.998, "p99_ms": 1.0})
    assert not search.holds({"success": 1.0, "p99_ms": 50.1})
    assert not search.holds({"success": 1.0, "p99_ms": None})


def test_generator_and_server_get_a_core_each_when_there_are_two() -> None:
    assert choose_pinning([1, 0]) == Pinning("0", "1")
    assert choose_pinning([5, 2, 7]) == Pinning("2", "5")
    assert choose_pinning([3]) == Pinning(None, None)
    assert choose_pinning([0, 1], taskset_available=False) == Pinning(None, None)
    assert Pinning("0", "1").generator_prefix() == ["taskset", "-c", "0"]
    assert Pinning(None, None).server_prefix() == []


def test_targets_carry_the_key_and_the_json_body() -> None:
    bodies = [{"id_proponente": "p-1", "prazo": 24}, {"id_proponente": "p-2"}]
    lines = targets_lines("http://h:1/v1/credit-score", bodies, {"X-API-Key": "k" * 16})
    targets = [json.loads(line) for line in lines]
    assert [json.loads(base64.b64decode(t["body"])) for t in targets] == bodies
    assert targets[0]["method"] == "POST"
    assert targets[0]["url"] == "http://h:1/v1/credit-score"
    assert targets[0]["header"] == {
        "X-API-Key": ["k" * 16],
        "Content-Type": ["application/json"],
    }


def test_vegeta_is_cached_per_version_under_the_download_cache(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert vegeta_path(settings) == tmp_path / "vegeta" / "v12.13.0" / "vegeta"


def test_tree_cpu_counts_the_children_and_a_gone_process_counts_nothing() -> None:
    """A server's CPU is its supervisor's plus its workers': a child that burns ~0.3 s of CPU
    shows up in its parent's tree; a process that has exited counts 0."""
    import subprocess
    import sys

    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])",
        ]
    )
    samples = []
    while parent.poll() is None:
        samples.append(tree_cpu_s(parent.pid))
    assert max(samples) >= 0.25
    assert tree_cpu_s(parent.pid) == 0.0
