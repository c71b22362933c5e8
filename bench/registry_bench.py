"""Registry benchmark: what MLflow's authentication costs Safra, with and without its credential
cache, and what a signed model costs to load.

    .venv/bin/python bench/registry_bench.py            # both configurations, 50 reads each

For each configuration it starts its own MLflow server (the local stack's command and auth
config, on a free port, in a temporary folder), creates Safra's identities, registers one small
signed model (a 60-tree gradient boosting on 5,000 simulator rows) and times, as Safra's
identity: ``--reads`` registry reads (``get_registered_model``, what the API's watcher does at
every poll), and ``--loads`` full loads of the version as the API does them
(:func:`serving.model_watcher.load_from_registry`: download, verify the signature, skops load,
reference sample). Needs the signing keys of ``.env``; nothing of the user's stack is touched.

Prints one JSON object (medians in ms).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from commands.stack import mlflow_auth
from commands.stack.services import mlflow_spec
from safra.processes import free_port
from safra.settings import get_settings


def _wait(url: str, timeout_s: float = 240.0) -> float:
    began = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return time.monotonic() - began
        except OSError:
            if time.monotonic() - began > timeout_s:
                raise TimeoutError(f"{url} did not answer in {timeout_s:g} s") from None
            time.sleep(0.25)


def run(cache: bool, reads: int, loads: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from ml.registry import tracking_client
    from ml.train import out_of_time_split, train_and_register
    from pipelines.simulator import generate_applications, labelled_frame
    from serving.model_watcher import load_from_registry

    with tempfile.TemporaryDirectory(prefix="safra-registry-bench-") as tmp:
        port = free_port()
        s = get_settings().model_copy(
            update={"data_dir": Path(tmp), "mlflow_port": port,
                    "mlflow_tracking_uri": f"http://127.0.0.1:{port}"}
        )  # fmt: skip
        spec = mlflow_spec(s)
        env = dict(spec.env)
        if not cache:
            config = Path(env["MLFLOW_AUTH_CONFIG_PATH"])
            config.write_text(
                config.read_text().replace(
                    f"auth_cache_ttl_seconds = {mlflow_auth.AUTH_CACHE_TTL_S}",
                    "auth_cache_ttl_seconds = 0",
                )
            )
        log = Path(tmp) / "mlflow.log"
        with log.open("w") as out:
            server = subprocess.Popen(
                spec.command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            start_s = _wait(f"{s.mlflow_tracking_uri}/health")
            began = time.monotonic()
            mlflow_auth.ensure_identities(s)
            identities_s = time.monotonic() - began
            frame = labelled_frame(
                generate_applications(5_000, 3, datetime(2024, 1, 1), datetime(2025, 1, 1)), 3
            )
            train, valid = out_of_time_split(frame, valid_fraction=0.2)
            began = time.monotonic()
            result = train_and_register(
                train, valid, settings=s, model_name="bench-model",
                candidates={"hgb": HistGradientBoostingClassifier(max_iter=60, random_state=1)},
            )  # fmt: skip
            register_s = time.monotonic() - began
            client = tracking_client(s)
            read_ms = []
            for _ in range(reads):
                began = time.perf_counter()
                client.get_registered_model("bench-model")
                read_ms.append((time.perf_counter() - began) * 1000)
            load_ms = []
            for _ in range(loads):
                began = time.perf_counter()
                load_from_registry(s, client, "bench-model", str(result.version))
                load_ms.append((time.perf_counter() - began) * 1000)
        finally:
            server.terminate()
            server.wait(30)
    return {
        "auth_cache_ttl_s": mlflow_auth.AUTH_CACHE_TTL_S if cache else 0,
        "server_start_s": round(start_s, 1),
        "ensure_identities_s": round(identities_s, 1),
        "train_register_sign_s": round(register_s, 1),
        "registry_read_ms_median": round(statistics.median(read_ms), 1),
        "registry_read_ms_max": round(max(read_ms), 1),
        "model_load_ms_median": round(statistics.median(load_ms), 1),
        "reads": reads,
        "loads": loads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # MLflow's "View run" lines: stdout is the JSON
        results = [run(cache, args.reads, args.loads) for cache in (True, False)]
    print(json.dumps({"bench": "registry", "load_avg": round(os.getloadavg()[0], 2),
                      "configurations": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
