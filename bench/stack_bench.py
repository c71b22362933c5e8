"""Benchmark the foundation: cold `make demo`, warm `safra stack up`, memory at idle.

Runs a second, isolated copy of the project: a fresh clone in a temporary folder, its own ports
(offset from the defaults, so a stack already running is left alone), its own data folder and,
with --cold, empty download caches (uv, Maven, Safra's cache, Ivy) so that every byte is fetched
again. Bytes downloaded are the bytes received on the machine's network interfaces during
`make demo` (other traffic at the same time counts too); cache sizes are reported beside them.

    .venv/bin/python bench/stack_bench.py --cold      # fresh machine: clone, make demo
    .venv/bin/python bench/stack_bench.py             # warm caches: clone, make demo

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safra.settings import default_ports

ROOT = Path(__file__).resolve().parent.parent


def du(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def rx_bytes() -> int:
    """Bytes received on every non-loopback interface (from /proc/net/dev)."""
    total = 0
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name, data = line.split(":", 1)
        if name.strip() != "lo":
            total += int(data.split()[0])
    return total


def run(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    t0 = time.monotonic()
    with log.open("ab") as fh:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    return time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="empty download caches")
    parser.add_argument("--port-offset", type=int, default=10000)
    parser.add_argument("--idle-s", type=float, default=30.0, help="settle time before memory")
    parser.add_argument("--keep", action="store_true", help="leave the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="safra-bench-"))
    clone = work / "safra"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFRA_")}
    env.update({k: str(v + args.port_offset) for k, v in default_ports().items()})
    caches = {}
    if args.cold:
        caches = {
            "uv": work / "cache" / "uv",
            "maven": work / "cache" / "m2",
            "safra (incl. Ivy)": work / "cache" / "safra",
        }
        env["UV_CACHE_DIR"] = str(caches["uv"])
        env["PIP_CACHE_DIR"] = str(work / "cache" / "pip")
        env["MAVEN_OPTS"] = f"-Dmaven.repo.local={caches['maven']}"
        env["SAFRA_CACHE_DIR"] = str(caches["safra (incl. Ivy)"])
    log = work / "bench.log"
    safra = [str(clone / ".venv" / "bin" / "safra")]

    rx0 = rx_bytes()
    demo_s = run(["make", "demo"], clone, env, log)
    received = rx_bytes() - rx0
    time.sleep(args.idle_s)
    status = json.loads(
        subprocess.run(
            [*safra, "stack", "status", "--json"], cwd=clone, env=env, capture_output=True,
            text=True, check=True,
        ).stdout
    )  # fmt: skip
    run([*safra, "stack", "down"], clone, env, log)
    warm_up_s = run([*safra, "stack", "up"], clone, env, log)
    warm_again_s = run([*safra, "stack", "up"], clone, env, log)
    run([*safra, "stack", "down"], clone, env, log)

    result = {
        "mode": "cold" if args.cold else "warm-caches",
        "make_demo_s": round(demo_s, 1),
        "warm_stack_up_s": round(warm_up_s, 1),
        "stack_up_when_already_up_s": round(warm_again_s, 1),
        "idle_memory_mib": {s["name"]: round(s["rss_bytes"] / 2**20) for s in status},
        "idle_memory_total_gib": round(sum(s["rss_bytes"] for s in status) / 2**30, 2),
        "network_received_bytes_during_demo": received,
        "cache_bytes": {k: du(v) for k, v in caches.items()} or None,
        "venv_bytes": du(clone / ".venv"),
        "log": str(log),
    }
    if caches:
        result["cache_total_gib"] = round(sum(result["cache_bytes"].values()) / 2**30, 2)
    print(json.dumps(result, indent=2))
    if not args.keep:
        subprocess.run(["rm", "-rf", str(clone / ".venv"), str(work / "cache")], check=False)


if __name__ == "__main__":
    main()
