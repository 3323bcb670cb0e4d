"""WebSocket fan-out of the real web process beside a bare aiohttp + Redis pub/sub baseline.

    .venv/bin/python bench/ws_fanout.py [--sockets 1000 5000 20000] [--publishes 20]
        [--stream 1000] [--stream-sockets 1000]

For each server (the baseline is this same script run with ``--serve-bare``), in one run:
- fan-out latency: one publish to Redis -> the last of N sockets receiving it (p50/p99 over
  ``--publishes`` publishes), for each N of ``--sockets``;
- delivered messages per second with ``--stream-sockets`` sockets under a stream of publishes
  (kept at most ``--window`` messages ahead of the slowest socket, so that nobody counts as too
  slow);
- resident memory per idle socket (server RSS after connecting N idle sockets, minus before;
  bench/ws_memory.py measures it after a warm-up, and says where it goes).
The server is one process; the clients run in this one (on uvloop), so on two cores each has a
core of its own, and the server's own CPU seconds are printed too. 20,000 sockets need more file
descriptors than the usual limit: ``raise_fd_limit`` raises it (the hard limit too when running
as root). Everything goes to 127.0.0.1, bounded in count and time. Benchmarks print figures;
nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import redis.asyncio as aredis
from aiohttp import web

from bench.lib import (
    PYTHON,
    bench_env,
    figures_table,
    percentiles,
    prepare_database,
    rss_kib,
    server_process,
)

BARE_CHANNEL = "sbbench:bare"
# Under aiohttp's default accept backlog (128), which `python -m web` keeps.
CONNECT_CONCURRENCY = 64
CONNECT_ATTEMPTS = 3
UPGRADE_TIMEOUT = 20.0
STEP_TIMEOUT = 60.0


# -- the baseline server ------------------------------------------------------------------------

def bare_app() -> web.Application:
    """The simplest correct fan-out: one subscriber, every message sent to every socket in turn."""
    sockets: set[web.WebSocketResponse] = set()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        sockets.add(ws)
        await ws.send_str('{"event":"ready","data":{}}')
        try:
            async for _ in ws:
                pass
        finally:
            sockets.discard(ws)
        return ws

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def subscriber(app: web.Application):  # type: ignore[no-untyped-def]
        client = aredis.Redis.from_url(os.environ["REDIS_URL"])
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(BARE_CHANNEL)

        async def run() -> None:
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message:
                    text = message["data"].decode()
                    for ws in list(sockets):
                        with contextlib.suppress(ConnectionError):
                            await ws.send_str(text)

        task = asyncio.create_task(run())
        yield
        task.cancel()
        await pubsub.aclose()
        await client.aclose()

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/health", health)
    app.cleanup_ctx.append(subscriber)
    return app


def serve(app: web.Application, port: int) -> None:
    """Both servers the same way: uvloop, no access log, a backlog for connection bursts."""
    import uvloop

    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                loop=uvloop.new_event_loop(), backlog=1024)


# -- servers as subprocesses --------------------------------------------------------------------

@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    channel: str
    tokens: list[str] = field(default_factory=list)
    bare: bool = False

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def run_server(name: str, argv: list[str], env: dict[str, str], channel: str) -> Iterator[Server]:
    with server_process(argv, env=env) as (proc, port):
        yield Server(name, proc, port, channel)


def make_users(env: dict[str, str], count: int) -> list[str]:
    """``count`` users in the benchmark database and an access token for each."""
    import psycopg

    os.environ.update({k: env[k] for k in ("JWT_SECRET", "APP_ENV", "DATABASE_URL", "REDIS_URL",
                                           "REDIS_PREFIX", "FLOWER_BASIC_AUTH")})
    from common.config import load_settings
    from common.security.tokens import issue_access_token

    settings = load_settings()
    with psycopg.connect(settings.libpq_url, autocommit=True) as conn:
        rows = conn.execute(
            "INSERT INTO users (email, password_hash, name) SELECT 'ws' || g || '@bench.local', "
            "'-', 'Bench ' || g FROM generate_series(1, %s) g RETURNING id, email", (count,)
        ).fetchall()
    return [issue_access_token(settings, user_id=i, email=e, role="user") for i, e in rows]


# -- the clients --------------------------------------------------------------------------------

MARKER = b'"offer:new"'


class _Socket(asyncio.Protocol):
    """A WebSocket client reduced to what the measurement needs: the upgrade, then counting the
    published events in the bytes that arrive (each frame carries the marker once). Far cheaper
    per frame than a full client, so the figures say more about the server."""

    def __init__(self, owner: Clients, request: bytes) -> None:
        self.owner = owner
        self.request = request
        self.upgraded = asyncio.get_running_loop().create_future()
        self.head = b""
        self.tail = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            data = self.head[end + 4:]
            self.upgraded.set_result(self.head.startswith(b"HTTP/1.1 101"))
        count = (self.tail + data).count(MARKER)
        self.tail = data[-(len(MARKER) - 1):]
        if count:
            self.owner.received += count
            self.owner.last_arrival = time.perf_counter()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.closed += 1


class Clients:
    """N sockets on one server; they count what they receive and stamp the last arrival."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.sockets: list[_Socket] = []
        self.received = 0
        self.last_arrival = 0.0
        self.closed = 0

    async def connect(self, count: int) -> None:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        loop = asyncio.get_running_loop()

        async def one(n: int) -> None:
            path = "/ws"
            if self.server.tokens:
                path += f"?token={self.server.tokens[n % len(self.server.tokens)]}"
            request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode()
            async with gate:
                for _ in range(CONNECT_ATTEMPTS):
                    _, sock = await loop.create_connection(
                        lambda: _Socket(self, request), "127.0.0.1", self.server.port
                    )
                    try:
                        upgraded = await asyncio.wait_for(sock.upgraded, UPGRADE_TIMEOUT)
                    except TimeoutError:
                        # A busy server's accept queue overflowed and the kernel dropped this
                        # connection's last handshake packet: the client alone thinks it is open.
                        assert sock.transport is not None
                        sock.transport.abort()
                        self.closed -= 1  # not one the measurement counts
                        continue
                    if not upgraded:
                        raise RuntimeError(f"upgrade refused: {sock.head[:200]!r}")
                    self.sockets.append(sock)
                    return
                raise RuntimeError(f"no upgrade in {CONNECT_ATTEMPTS} attempts")

        start = len(self.sockets)
        await asyncio.gather(*(one(n) for n in range(start, start + count)))
        await asyncio.sleep(0.2)  # the ready frames

    async def close(self) -> None:
        for sock in self.sockets:
            if sock.transport is not None:
                sock.transport.close()
        self.sockets.clear()
        await asyncio.sleep(0.5)


