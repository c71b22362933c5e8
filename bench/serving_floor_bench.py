"""The HTTP framework's own cost: an endpoint that does nothing, served five ways.

    .venv/bin/python bench/serving_floor_bench.py                   # rates 300,600; 10 s each
    .venv/bin/python bench/serving_floor_bench.py --rates 300 --seconds 20

``bench/floor_app.py`` answers ``POST /v1/credit-score`` with a fixed JSON after reading the
body (the scoring API's request). Served, one worker each, on the server's core:

- ``bentoml_method_access_log``: BentoML, the route a method of the service class, the access
  log on — how ``serving.service`` served before;
- ``bentoml_method``: the same without the access log;
- ``bentoml_function``: the route a function of the module, no access log;
- ``bentoml_function_untraced``: the same, no URL traced (BentoML records an OpenTelemetry span
  per request otherwise) — how ``serving.service`` serves now;
- ``uvicorn_fastapi``: the same FastAPI app under uvicorn alone (no BentoML).

vegeta (``safra.load_generator``) at each fixed ``--rates`` for ``--seconds``, the generator
pinned to one core and the server to the other (``taskset``) when the machine has two. Per run:
p50/p99/max from the intended send time, success, and ``server_cpu_ms_per_request``: the
server's process tree CPU (supervisor and worker) per answered request — its inverse bounds the
requests one core can serve. No stack needed. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from safra.load_generator import (
    VEGETA_VERSION,
    attack,
    ensure_vegeta,
    machine_pinning,
    summarize,
    targets_lines,
    tree_cpu_s,
)

ROOT = Path(__file__).resolve().parent.parent
BODY = {
    "id_proponente": "P-000001",
    "uf": "MT",
    "renda_liquida_mes": 9000.0,
    "valor_solicitado": 60000.0,
    "prazo": 24,
}
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "bentoml_method_access_log": ("bentoml", {"FLOOR_ROUTE": "method", "FLOOR_ACCESS_LOG": "1"}),
    "bentoml_method": ("bentoml", {"FLOOR_ROUTE": "method"}),
    "bentoml_function": ("bentoml", {"FLOOR_ROUTE": "function"}),
    "bentoml_function_untraced": ("bentoml", {"FLOOR_ROUTE": "function", "FLOOR_TRACED": "0"}),
    "uvicorn_fastapi": ("uvicorn", {"FLOOR_ROUTE": "function"}),
}
START_TIMEOUT_S = 90.0


def _command(server: str, port: int) -> tuple[list[str], str]:
    """The command serving the variant on ``port``, and its URL of the endpoint."""
    bin_dir = Path(sys.executable).parent
    if server == "bentoml":
        command = [str(bin_dir / "bentoml"), "serve", "bench.floor_app:Floor"]
        return [*command, "--host", "127.0.0.1", "--port", str(port)], "/v1/credit-score"
    command = [str(bin_dir / "uvicorn"), "bench.floor_app:v1", "--no-access-log"]
    return [*command, "--host", "127.0.0.1", "--port", str(port)], "/credit-score"


def _wait(url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, json=BODY, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {START_TIMEOUT_S:.0f}s; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="300,600", help="fixed rates, requests/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="per rate")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()

    from safra.processes import free_port, process_group
    from safra.settings import get_settings

    vegeta = ensure_vegeta(get_settings())
    pinning = machine_pinning()
    if pinning.generator:
        os.sched_setaffinity(0, {int(pinning.generator)})
    workdir = Path(tempfile.mkdtemp(prefix="serving-floor-"))
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "generator": f"taskset -c {pinning.generator}" if pinning.generator else None,
            "server": f"taskset -c {pinning.server}" if pinning.server else None,
        },
        "generator": f"vegeta {VEGETA_VERSION}",
        "variants": {},
    }
    for name in args.variants.split(","):
        server, env_extra = VARIANTS[name]
        port = free_port()
        command, path = _command(server, port)
        url = f"http://127.0.0.1:{port}{path}"
        log = workdir / f"{name}.log"
        env = {**os.environ, **env_extra, "PYTHONPATH": str(ROOT)}
        runs: dict[str, Any] = {}
        with process_group([*pinning.server_prefix(), *command], log, env) as proc:
            _wait(url, log)
            targets = targets_lines(url, [BODY], {})
            attack(vegeta, targets, 50, 2.0, workdir / name, pinning)  # warm-up
            for rate in (int(r) for r in args.rates.split(",") if r):
                time.sleep(2.0)  # what the last run left queued drains
                before = tree_cpu_s(proc.pid)
                hits = attack(vegeta, targets, rate, args.seconds, workdir / name, pinning)
                run = summarize(hits, rate)
                answered = sum(1 for h in hits if h.code != 0)
                if answered:
                    run["server_cpu_ms_per_request"] = round(
                        (tree_cpu_s(proc.pid) - before) * 1000.0 / answered, 3
                    )
                runs[str(rate)] = run
                print(
                    f"{name} at {rate}/s: p50 {run.get('p50_ms')} ms, p99 {run.get('p99_ms')}"
                    f" ms, success {run['success']}, "
                    f"cpu {run.get('server_cpu_ms_per_request')} ms/request",
                    file=sys.stderr,
                )
        result["variants"][name] = runs
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
