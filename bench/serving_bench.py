"""Scoring API benchmark: latency p50/p99 and achieved throughput at fixed request rates.

    .venv/bin/python bench/serving_bench.py                      # rates 50, 200, 500; 15 s each
    .venv/bin/python bench/serving_bench.py --rates 200 --seconds 10 --skip-mlflow

Side by side, on the same machine and the same model version:

- ``api``: the whole path — HTTP, API key, validation, Feast online read (Redis), features,
  one batched predict (score + occlusion reasons), decision, the Kafka log — through a real
  ``bentoml serve`` process (one worker); ``mean_batch_size``: requests scored together;
- ``mlflow_serve``: ``mlflow models serve`` of the same version (``--env-manager local``; a local
  copy whose signature was verified first, as the API does), sent the model inputs precomputed
  (no feature read, no reasons): the model behind plain HTTP;
- ``feast_online_read``: the direct Feast online read of one applicant (in this process).

Open loop: request *i* is due at ``start + i / rate`` whatever the previous answers did, and its
latency runs from that due time (so a server that falls behind shows it, no coordinated
omission). The load generator (aiohttp) runs on the same 2 cores as the servers; ``loadavg``
says how busy the machine was. Setup (unique model name, Feast project and topic, removed at the
end): a small model trained on simulator data and set ``@champion``, ``--applicants`` known
applicants written to the online store; requests cycle over them. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safra.kafka_clients import client_config

logger = logging.getLogger("serving_bench")


def _summary(latencies_ms: list[float], errors: int, sent: int, seconds: float) -> dict[str, Any]:
    lat = np.asarray(latencies_ms, dtype=float)
    ok = len(lat)
    return {
        "sent": sent,
        "ok": ok,
        "errors": errors,
        "achieved_rps": round(ok / seconds, 1) if seconds > 0 else 0.0,
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if ok else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if ok else None,
        "max_ms": round(float(lat.max()), 2) if ok else None,
    }


async def _open_loop_http(
    url: str,
    bodies: list[Any],
    rate: float,
    seconds: float,
    headers: dict[str, str],
    check: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    import aiohttp

    n = int(rate * seconds)
    latencies: list[float] = []
    errors: list[str] = []
    server_ms: list[float] = []
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.2

        async def one(i: int) -> None:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                async with session.post(url, json=bodies[i % len(bodies)], headers=headers) as r:
                    payload = await r.read()
                    if r.status != 200:
                        errors.append(f"HTTP {r.status}: {payload[:200]!r}")
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(repr(exc))
                return
            latencies.append((loop.time() - due) * 1000.0)
            if check is not None:
                answer = json.loads(payload)
                check(answer)
                if isinstance(answer, dict) and "latencia_ms" in answer:
                    server_ms.append(float(answer["latencia_ms"]))

        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - began - 0.2
    out = _summary(latencies, len(errors), n, max(elapsed, seconds))
    if server_ms:
        out["in_service_p50_ms"] = round(float(np.percentile(server_ms, 50)), 2)
        out["in_service_p99_ms"] = round(float(np.percentile(server_ms, 99)), 2)
    if errors:
        out["first_error"] = errors[0]
    return out


def _open_loop_call(call: Callable[[int], Any], rate: float, seconds: float) -> dict[str, Any]:
    """``call(i)`` at ``rate`` per second in this thread (open loop, latency from the due time)."""
    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.1
    for i in range(n):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        try:
            call(i)
        except Exception:  # noqa: BLE001 - counted
            errors += 1
            continue
        latencies.append((time.perf_counter() - due) * 1000.0)
    return _summary(latencies, errors, n, max(time.perf_counter() - start, seconds))


def _batches(port: int) -> tuple[float, float]:
    """(batches, requests in them) scored so far, from the API's ``safra_api_batch_size``."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    values = {"count": 0.0, "sum": 0.0}
    for line in text.splitlines():
        for key in values:
            if line.startswith(f"safra_api_batch_size_{key}"):
                values[key] += float(line.rsplit(" ", 1)[1])
    return values["count"], values["sum"]


def _wait_http(url: str, timeout_s: float, log: Path, proc: subprocess.Popen) -> float:
    import httpx

    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"exited {proc.returncode}; log tail:\n{log.read_text()[-1500:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - began
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout_s}s; log tail:\n{log.read_text()[-2000:]}")


