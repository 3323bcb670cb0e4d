"""Fault drills on a running cluster: a load through nginx (postbacks and withdrawals, WebSocket
clients spread over both instances by the balancer), a fault in the middle, then the load stops
and the drill waits for the cluster to settle and checks what it must:

- no answer was a 500 (a 503 in the envelope while a dependency is down is right);
- every withdrawal a client got 202 for exists once, however often its key was sent, and was
  paid (money moved once: ``savebucks check-ledger`` finds every balance equal to its ledger);
- every event the outbox holds for a member reached every one of the member's sockets, which
  reconnected through nginx and resumed from their last event id.

The same drills run short in CI (``tests/cluster/test_drills.py``) and long with figures
(``bench/cluster_drills.py``).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy import text

from tests.cluster.harness import Cluster, Service
from tests.cluster.load import (
    CLIENT_TIMEOUT,
    Answers,
    Load,
    Member,
    Socket,
    close_sockets,
    make_members,
    open_sockets,
    user_event_ids,
)

Fault = Callable[["Drill"], Awaitable[None]]
SETTLE_TIMEOUT = 45.0


@dataclass
class Drill:
    cluster: Cluster
    outage: float = 2.0  # seconds a stopped piece stays stopped
    load_after: float = 2.0  # seconds of load once the fault is over
    members: list[Member] = field(default_factory=list)
    sockets: list[Socket] = field(default_factory=list)
    load: Load | None = None
    # What the fault saw: /health bodies during the outage, timings, anything worth printing.
    notes: dict[str, Any] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    last_event: int = 0

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    async def run(self, fault: Fault, *, members: int = 6, sockets_per_member: int = 2,
                  warmup: float = 1.0) -> Report:
        self.members = make_members(self.cluster, members, funds="10000")
        self.load = Load(self.cluster.base, self.members)
        async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
            self.sockets, socket_tasks = await open_sockets(
                session, self.cluster.ws_url, self.members, sockets_per_member)
            runner = asyncio.create_task(self.load.run())
            try:
                await asyncio.sleep(warmup)
                self.mark("fault")
                await fault(self)
                self.mark("over")
                await asyncio.sleep(self.load_after)
            finally:
                self.load.stop()
                await asyncio.wait_for(runner, 90)
            try:
                await self._settle()
            finally:
                await close_sockets(self.sockets, socket_tasks)
        return self.report()

    async def _settle(self) -> None:
        """Until every accepted withdrawal is paid and every member event reached every socket
        of its member (or SETTLE_TIMEOUT: the report then says what is missing)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            if not self.unpaid() and not self.missing_events():
                break
            await asyncio.sleep(0.5)
        self.mark("settled")
        # Events committed later (the beat approving credits goes on) are not the drill's.
        self.last_event = max((max(s.ids, default=0) for s in self.sockets), default=0)

    def payments(self) -> Counter[str]:
        ids = [m.id for m in self.members]
        with self.cluster.engine().connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM payments WHERE user_id = ANY(:ids) "
                                     "GROUP BY status"), {"ids": ids}).all()
        return Counter({status: n for status, n in rows})

    def unpaid(self) -> int:
        return sum(n for status, n in self.payments().items() if status != "paid")

    def missing_events(self) -> int:
        expected = user_event_ids(self.cluster, [m.id for m in self.members])
        upto = self.last_event or float("inf")
        return sum(len({i for i in expected[s.member.id] if i <= upto} - set(s.ids))
                   for s in self.sockets)

    def delayed_events(self, seconds: float = 1.0) -> int:
        """Member events published more than ``seconds`` after they were committed."""
        ids = [m.id for m in self.members]
        with self.cluster.engine().connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM outbox WHERE target = 'user' AND target_id = ANY(:ids) "
                "AND published_at - created_at > make_interval(secs => :s)"),
                {"ids": ids, "s": seconds}).scalar_one())

    def report(self) -> Report:
        assert self.load is not None
        accepted = sum(1 for status in self.load.withdrawals.values() if status == 202)
        reconnects = [t for s in self.sockets for t in s.reconnects]
        check = self.cluster.savebucks("check-ledger")
        return Report(
            answers=self.load.answers, accepted=accepted, payments=self.payments(),
            missing_events=self.missing_events(), delayed_events=self.delayed_events(),
            events=sum(len(set(s.ids)) for s in self.sockets),
            repeated=sum(s.repeats for s in self.sockets),
            reconnects=reconnects, ledger_ok=check.returncode == 0,
            ledger_output=(check.stdout + check.stderr).strip(), notes=self.notes,
            settle_seconds=self.marks["settled"] - self.marks["over"])


