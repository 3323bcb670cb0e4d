"""Memory per idle WebSocket of the real web process beside a bare aiohttp WebSocket server.

    .venv/bin/python bench/ws_memory.py [--sockets 5000] [--warm 200] [--runs 1] [--trace]

For each server: connect ``--warm`` sockets (the one-time costs: pools, caches, code paths seen
for the first time), read the server's RSS, connect ``--sockets`` more idle authenticated
sockets, wait for the server to settle, read it again. The table shows the marginal KiB per socket
(the second reading minus the first, over ``--sockets``) and, as bench/ws_fanout.py measures it,
from before the first socket (which includes the warm-up). Heartbeats are on (``WS_HEARTBEAT``
600 s, so that the clients, which never answer a ping, are not dropped during the run).

``--trace`` runs the web process under tracemalloc and prints where the sockets' memory is held,
grouped by the allocating line (the snapshot after the warm-up subtracted from the one after all
sockets), to find what to cut. Tracing slows the server; its RSS is not reported then.
Clients run in this process, the servers in their own. Everything goes to 127.0.0.1, bounded in
count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lib import (
    PYTHON,
    bench_env,
    figures_table,
    prepare_database,
    rss_kib,
    server_process,
)
from bench.ws_fanout import (
    BARE_CHANNEL,
    FD_RESERVE,
    Clients,
    Server,
    make_users,
    raise_fd_limit,
)

SETTLE_SECONDS = 1.0
TRACE_FRAMES = 6
# Starting under tracemalloc takes a while on a busy machine.
TRACED_START_TIMEOUT = 180.0
TRACE_TOP = 60


def serve_traced(kind: str, port: int) -> None:
    """A server (``web``: the SaveBucks app; ``bare``: the baseline) under tracemalloc, with
    ``/_bench/snapshot?name=`` (take a snapshot) and ``/_bench/diff?before=&after=&count=`` (the top
    allocations between two, per socket, as text). Bench only."""
    import tracemalloc

    tracemalloc.start(TRACE_FRAMES)
    from aiohttp import web

    from bench.ws_fanout import bare_app, serve

    if kind == "bare":
        app = bare_app()
    else:
        from common.config import load_settings
        from common.logs import configure_logging
        from web.app import create_app

        settings = load_settings()
        configure_logging(settings.log_level, json=settings.log_json)
        app = create_app(settings)
    snapshots: dict[str, tracemalloc.Snapshot] = {}

    async def snapshot(request: web.Request) -> web.Response:
        import gc

        gc.collect()
        snapshots[request.query["name"]] = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        return web.Response(text="ok")

    async def diff(request: web.Request) -> web.Response:
        before, after = snapshots[request.query["before"]], snapshots[request.query["after"]]
        count = int(request.query.get("count", "1"))
        stats = after.compare_to(before, "traceback" if "where" in request.query else "lineno")
        total = sum(s.size_diff for s in stats)
        lines = [f"{kind}: total {total / count:.0f} B per socket over {count} sockets"]
        for stat in stats[:TRACE_TOP]:
            # A traceback lists its frames oldest first: the allocating line is the last.
            frame, *callers = reversed(stat.traceback)
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            lines.append(f"{stat.size_diff / count:8.0f} B  {stat.count_diff / count:6.2f} blocks  "
                         f"{where}  {_source(frame.filename, frame.lineno)}")
            if request.query.get("where", "-") in where:  # the callers of the lines asked about
                lines += [f"           from {Path(f.filename).name}:{f.lineno}" for f in callers]
        return web.Response(text="\n".join(lines))

    app.router.add_get("/_bench/snapshot", snapshot)
    app.router.add_get("/_bench/diff", diff)
    serve(app, port)


def _source(filename: str, lineno: int) -> str:
    import linecache

    return linecache.getline(filename, lineno).strip()[:90]


def _get(server: Server, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=120) as resp:
        return str(resp.read().decode())


async def measure(server: Server, warm: int, sockets: int, *, trace: bool,
                  where: str = "") -> tuple[float, float]:
    """(marginal KiB per socket, KiB per socket from before the first one)."""
    where = f"&where={where}" if where else ""
    clients = Clients(server)
    try:
        start = rss_kib(server.proc.pid)
        await clients.connect(warm)
        await asyncio.sleep(SETTLE_SECONDS)
        if trace:
            await asyncio.to_thread(_get, server, "/_bench/snapshot?name=warm")
        warm_rss = rss_kib(server.proc.pid)
        await clients.connect(sockets)
        await asyncio.sleep(SETTLE_SECONDS)
        if trace:
            await asyncio.to_thread(_get, server, "/_bench/snapshot?name=all")
            print(await asyncio.to_thread(
                _get, server, f"/_bench/diff?before=warm&after=all&count={sockets}{where}"))
        end = rss_kib(server.proc.pid)
        open_sockets = len(clients.sockets) - clients.closed
        if open_sockets != warm + sockets:
            raise RuntimeError(f"{warm + sockets - open_sockets} sockets closed during the run")
        return (end - warm_rss) / sockets, (end - start) / (warm + sockets)
    finally:
        await clients.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-traced", choices=["web", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int)
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1, help="runs per server (median shown)")
    parser.add_argument("--trace", action="store_true", help="where the memory goes (slow)")
    parser.add_argument("--where", default="",
                        help="with --trace: group by traceback, callers of lines in this file")
    args = parser.parse_args()
    raise_fd_limit(args.sockets + args.warm + FD_RESERVE)  # inherited by the servers
    if args.serve_traced:
        serve_traced(args.serve_traced, args.port)
        return
    env = bench_env(WS_MAX_SOCKETS_PER_USER="10", WS_HEARTBEAT="600", LOG_LEVEL="ERROR")
    prepare_database(env)
    total = args.sockets + args.warm
    tokens = make_users(env, total)
    servers = {
        "bare aiohttp WebSocket": ([PYTHON, "bench/ws_fanout.py", "--serve-bare"], BARE_CHANNEL, []),
        "savebucks /ws": ([PYTHON, "-m", "web", "--host", "127.0.0.1"], "-", tokens),
    }
    if args.trace:
        traced = [PYTHON, "bench/ws_memory.py", "--serve-traced"]
        servers = {"bare (traced)": ([*traced, "bare"], BARE_CHANNEL, []),
                   "savebucks /ws (traced)": ([*traced, "web"], "-", tokens)}
    rows: dict[str, dict[str, str]] = {}
    for name, (argv, channel, server_tokens) in servers.items():
        marginal, overall = [], []
        for _ in range(max(1, args.runs)):
            timeout = TRACED_START_TIMEOUT if args.trace else 30.0
            with server_process(argv, env=env, timeout=timeout) as (proc, port):
                server = Server(name, proc, port, channel, tokens=server_tokens)
                m, o = asyncio.run(measure(server, args.warm, args.sockets, trace=args.trace,
                                          where=args.where))
                marginal.append(m)
                overall.append(o)
        rows[name] = {
            "KiB per idle socket": f"{statistics.median(marginal):.1f}",
            "KiB per socket incl. warm-up": f"{statistics.median(overall):.1f}",
            "runs (KiB per idle socket)": " / ".join(f"{m:.1f}" for m in marginal),
        }
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    figures_table(f"Memory per idle WebSocket, {args.sockets} sockets after {args.warm} warm-up, "
                  f"server RSS (median of {max(1, args.runs)})", rows)


if __name__ == "__main__":
    main()
