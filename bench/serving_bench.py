"""Scoring API benchmark: latency at fixed rates, saturation, the ratio to `mlflow models serve`.

    make bench                                                  # build vegeta if missing, run this
    .venv/bin/python bench/serving_bench.py                     # rates 50,200,500,1000; 10 s each
    .venv/bin/python bench/serving_bench.py --rates 200 --no-saturation --skip-mlflow
    .venv/bin/python bench/serving_bench.py --build-vegeta      # only build vegeta (cached)

The load generator is vegeta (``safra.load_generator``: built once from the Go module proxy into
``SAFRA_CACHE_DIR``): open model, constant rate, latency counted from each request's intended
send time (no coordinated omission), pinned with ``taskset`` to one core and the server under
test to another when the machine has two or more (the Redis/Kafka/MLflow of the stack are not
pinned). Per rate: p50/p99/max, success (HTTP 200 share), status codes, achieved rate and
throughput, vegeta's own service time, the generator's send lag (a growing lag means the
generator was the limit, not the server) and the server's CPU per answered request (its process
tree: supervisor and workers; ``bench/serving_floor_bench.py`` gives the framework's own).

Side by side, on the same machine, the same model version and the same generator:

- ``api``: the whole path — HTTP, API key, validation, Feast online read (Redis), features,
  score and occlusion reasons, decision, the Kafka log — through a real ``bentoml serve``
  (``--api-workers``, default 1 when pinned: one worker per core it may use);
- ``mlflow_serve``: ``mlflow models serve`` of the same version (``--env-manager local``, one
  worker, a local copy whose signature was verified first), sent the model inputs precomputed
  (no feature read, no reasons): the model behind plain HTTP.

Each is measured at the fixed ``--rates`` and searched for its saturation: the highest rate with
success ≥ 99.9 % and p99 ≤ ``--p99-bound-ms`` (doubling — halving from a failing start — then
bisection to 10 %), then measured again at 80 % of it. ``api_to_mlflow_throughput`` compares the
two saturations: the throughput of each at the same p99 bound. Before each run the server must
answer its health URL quickly (an overloaded run's backlog drains first). The machine's load
average before and after (and at each run) says how busy the rest of the machine was: other
work on the same cores moves every figure.

Needs the stack up (``safra stack up``: Redis, Kafka, MLflow). Setup (unique model name, Feast
project and topic, removed at the end): a model (``--model``; by default the logistic regression
the demo promotes, compiled) trained on simulator data and set ``@champion``, ``--applicants``
known applicants written to the online store; requests cycle over them. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
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
from safra.load_generator import (
    VEGETA_VERSION,
    Hit,
    Pinning,
    SaturationSearch,
    attack,
    ensure_vegeta,
    machine_pinning,
    nearest_rank,
    summarize,
    targets_lines,
    tree_cpu_s,
)

logger = logging.getLogger("serving_bench")
QUIET_ANSWER_S = 0.25
"""Before a run, the server must answer one real request (the first target) within this, twice
in a row: what an overloaded run left queued (requests vegeta gave up on still keep the server
busy) drains before the next run starts. A health URL is no probe: `mlflow models serve`
answers /ping at once while its predictions queue."""
QUIET_WAIT_S = 180.0


def _batches(port: int) -> tuple[float, float]:
    """(batches, requests in them) scored so far, from the API's ``safra_api_batch_size``
    (zeros when the API has no such metric)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as answer:
        text = answer.read().decode()
    values = {"count": 0.0, "sum": 0.0}
    for line in text.splitlines():
        for key in values:
            if line.startswith(f"safra_api_batch_size_{key}"):
                values[key] += float(line.rsplit(" ", 1)[1])
    return values["count"], values["sum"]


def _wait_http(url: str, timeout_s: float, log: Path, proc: Any) -> float:
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


def _train(settings: Any, model_name: str, candidate: str) -> str:
    """``candidate`` (a name of :func:`ml.train.candidate_classifiers`) trained and registered
    as the champion: the logistic regression by default, the one the demo promotes (compiled
    to ONNX); ``hist_gradient_boosting`` is served by the scikit-learn reference path."""
    from ml.registry import CHAMPION, tracking_client
    from ml.train import candidate_classifiers, out_of_time_split, train_and_register
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
        candidates={candidate: candidate_classifiers(len(train), random_state=1)[candidate]},
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


