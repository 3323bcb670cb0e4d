"""GET /health of the real web process beside a bare aiohttp JSON handler, in one run: the
readiness check as load balancers call it (each dependency probed at most once per
HEALTH_CACHE_SECONDS, 1 s), the same with every call probing (0), and the liveness check.

    .venv/bin/python bench/health.py [--seconds 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lib import PYTHON, bench_env, load, prepare_database, server, table, web_server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    env = bench_env()
    prepare_database(env)
    results = []
    with server([PYTHON, "bench/bare.py", "--mode", "json"], env=env) as bare:
        results.append(load("bare aiohttp JSON", f"{bare}/bare", seconds=args.seconds,
                            connections=args.connections))
    with web_server(env) as web:
        results.append(load("GET /health/live (no dependency)", f"{web}/health/live",
                            seconds=args.seconds, connections=args.connections))
        results.append(load("GET /health (probes shared, 1 s)", f"{web}/health",
                            seconds=args.seconds, connections=args.connections))
    with web_server({**env, "HEALTH_CACHE_SECONDS": "0"}) as web:
        results.append(load("GET /health (every call probes)", f"{web}/health",
                            seconds=args.seconds, connections=args.connections))
    table(f"/health, {args.connections} connections, {args.seconds}s each", results,
          baseline="bare aiohttp JSON")


if __name__ == "__main__":
    main()
