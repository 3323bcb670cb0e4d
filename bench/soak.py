"""Soak: the whole cluster (tests/cluster/harness.py) under a steady load for a long time, watching
for what only time shows: memory or file descriptors that keep growing, connections that leak,
latency that creeps up.

    .venv/bin/python bench/soak.py                 # 20 minutes, 2,000 sockets
    .venv/bin/python bench/soak.py --minutes 3
    .venv/bin/python bench/soak.py --seconds 20 --sockets 200   # the CI smoke (tests/cluster)

The load, all through nginx: ``--sockets`` WebSocket clients spread over both web instances (two
per member; each reconnects and resumes by id if cut), postbacks and withdrawals in a steady
loop, and chat in the public room. Every ``--sample`` seconds it records each process's RSS and
open file descriptors (a worker with its pool children), PostgreSQL's connections and Redis's
memory; at the end it prints them at start and end with their slope per minute, the errors, and
the p99 of the HTTP answers per minute. Everything is bounded: the run by its duration, each
request by the client timeout, the setup and the stop by the harness's own limits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson
import redis
from sqlalchemy import text

from tests.cluster.harness import Cluster, Service, raise_fd_limit, running_cluster
from tests.cluster.load import CLIENT_TIMEOUT, Load, Member, Socket, close_sockets, make_members

SOCKETS_PER_MEMBER = 2
CHATTERS = 8
CHAT_EVERY = 1.5  # seconds per chatter (RATE_LIMIT_CHAT allows 10 per 10 s per member)
OPEN_BATCH = 100


@dataclass
class Sample:
    at: float
    rss_mb: dict[str, float]
    fds: dict[str, int]
    pg_connections: int
    redis_mb: float


@dataclass
class Chat:
    sent: int = 0
    received: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def _group(service: Service) -> list[int]:
    """The service's process and its children (a worker's pool, nginx's worker)."""
    pids = [service.pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == service.pid:  # ppid
                pids.append(int(entry.name))
    return pids


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def sample(cluster: Cluster) -> Sample:
    rss: dict[str, float] = {}
    fds: dict[str, int] = {}
    for service in (*cluster.web, *cluster.worker, cluster.beat, cluster.nginx):
        pids = _group(service) if service.alive else []
        rss[service.name] = round(sum(_rss_mb(p) for p in pids), 1)
        fds[service.name] = sum(_fds(p) for p in pids)
    with cluster.engine().connect() as conn:
        connections = int(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")).scalar_one())
    client = redis.Redis.from_url(cluster.redis.url(0))
    try:
        memory = int(client.info("memory")["used_memory"]) / 1024 / 1024
    finally:
        client.close()
    return Sample(time.monotonic(), rss, fds, connections, round(memory, 2))


async def chat_loop(session: aiohttp.ClientSession, url: str, member: Member, chat: Chat,
                    stop: asyncio.Event) -> None:
    """One member in the public room, sending every CHAT_EVERY seconds until ``stop``."""
    async with session.ws_connect(url, params={"token": member.token}) as ws:
        await ws.send_str(orjson.dumps({"event": "chat:join", "data": {"roomId": 1}}).decode())

        async def read() -> None:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                frame = orjson.loads(msg.data)
                if frame["event"] == "chat:message":
                    chat.received += 1
                elif frame["event"] == "error":
                    chat.errors[frame["data"].get("code", "error")] += 1

        reader = asyncio.create_task(read())
        n = 0
        while not stop.is_set():
            n += 1
            await ws.send_str(orjson.dumps({"event": "chat:send", "data": {
                "roomId": 1, "content": f"soak {member.id} {n}"}}).decode())
            chat.sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHAT_EVERY)
        reader.cancel()


async def soak(cluster: Cluster, *, seconds: float, sockets: int, sample_every: float = 10.0,
               out: Any = print) -> dict[str, Any]:
    """Run the soak on a started cluster; returns the figures (and prints the report)."""
    limit = raise_fd_limit(sockets * 2 + 2048)
    members = make_members(cluster, max(1, sockets // SOCKETS_PER_MEMBER) + CHATTERS, funds="100000")
    chatters, members = members[:CHATTERS], members[CHATTERS:]
    out(f"soak: {sockets} sockets for {len(members)} members, {seconds:.0f} s, open-files limit {limit}")
    load = Load(cluster.base, members, pause=0.05)
    chat, stop = Chat(), asyncio.Event()
    samples: list[Sample] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT, connector=connector) as session:
        opened = time.monotonic()
        all_sockets: list[Socket] = []
        tasks: list[asyncio.Task[None]] = []
        for start in range(0, len(members), OPEN_BATCH // SOCKETS_PER_MEMBER):
            batch = [Socket(cluster.ws_url, m) for m in members[start:start + OPEN_BATCH // SOCKETS_PER_MEMBER]
                     for _ in range(SOCKETS_PER_MEMBER)]
            tasks += [asyncio.create_task(s.run(session)) for s in batch]
            all_sockets += batch
            await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in batch)), 60)
        out(f"soak: {len(all_sockets)} sockets ready in {time.monotonic() - opened:.1f} s")
        samples.append(await asyncio.to_thread(sample, cluster))
        runner = asyncio.create_task(load.run(postbackers=2, withdrawers=1))
        chats = [asyncio.create_task(chat_loop(session, cluster.ws_url, m, chat, stop)) for m in chatters]
        began = time.monotonic()
        try:
            while time.monotonic() - began < seconds:
                await asyncio.sleep(min(sample_every, max(0.0, seconds - (time.monotonic() - began))))
                samples.append(await asyncio.to_thread(sample, cluster))
        finally:
            load.stop()
            stop.set()
            await asyncio.wait_for(asyncio.gather(runner, *chats, return_exceptions=True), 60)
        alive = sum(1 for s in all_sockets if s.ready.is_set())
        await close_sockets(all_sockets, tasks)
    figures = _figures(load, all_sockets, alive, chat, samples, began)
    check = cluster.savebucks("check-ledger")
    figures["ledger"] = (check.stdout + check.stderr).strip()
    figures["ledger_ok"] = check.returncode == 0
    _print(figures, out)
    return figures


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope per minute."""
    if len(points) < 2:
        return 0.0
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else 60 * sum((x - mx) * (y - my) for x, y in points) / den


def _figures(load: Load, sockets: list[Socket], alive: int, chat: Chat, samples: list[Sample],
             began: float) -> dict[str, Any]:
    series: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        t = s.at - samples[0].at
        for name, value in s.rss_mb.items():
            series.setdefault(f"rss_mb {name}", []).append((t, value))
        for name, count in s.fds.items():
            series.setdefault(f"fds {name}", []).append((t, count))
        series.setdefault("pg_connections", []).append((t, s.pg_connections))
        series.setdefault("redis_mb", []).append((t, s.redis_mb))
    trend = {name: (points[0][1], points[-1][1], round(_slope(points), 3))
             for name, points in series.items()}
    per_minute: dict[int, list[float]] = {}
    for ended, seconds in load.answers.times:
        if ended >= began:
            per_minute.setdefault(int((ended - began) // 60), []).append(seconds)
    p99 = {minute: round(sorted(v)[min(len(v) - 1, int(len(v) * 0.99))] * 1000, 1)
           for minute, v in sorted(per_minute.items())}
    closes: Counter[int] = Counter()
    socket_errors: Counter[str] = Counter()
    for s in sockets:
        closes.update(s.closes)
        socket_errors.update(s.errors)
    return {
        "statuses": {route: dict(c) for route, c in load.answers.statuses.items()},
        "errors": load.answers.count(lambda status: status == 0 or status >= 500),
        "sockets": len(sockets), "sockets_alive_at_end": alive,
        "socket_closes": dict(closes), "socket_errors": dict(socket_errors),
        "events_received": sum(len(s.ids) for s in sockets),
        "chat": {"sent": chat.sent, "received": chat.received, "errors": dict(chat.errors)},
        "trend": trend, "p99_ms_per_minute": p99,
    }


def _print(figures: dict[str, Any], out: Any) -> None:
    out(f"answers: {figures['statuses']}; errors (no answer or 5xx): {figures['errors']}")
    out(f"sockets: {figures['sockets']}, alive at end {figures['sockets_alive_at_end']}, "
        f"closes {figures['socket_closes']}, errors {figures['socket_errors']}, "
        f"events received {figures['events_received']}; chat {figures['chat']}")
    out(f"{'figure':<22}{'start':>10}{'end':>10}{'slope/min':>12}")
    for name, (first, last, slope) in figures["trend"].items():
        out(f"{name:<22}{first:>10}{last:>10}{slope:>12}")
    out(f"p99 ms per minute: {figures['p99_ms_per_minute']}")
    out(f"ledger: {figures['ledger']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=None, help="overrides --minutes")
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    raise_fd_limit(args.sockets * 2 + 2048)  # before the cluster starts: its processes inherit it
    with running_cluster() as cluster:
        asyncio.run(soak(cluster, seconds=seconds, sockets=args.sockets, sample_every=args.sample))


if __name__ == "__main__":
    main()