def _short_requests(ids: list[str]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(3)
    return [
        {
            "id_proponente": pid,
            "uf": str(rng.choice(["MT", "PR", "GO", "BA", "RS"])),
            "renda_liquida_mes": float(rng.lognormal(9.5, 0.7)),
            "valor_solicitado": float(rng.lognormal(11, 0.8)),
            "prazo": int(rng.choice([12, 24, 36])),
        }
        for pid in ids
    ]


def _answers(hits: list[Hit]) -> dict[str, Any]:
    """What the API's 200 answers say: their decisions, and the in-service time the API measured
    itself (``latencia_ms``, when it reports one): the rest of the latency is queueing, HTTP and
    the generator's side."""
    decisions: dict[str, int] = {}
    in_service: list[float] = []
    for hit in hits:
        if hit.code != 200 or not hit.body:
            continue
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            answer = json.loads(hit.body)
            decision = str(answer.get("decisao"))
            decisions[decision] = decisions.get(decision, 0) + 1
            if answer.get("latencia_ms") is not None:
                in_service.append(float(answer["latencia_ms"]))
    out: dict[str, Any] = {"decisions": decisions}
    if in_service:
        ordered = sorted(in_service)
        out["in_service_p50_ms"] = round(nearest_rank(ordered, 0.50), 2)
        out["in_service_p99_ms"] = round(nearest_rank(ordered, 0.99), 2)
    return out


def _cpu_pressure() -> dict[str, float] | None:
    """Linux PSI: the share of time some runnable task waited for a CPU (avg10/avg60/avg300,
    percent): on a shared machine, the other work the load average alone does not show."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(part.split("=") for part in line.split()[1:])
    return {k: float(v) for k, v in fields.items() if k.startswith("avg")}


PATH_WORDS = {"path", "caminho", "uri", "artifact", "artefato", "source", "origem"}


def _model_path(info: Any) -> Any:
    """The first value under a key naming a path or an artifact location in ``/v1/model-info``
    (whatever the API reports about the files it scores with), else None."""
    if isinstance(info, dict):
        for key, value in info.items():
            if PATH_WORDS & set(re.split(r"[^a-z]+", str(key).lower())):
                return value
            found = _model_path(value)
            if found is not None:
                return found
    return None


class Server:
    """One server under test, driven by vegeta: fixed rates, the saturation search, 80 % of it."""

    def __init__(
        self,
        name: str,
        probe: Callable[[], Any],
        vegeta: Path,
        targets: list[str],
        workdir: Path,
        pinning: Pinning,
        args: argparse.Namespace,
        per_run: Callable[[list[Hit]], dict[str, Any]] | None = None,
        pid: int | None = None,
    ) -> None:
        self.name, self.probe, self.pid = name, probe, pid
        self.vegeta, self.targets = vegeta, targets
        self.workdir, self.pinning, self.args = workdir / name, pinning, args
        self.per_run = per_run

    def wait_quiet(self) -> float:
        """Seconds until the server answers ``probe()`` within :data:`QUIET_ANSWER_S` twice in
        a row (at most :data:`QUIET_WAIT_S`)."""
        began = time.monotonic()
        quick = 0
        while quick < 2 and time.monotonic() - began < QUIET_WAIT_S:
            t0 = time.monotonic()
            try:
                self.probe()
                quick = quick + 1 if time.monotonic() - t0 <= QUIET_ANSWER_S else 0
            except Exception:  # noqa: BLE001 - not quiet yet
                quick = 0
            time.sleep(0.5)
        return round(time.monotonic() - began, 1)

    def measure(self, rate: int, seconds: float | None = None) -> dict[str, Any]:
        waited = self.wait_quiet()
        loadavg = os.getloadavg()[0]
        cpu_before = tree_cpu_s(self.pid) if self.pid else None
        hits = attack(
            self.vegeta,
            self.targets,
            rate,
            seconds or self.args.seconds,
            self.workdir,
            self.pinning,
            timeout_s=self.args.timeout_s,
        )
        run = summarize(hits, rate)
        answered = sum(1 for h in hits if h.code != 0)
        if cpu_before is not None and answered:  # the server's own CPU, whatever its core
            run["server_cpu_ms_per_request"] = round(
                (tree_cpu_s(self.pid) - cpu_before) * 1000.0 / answered, 3
            )
        run["loadavg_1m_at_start"] = round(loadavg, 2)
        run["waited_for_quiet_s"] = waited
        if self.per_run is not None:
            try:
                run.update(self.per_run(hits))
            except Exception as exc:  # noqa: BLE001 - an extra figure, not the measurement
                run["per_run_error"] = f"{type(exc).__name__}: {exc}"
        logger.info(
            "%s at %d/s: p50 %s ms, p99 %s ms, success %s",
            self.name,
            rate,
            run.get("p50_ms"),
            run.get("p99_ms"),
            run.get("success"),
        )
        return run

    def run_all(self, rates: list[int]) -> dict[str, Any]:
        self.measure(20, 2.0)  # warm-up: connections, caches, the first batches
        out: dict[str, Any] = {"fixed": {str(rate): self.measure(rate) for rate in rates}}
        if self.args.saturation:
            search = SaturationSearch(
                self.measure,
                p99_bound_ms=self.args.p99_bound_ms,
                start=self.args.search_start,
                max_rate=self.args.search_max,
                min_rate=self.args.search_min,
            )
            saturation = search.run()
            out["saturation"] = {
                "rps": saturation,
                "criterion": f"success >= {search.min_success}, p99 <= {search.p99_bound_ms} ms",
                "steps": search.steps,
            }
            if saturation:
                out["at_80pct_of_saturation"] = self.measure(int(saturation * 0.8))
        return out


def _mlflow_bodies(store: Any, requests: list[dict[str, Any]], ids: list[str]) -> list[Any]:
    from ml.feature_store import online_history
    from ml.features import model_inputs, request_to_application
    from serving.scoring import split_online_row

    online = online_history(store, ids[:200])
    bodies = []
    for request, row in zip(requests[:200], online, strict=True):
        profile, history, _ = split_online_row(row)
        application = request_to_application(request, defaults=profile)
        application.update(history)
        frame = model_inputs(pd.DataFrame([application]))
        bodies.append({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))})
    return bodies


def _goals(result: dict[str, Any]) -> dict[str, Any]:
    """Issue 13's goals against what this run measured (None: not measured in this run)."""
    api = result.get("api", {})
    at_200 = api.get("fixed", {}).get("200", {}).get("p99_ms")
    saturation = api.get("saturation", {}).get("rps")
    at_80 = api.get("at_80pct_of_saturation", {}).get("p99_ms")
    ratio = result.get("api_to_mlflow_throughput")
    return {
        "p99_le_10ms_at_200rps": {
            "p99_ms": at_200,
            "met": None if at_200 is None else at_200 <= 10,
        },
        "saturation_ge_1000rps_p99_le_50ms_at_80pct": {
            "saturation_rps": saturation,
            "p99_ms_at_80pct": at_80,
            "met": None
            if saturation is None or at_80 is None
            else saturation >= 1000 and at_80 <= 50,
        },
        "ge_10x_mlflow_serve_at_equal_p99": {
            "ratio": ratio,
            "met": None if ratio is None else ratio >= 10,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,200,500,1000", help="fixed rates, requests/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="per rate")
    parser.add_argument("--no-saturation", dest="saturation", action="store_false")
    parser.add_argument("--p99-bound-ms", type=float, default=100.0, help="saturation criterion")
    parser.add_argument("--search-start", type=int, default=50, help="first rate of the search")
    parser.add_argument("--search-max", type=int, default=4000, help="the search stops there")
    parser.add_argument("--search-min", type=int, default=5, help="below: no saturation")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="per request")
    parser.add_argument("--applicants", type=int, default=1_000)
    parser.add_argument(
        "--model", default="logistic_regression",
        choices=("logistic_regression", "hist_gradient_boosting", "random_forest"),
        help="the champion's family (default: the one the demo promotes, compiled to ONNX)",
    )  # fmt: skip
    parser.add_argument(
        "--api-workers", type=int, default=None, help="default: 1 when pinned to one core, "
        "else SAFRA_SERVING_WORKERS"
    )  # fmt: skip
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--build-vegeta", action="store_true", help="build vegeta (cached), exit")
    args = parser.parse_args()
    # stdout carries the JSON alone: whatever else writes there (MLflow's run links, children
    # that inherit it) goes to stderr
    report = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for chatty in ("feast", "httpx"):  # a line per registry refresh, per readiness poll
        logging.getLogger(chatty).setLevel(logging.WARNING)

    from safra.settings import get_settings

    if args.build_vegeta:
        print(ensure_vegeta(get_settings()), file=report)
        return
    rates = [int(r) for r in args.rates.split(",") if r]
    suffix = uuid.uuid4().hex[:8]
    os.environ.update(
        {
            "SAFRA_MODEL_NAME": f"safra-credit-bench-{suffix}",
            "SAFRA_FEAST_PROJECT": f"servingbench{suffix}",
            "SAFRA_TOPIC_SCORED_REQUESTS": f"safra.scored-requests.bench-{suffix}",
            "SAFRA_CHAMPION_POLL_S": "5",
        }
    )
    get_settings.cache_clear()

    from ml.feature_store import HISTORY_VIEW, apply_repo, feature_store, online_history
    from ml.registry import tracking_client, verified_version
    from safra.processes import free_port, process_group
    from serving.server import api_environment, bentoml_command

    settings = get_settings()
    api_key = settings.require_api_key()
    vegeta = ensure_vegeta(settings)
    pinning = machine_pinning()
    workers = args.api_workers or (1 if pinning.server else settings.serving_workers)
    usable = sorted(os.sched_getaffinity(0))
    if pinning.generator:  # this process (setup, parsing results) stays off the server's core
        os.sched_setaffinity(0, {int(pinning.generator)})
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "cpus_usable": usable,
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "cpu_pressure_before": _cpu_pressure(),
            "pinning": {
                "generator": f"taskset -c {pinning.generator}" if pinning.generator else None,
                "server": f"taskset -c {pinning.server}" if pinning.server else None,
                "bench_process": f"core {pinning.generator}" if pinning.generator else None,
                "stack_services": "not pinned",
            },
            "api_workers": workers,
        },
        "generator": {
            "tool": f"vegeta {VEGETA_VERSION}",
            "path": str(vegeta),
            "latency_from": "intended send time (seq / rate from the attack's start)",
            "timeout_s": args.timeout_s,
        },
        "rates": rates,
        "seconds_per_rate": args.seconds,
        "p99_bound_ms": args.p99_bound_ms,
    }
    workdir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    store = feature_store(settings)
    try:
        began = time.perf_counter()
        version = _train(settings, settings.model_name, args.model)
        apply_repo(store, settings)
        rows = _applicants(args.applicants)
        store.write_to_online_store(HISTORY_VIEW, rows)
        result["setup_s"] = round(time.perf_counter() - began, 1)
        result["model"] = {"name": settings.model_name, "version": version}
        ids = rows["proponente_id"].tolist()
        requests = _short_requests(ids)

        # the API: a real bentoml serve process, on the server's core
        import httpx

        port = free_port()
        api_log = workdir / "api.log"
        env = {
            **os.environ,
            **api_environment(settings),
            "SAFRA_SERVING_WORKERS": str(workers),
        }
        command = [*pinning.server_prefix(), *bentoml_command(settings, port)]
        with process_group(command, api_log, env) as proc:
            base = f"http://127.0.0.1:{port}"
            result["api_start_s"] = round(_wait_http(f"{base}/readyz", 300, api_log, proc), 1)
            headers = {"X-API-Key": api_key}
            info = httpx.get(f"{base}/v1/model-info", headers=headers, timeout=10)
            info_json = {k: v for k, v in info.json().items() if k != "metricas"}
            result["model"]["api_model_info"] = info_json
            result["model"]["path"] = _model_path(info_json)
            check = httpx.post(f"{base}/v1/credit-score", json=requests[0], headers=headers)
            check.raise_for_status()  # a bench of errors measures nothing

            def per_api_run(hits: list[Hit]) -> dict[str, Any]:
                after = _batches(port)
                batches, scored = after[0] - state[0], after[1] - state[1]
                state[:] = after
                return {
                    **_answers(hits),
                    "mean_batch_size": round(scored / batches, 2) if batches else None,
                }

            state = list(_batches(port))
            targets = targets_lines(f"{base}/v1/credit-score", requests, headers)
            score_url = f"{base}/v1/credit-score"

            def api_probe() -> None:
                httpx.post(score_url, json=requests[0], headers=headers, timeout=QUIET_WAIT_S)

            api = Server(
                "api", api_probe, vegeta, targets, workdir, pinning, args, per_api_run, proc.pid
            )
            result["api"] = api.run_all(rates)

        # mlflow models serve of the same version, sent precomputed model inputs
        if not args.skip_mlflow:
            bodies = _mlflow_bodies(store, requests, ids)
            port = free_port()
            mlflow_log = workdir / "mlflow.log"
            model_dir = workdir / "model"
            with verified_version(settings, settings.model_name, version) as verified:
                shutil.copytree(verified, model_dir)
            command = [
                *pinning.server_prefix(),
                str(Path(sys.executable).parent / "mlflow"),
                "models", "serve", "-m", str(model_dir), "--env-manager", "local",
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            ]  # fmt: skip
            bin_dir = str(Path(sys.executable).parent)  # mlflow runs `uvicorn` from PATH
            env = {
                **os.environ,
                "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
                "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
            }
            with process_group(command, mlflow_log, env) as proc:
                base = f"http://127.0.0.1:{port}"
                result["mlflow_serve_start_s"] = round(
                    _wait_http(f"{base}/ping", 300, mlflow_log, proc), 1
                )
                targets = targets_lines(f"{base}/invocations", bodies, {})
                invocations = f"{base}/invocations"

                def mlflow_probe() -> None:
                    httpx.post(invocations, json=bodies[0], timeout=QUIET_WAIT_S)

                reference = Server(
                    "mlflow_serve", mlflow_probe, vegeta, targets, workdir, pinning, args,
                    pid=proc.pid,
                )  # fmt: skip
                result["mlflow_serve"] = reference.run_all(rates)
            api_sat = result["api"].get("saturation", {}).get("rps")
            mlflow_sat = result["mlflow_serve"].get("saturation", {}).get("rps")
            if api_sat and mlflow_sat:
                result["api_to_mlflow_throughput"] = round(api_sat / mlflow_sat, 2)

        # the direct Feast online read, in this process: the floor of the API's feature read
        online_history(store, ids[:1])
        took = []
        for i in range(500):
            t0 = time.perf_counter()
            online_history(store, [ids[i % len(ids)]])
            took.append((time.perf_counter() - t0) * 1000)
        result["feast_online_read_ms"] = {
            "p50": round(float(np.percentile(took, 50)), 3),
            "p99": round(float(np.percentile(took, 99)), 3),
            "calls": len(took),
        }
    except Exception as exc:  # noqa: BLE001 - report what was measured, and why it stopped
        logger.exception("benchmark stopped")
        result["error"] = f"{type(exc).__name__}: {exc}"[:3000]
    finally:
        result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        result["machine"]["cpu_pressure_after"] = _cpu_pressure()
        with contextlib.suppress(Exception):
            store.teardown()
        shutil.rmtree(settings.data_dir / "feast" / settings.feast_project, True)
        with contextlib.suppress(Exception):
            tracking_client(settings).delete_registered_model(settings.model_name)
        with contextlib.suppress(Exception):
            from confluent_kafka.admin import AdminClient

            AdminClient(client_config(settings)).delete_topics([settings.topic_scored_requests])
        shutil.rmtree(workdir, True)
    result["goals"] = _goals(result)
    print(json.dumps(result, indent=2, default=str), file=report, flush=True)


if __name__ == "__main__":
    main()