def wire(seq: int, *, bare: bool) -> bytes:
    body = {"offer": {"id": seq, "title": "Bench offer", "payout": 1.25}, "category": "bench"}
    if bare:
        return orjson.dumps({"event": "offer:new", "data": body})
    return orjson.dumps({"id": 10**12 + seq, "target": "all", "targetId": None,
                         "event": "offer:new", "data": body, "traceId": None})


async def wait_until(check, timeout: float = STEP_TIMEOUT) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.001)
    return True


async def fan_out_latency(clients: Clients, redis: aredis.Redis, publishes: int,
                          seq: list[int]) -> tuple[float, float]:
    n = len(clients.sockets)
    samples = []
    for _ in range(publishes):
        seq[0] += 1
        target = clients.received + n
        started = time.perf_counter()
        await redis.publish(clients.server.channel, wire(seq[0], bare=clients.server.bare))
        if not await wait_until(lambda target=target: clients.received >= target):
            break
        samples.append((clients.last_arrival - started) * 1000)
        await asyncio.sleep(0.05)  # let both processes settle between samples
    return percentiles(samples)


async def stream(clients: Clients, redis: aredis.Redis, messages: int, window: int,
                 seconds: float, seq: list[int]) -> tuple[float, int, int]:
    """Delivered messages per second under a stream, at most ``window`` ahead of delivery."""
    n = len(clients.sockets)
    bare = clients.server.bare
    base = clients.received
    published = 0
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    while published < messages and time.monotonic() < deadline:
        if (clients.received - base) >= (published - window) * n:
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(10):
                    seq[0] += 1
                    pipe.publish(clients.server.channel, wire(seq[0], bare=bare))
                await pipe.execute()
            published += 10
        else:
            await asyncio.sleep(0.0005)
    await wait_until(lambda: clients.received - base >= published * n, timeout=30)
    delivered = clients.received - base
    took = max(clients.last_arrival - started, 1e-9)
    return delivered / took, delivered, clients.closed


async def measure(server: Server, args: argparse.Namespace) -> dict[str, str]:
    out: dict[str, str] = {}
    redis = aredis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    seq = [0]
    clients = Clients(server)
    rss_before = rss_kib(server.proc.pid)
    fds_before = open_fds(server.proc.pid)
    for count in sorted(args.sockets):
        await clients.connect(count - len(clients.sockets))
        await asyncio.sleep(1.0)  # idle: let the server settle before reading its RSS
        if count == max(args.sockets):
            per = (rss_kib(server.proc.pid) - rss_before) / count
            out["KiB per idle socket"] = f"{per:.1f}"
        p50, p99 = await fan_out_latency(clients, redis, args.publishes, seq)
        out[f"fan-out to {count} p50 ms"] = f"{p50:.1f}"
        out[f"fan-out to {count} p99 ms"] = f"{p99:.1f}"
    await clients.close()
    # The server lets go of the closed sockets (and their seats) at its own pace: connecting
    # more before it has would take it past its descriptor limit.
    if not await wait_until(lambda: open_fds(server.proc.pid) <= fds_before + FD_RESERVE):
        raise RuntimeError("the server kept the closed sockets' descriptors")
    clients = Clients(server)
    await clients.connect(args.stream_sockets)
    cpu = server.cpu_seconds()
    rate, delivered, closed = await stream(clients, redis, args.stream, args.window, args.seconds, seq)
    out[_STREAM_KEY] = f"{rate:,.0f}"
    used = server.cpu_seconds() - cpu
    out["server CPU s (stream)"] = f"{used:.2f}"
    out["server CPU us per delivery"] = f"{used / max(delivered, 1) * 1e6:.1f}"
    out["sockets closed (stream)"] = str(closed)
    await clients.close()
    await redis.aclose()
    return out