def _train(settings: Any, model_name: str) -> str:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from ml.registry import CHAMPION, tracking_client
    from ml.train import out_of_time_split, train_and_register
    from pipelines.simulator import generate_applications, labelled_frame

    apps = generate_applications(
        20_000, seed=31, start=datetime(2024, 1, 1), end=datetime(2025, 1, 1)
    )
    frame = labelled_frame(apps, seed=31)
    train, valid = out_of_time_split(frame, valid_fraction=0.2)
    result = train_and_register(
        train,
        valid,
        settings=settings,
        model_name=model_name,
        experiment_name="safra-serving-bench",
        candidates={
            "hist_gradient_boosting": HistGradientBoostingClassifier(
                max_iter=200, learning_rate=0.08, random_state=1
            )
        },
    )
    assert result.version is not None
    tracking_client(settings).set_registered_model_alias(model_name, CHAMPION, result.version)
    return result.version


def _applicants(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    stamp = datetime.now(UTC) - timedelta(days=3)
    return pd.DataFrame(
        {
            "proponente_id": [f"bench-{i}" for i in range(n)],
            "feature_timestamp": stamp,
            "n_solicitacoes": rng.integers(1, 12, n),
            "valor_medio": rng.lognormal(11, 0.6, n),
            "valor_max": rng.lognormal(11.5, 0.6, n),
            "valor_min": rng.lognormal(10.5, 0.6, n),
            "valor_desvio": rng.lognormal(9.5, 0.6, n),
            "primeira_solicitacao": stamp - timedelta(days=500),
            "ultima_solicitacao": stamp,
            "dias_entre_primeira_ultima": 500,
            "score_medio": rng.uniform(200, 950, n),
            "share_ibama": rng.choice([0.0, 0.0, 0.0, 0.5], n),
            "coef_variacao": rng.uniform(0, 1, n),
            "perfil_frequencia": "RECORRENTE",
            "perfil_volatilidade": "ESTAVEL",
            "inadimplencias_anteriores": rng.integers(0, 3, n),
            "desfechos_conhecidos": rng.integers(3, 6, n),
            "area_total_hectares": rng.lognormal(5, 1, n),
            "cultura_principal": rng.choice(["SOJA", "MILHO", "CAFE", "ALGODAO"], n),
            "anos_experiencia": rng.integers(0, 40, n).astype("int32"),
            "serasa_score": rng.integers(150, 990, n).astype("int32"),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,200,500")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--applicants", type=int, default=1_000)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    rates = [float(r) for r in args.rates.split(",")]
    suffix = uuid.uuid4().hex[:8]
    env_overrides = {
        "SAFRA_MODEL_NAME": f"safra-credit-bench-{suffix}",
        "SAFRA_FEAST_PROJECT": f"servingbench{suffix}",
        "SAFRA_TOPIC_SCORED_REQUESTS": f"safra.scored-requests.bench-{suffix}",
        "SAFRA_CHAMPION_POLL_S": "5",
    }
    os.environ.update(env_overrides)

    from ml.feature_store import HISTORY_VIEW, apply_repo, feature_store, online_history
    from ml.features import model_inputs, request_to_application
    from ml.registry import tracking_client, verified_version
    from safra.processes import free_port, process_group
    from safra.settings import get_settings
    from serving.scoring import split_online_row

    settings = get_settings()
    api_key = settings.require_api_key()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()},
        "rates": rates,
        "seconds_per_rate": args.seconds,
    }
    workdir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    store = feature_store(settings)
    try:
        began = time.perf_counter()
        version = _train(settings, settings.model_name)
        apply_repo(store, settings)
        rows = _applicants(args.applicants)
        store.write_to_online_store(HISTORY_VIEW, rows)
        result["setup_s"] = round(time.perf_counter() - began, 1)
        result["model"] = {"name": settings.model_name, "version": version}
        ids = rows["proponente_id"].tolist()
        rng = np.random.default_rng(3)
        requests = [
            {
                "id_proponente": pid,
                "uf": str(rng.choice(["MT", "PR", "GO", "BA", "RS"])),
                "renda_liquida_mes": float(rng.lognormal(9.5, 0.7)),
                "valor_solicitado": float(rng.lognormal(11, 0.8)),
                "prazo": int(rng.choice([12, 24, 36])),
            }
            for pid in ids
        ]

        # the direct Feast online read (this process)
        online_history(store, ids[:1])  # warm
        result["feast_online_read"] = {
            str(int(rate)): _open_loop_call(
                lambda i: online_history(store, [ids[i % len(ids)]]), rate, args.seconds
            )
            for rate in rates
        }

        # the API: a real bentoml serve process
        from serving.server import api_environment, bentoml_command

        port = free_port()
        api_log = workdir / "api.log"
        env = {**os.environ, **api_environment(settings)}
        with process_group(bentoml_command(settings, port), api_log, env) as proc:
            result["api_start_s"] = round(
                _wait_http(f"http://127.0.0.1:{port}/readyz", 300, api_log, proc), 1
            )
            url = f"http://127.0.0.1:{port}/v1/credit-score"
            headers = {"X-API-Key": api_key}
            decisions: dict[str, int] = {}

            def count(answer: dict[str, Any]) -> None:
                decisions[answer["decisao"]] = decisions.get(answer["decisao"], 0) + 1

            asyncio.run(_open_loop_http(url, requests, 20, 2, headers))  # warm-up
            result["api"] = {}
            for rate in rates:
                batches_before = _batches(port)
                run = asyncio.run(
                    _open_loop_http(url, requests, rate, args.seconds, headers, count)
                )
                after = _batches(port)
                batches, scored = after[0] - batches_before[0], after[1] - batches_before[1]
                run["mean_batch_size"] = round(scored / batches, 2) if batches else None
                result["api"][str(int(rate))] = run
            result["api_decisions"] = decisions

        # mlflow models serve of the same version, sent precomputed model inputs
        if not args.skip_mlflow:
            online = online_history(store, ids[:200])
            frames = []
            for request, row in zip(requests[:200], online, strict=True):
                profile, history, _ = split_online_row(row)
                application = request_to_application(request, defaults=profile)
                application.update(history)
                frames.append(model_inputs(pd.DataFrame([application])))
            bodies = [
                {"dataframe_split": json.loads(f.to_json(orient="split", index=False))}
                for f in frames
            ]
            port = free_port()
            mlflow_log = workdir / "mlflow.log"
            model_dir = workdir / "model"
            with verified_version(settings, settings.model_name, version) as verified:
                shutil.copytree(verified, model_dir)
            command = [
                str(Path(sys.executable).parent / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ]
            bin_dir = str(Path(sys.executable).parent)  # mlflow runs `uvicorn` from PATH
            env = {
                **os.environ,
                "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
                "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
            }
            with process_group(command, mlflow_log, env) as proc:
                result["mlflow_serve_start_s"] = round(
                    _wait_http(f"http://127.0.0.1:{port}/ping", 300, mlflow_log, proc), 1
                )
                url = f"http://127.0.0.1:{port}/invocations"
                asyncio.run(_open_loop_http(url, bodies, 20, 2, {}))  # warm-up
                result["mlflow_serve"] = {
                    str(int(rate)): asyncio.run(
                        _open_loop_http(url, bodies, rate, args.seconds, {})
                    )
                    for rate in rates
                }
    except Exception as exc:  # noqa: BLE001 - report what was measured, and why it stopped
        logger.exception("benchmark stopped")
        result["error"] = f"{type(exc).__name__}: {exc}"[:3000]
    finally:
        result["machine"]["loadavg_after"] = os.getloadavg()
        with contextlib.suppress(Exception):
            store.teardown()
        shutil.rmtree(settings.data_dir / "feast" / settings.feast_project, True)
        with contextlib.suppress(Exception):
            tracking_client(settings).delete_registered_model(settings.model_name)
        with contextlib.suppress(Exception):
            from confluent_kafka.admin import AdminClient

            AdminClient(client_config(settings)).delete_topics([settings.topic_scored_requests])
        shutil.rmtree(workdir, True)
    goal = result.get("api", {}).get("200", {})
    result["goal_p99_le_10ms_at_200rps"] = bool(
        goal.get("p99_ms") is not None and goal["p99_ms"] <= 10.0
    )
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