@dataclass
class Report:
    answers: Answers
    accepted: int
    payments: Counter[str]
    missing_events: int
    delayed_events: int
    events: int
    repeated: int  # events a resume sent again, dropped by id
    reconnects: list[float]
    ledger_ok: bool
    ledger_output: str
    notes: dict[str, Any]
    settle_seconds: float

    @property
    def server_errors(self) -> int:
        """Answers the app itself failed (5xx but 503, and but nginx's 502/504 for an instance
        that is gone)."""
        return self.answers.count(lambda s: s >= 500 and s not in (502, 503, 504))

    @property
    def gateway_errors(self) -> int:
        """nginx's 502/504: a request in flight on an instance that died (its client retries)."""
        return self.answers.count(lambda s: s in (502, 504))

    @property
    def unavailable(self) -> int:
        return self.answers.count(lambda s: s == 503)

    def figures(self) -> str:
        statuses = {route: dict(c) for route, c in self.answers.statuses.items()}
        reconnect = (f"{len(self.reconnects)} reconnects, median {statistics.median(self.reconnects):.2f}s "
                     f"max {max(self.reconnects):.2f}s" if self.reconnects else "no reconnects")
        return (f"answers {statuses}; 503s {self.unavailable}, 502/504s {self.gateway_errors}, "
                f"other 5xx {self.server_errors}; "
                f"withdrawals accepted {self.accepted}, payments {dict(self.payments)}; "
                f"{reconnect}; events delivered {self.events}, delayed >1s {self.delayed_events}, "
                f"missing {self.missing_events}, repeated on resume {self.repeated}; settled in {self.settle_seconds:.1f}s; "
                f"ledger: {self.ledger_output}; {self.notes}")

    def assert_sound(self, *, instance_lost: bool = False) -> None:
        """What every drill must end with; nginx answers 502 only when an instance died."""
        assert self.server_errors == 0, self.figures()
        assert instance_lost or self.gateway_errors == 0, self.figures()
        assert self.accepted > 0, self.figures()
        assert sum(self.payments.values()) == self.accepted, self.figures()  # none twice, none lost
        assert set(self.payments) == {"paid"}, self.figures()
        assert self.missing_events == 0, self.figures()
        assert self.ledger_ok, self.figures()


def health(cluster: Cluster, i: int) -> tuple[int, dict[str, Any]]:
    """One instance's ``GET /health``: status and the failing checks' names."""
    import json

    try:
        with urllib.request.urlopen(cluster.web_base(i) + "/health", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def failing_checks(body: dict[str, Any]) -> list[str]:
    return sorted(name for name, check in body.get("checks", {}).items() if check["status"] != "ok")


async def restart(drill: Drill, *pieces: Any, kill: bool = False) -> None:
    """Stop (or SIGKILL) ``pieces`` in order, keep them down ``drill.outage`` seconds while noting
    what /health says, then start them again in reverse order."""
    for piece in pieces:
        await asyncio.to_thread(piece.kill if kill else piece.stop)
    drill.mark("down")
    await asyncio.sleep(drill.outage / 2)
    drill.notes["health_during"] = [
        (status, failing_checks(body))
        for status, body in await asyncio.gather(*(asyncio.to_thread(health, drill.cluster, i)
                                                   for i in range(len(drill.cluster.web))))]
    await asyncio.sleep(drill.outage / 2)
    for piece in reversed(pieces):
        await asyncio.to_thread(piece.start)
    drill.mark("up")


# The faults ----------------------------------------------------------------------------------


async def bounce(drill: Drill, service: Service, *, kill: bool) -> None:
    """``service`` SIGKILLed (``kill``) or stopped with its stop signal, down ``drill.outage``
    seconds, started again."""
    await asyncio.to_thread(service.kill if kill else service.stop)
    drill.mark("down")
    await asyncio.sleep(drill.outage)
    await asyncio.to_thread(service.start)
    drill.mark("up")


async def kill_web(drill: Drill) -> None:
    """SIGKILL web instance 0: its sockets and the requests in flight are cut."""
    await bounce(drill, drill.cluster.web[0], kill=True)


async def restart_web(drill: Drill) -> None:
    """A rolling restart of web instance 0: SIGTERM (its sockets closed with 1001)."""
    await bounce(drill, drill.cluster.web[0], kill=False)


async def restart_database(drill: Drill) -> None:
    """PostgreSQL stopped (fast shutdown) and PgBouncer with it, both started again."""
    await restart(drill, drill.cluster.bouncer, drill.cluster.pg)


async def restart_redis(drill: Drill) -> None:
    await restart(drill, drill.cluster.redis)


async def restart_rabbitmq(drill: Drill) -> None:
    """RabbitMQ stopped with tasks waiting in its queues: the workers are killed first,
    withdrawals accepted meanwhile leave their payout tasks queued, then the broker
    restarts, then the workers; every one of those tasks must run, once."""
    cluster = drill.cluster
    assert drill.load is not None
    for worker in cluster.worker:
        await asyncio.to_thread(worker.kill)  # what they held goes back to the queue (acks late)
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
        queued = await asyncio.gather(*(drill.load.withdraw(session, m) for m in drill.members))
    drill.notes["queued_before_restart"] = queued.count(202)
    await restart(drill, cluster.rabbit)
    await asyncio.gather(*(asyncio.to_thread(w.start, 90) for w in cluster.worker))
    # A withdrawal accepted while the broker was down could not enqueue its payout: the beat's
    # payouts.recover (every minute) enqueues it again. Sent here now, as the next run would.
    await asyncio.to_thread(_send, cluster, "payouts.recover", older_than=0)


def _send(cluster: Cluster, task: str, **kwargs: Any) -> None:
    from common.config import load_settings
    from common.taskqueue import make_celery

    app = make_celery(load_settings(cluster.env()))
    try:
        app.send_task(task, kwargs=kwargs)
    finally:
        app.close()


async def kill_beat(drill: Drill) -> None:
    await bounce(drill, drill.cluster.beat, kill=True)


_RECEIVED = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Task ([\w.]+)\[")


def task_runs(workers: list[Service], name: str) -> list[float]:
    """When the workers first received each run of task ``name`` (epoch seconds), from their
    logs; a retry of a run (the same task id) is the same run."""
    import datetime as dt

    found: dict[str, float] = {}
    for worker in workers:
        for line in worker.log.read_text(errors="replace").splitlines():
            match = _RECEIVED.match(line)
            if match and match.group(2) == name and line.rstrip().endswith("received"):
                stamp = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
                task_id = line.split("[", 2)[2].split("]", 1)[0]
                found.setdefault(task_id, stamp.replace(tzinfo=dt.UTC).timestamp())
    return sorted(found.values())