# Descriptors a server or the clients need besides the sockets: the listener, epoll, the
# database pool, and the Redis pool (one connection per concurrent seat taken, while connecting).
FD_RESERVE = 512


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_fd_limit(need: int) -> int:
    """At least ``need`` descriptors for this process and the servers it starts, if allowed: the
    hard limit is raised too where the process may (CAP_SYS_RESOURCE), else the soft one goes as
    far as the hard one. Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
        return need
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
        return min(need, hard)


def socket_counts(wanted: list[int], fd_limit: int) -> list[int]:
    """The socket counts one process can hold under ``fd_limit`` (each side holds every socket
    once: the server its end, the clients theirs), said aloud when one had to be lowered."""
    most = fd_limit - FD_RESERVE
    counts = sorted({min(n, most) for n in wanted})
    if max(wanted) > most:
        print(f"file descriptors: the limit is {fd_limit} (ulimit -Hn; raising it needs "
              f"CAP_SYS_RESOURCE), so {max(wanted)} sockets are measured as {most}", flush=True)
    return counts


_STREAM_KEY = "msgs/s under a stream"


def print_table(rows: dict[str, dict[str, str]], args: argparse.Namespace) -> None:
    figures_table(f"WebSocket fan-out (one web process; clients in another; stream to "
                  f"{args.stream_sockets} sockets)", rows)
    base, real = rows[BARE_ROW], rows[WEB_ROW]
    ratio = _num(real[_STREAM_KEY]) / max(_num(base[_STREAM_KEY]), 1)
    print(f"msgs/s vs baseline: {ratio:.0%} (target >= 70%); "
          f"per idle socket: {real['KiB per idle socket']} KiB (bare "
          f"{base['KiB per idle socket']})")
    for count in sorted(args.sockets):
        key = f"fan-out to {count} p99 ms"
        p99, bare = _num(real[key]), _num(base[key])
        print(f"p99 to {count}: {p99:.1f} ms, {p99 / max(bare, 1e-9):.2f}x bare {bare:.1f} ms "
              f"(target <= 1.2x and < 1000 ms)")


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-bare", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--sockets", type=int, nargs="+", default=[1000, 5000, 20_000])
    parser.add_argument("--publishes", type=int, default=20)
    parser.add_argument("--stream", type=int, default=1000, help="messages in the stream")
    parser.add_argument("--stream-sockets", type=int, default=1000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="cap on the stream's time")
    args = parser.parse_args()
    limit = raise_fd_limit(max(*args.sockets, args.stream_sockets) + FD_RESERVE)  # servers too
    args.sockets = socket_counts(args.sockets, limit)
    args.stream_sockets = socket_counts([args.stream_sockets], limit)[0]
    if args.serve_bare:
        serve(bare_app(), args.port)
        return
    # No pings during the run: the counting clients do not answer them.
    env = bench_env(WS_MAX_SOCKETS_PER_USER="10", WS_HEARTBEAT="600", LOG_LEVEL="ERROR")
    prepare_database(env)
    tokens = make_users(env, max(*args.sockets, args.stream_sockets))
    rows: dict[str, dict[str, str]] = {}
    with run_server("bare", [PYTHON, "bench/ws_fanout.py", "--serve-bare"], env, BARE_CHANNEL) as bare:
        bare.bare = True
        rows[BARE_ROW] = _run(measure(bare, args))
    events = f"{env['REDIS_PREFIX']}:events"  # common.redis.events_channel of the server's settings
    with run_server("web", [PYTHON, "-m", "web", "--host", "127.0.0.1"], env, events) as web:
        web.tokens = tokens
        rows[WEB_ROW] = _run(measure(web, args))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print_table(rows, args)


BARE_ROW, WEB_ROW = "bare aiohttp + pub/sub", "savebucks /ws"


def _run(main: Coroutine[Any, Any, dict[str, str]]) -> dict[str, str]:
    """The clients on uvloop, like the servers: a Python client must not be the bottleneck."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)

if __name__ == "__main__":
    main()
