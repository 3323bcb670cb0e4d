"""What must hold for a member whatever instance each of their requests and sockets reaches: two
web instances of one cluster (``tests/fixtures/cluster.py``), sockets opened on each instance
directly and through nginx."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.cluster.harness import MAX_SOCKETS_PER_USER, Cluster
from tests.cluster.load import (
    CLIENT_TIMEOUT,
    Load,
    Socket,
    close_sockets,
    make_members,
    open_sockets,
    poll,
    user_event_ids,
)

pytestmark = pytest.mark.cluster


def _ws(cluster: Cluster, i: int) -> str:
    return cluster.web_base(i).replace("http", "ws", 1) + "/ws"


async def test_an_event_reaches_the_members_sockets_on_both_instances(healthy_cluster: Cluster) -> None:
    (member,) = make_members(healthy_cluster, 1, funds="50")
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
        sockets: list[Socket] = []
        tasks = []
        for url in (_ws(healthy_cluster, 0), _ws(healthy_cluster, 1), healthy_cluster.ws_url):
            opened, running = await open_sockets(session, url, [member])
            sockets += opened
            tasks += running
        try:
            # A withdrawal: accepted by one instance, paid by a worker; its payment:status
            # events go out from both processes.
            assert await Load(healthy_cluster.base, [member]).withdraw(session, member) == 202

            def everywhere() -> bool:
                expected = user_event_ids(healthy_cluster, [member.id])[member.id]
                return len(expected) >= 2 and all(set(s.ids) == expected for s in sockets)

            await poll(everywhere, 15, "the credit's events on every socket")
        finally:
            await close_sockets(sockets, tasks)


async def test_a_ban_on_one_instance_closes_the_members_sockets_on_the_other(healthy_cluster: Cluster) -> None:
    (admin,) = make_members(healthy_cluster, 1, role="admin")
    (member,) = make_members(healthy_cluster, 1)
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
        sockets = [Socket(_ws(healthy_cluster, i), member, reconnect=False) for i in (0, 1)]
        tasks = [asyncio.create_task(s.run(session)) for s in sockets]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in sockets)), 15)
            resp = await session.put(f"{healthy_cluster.web_base(0)}/api/admin/users/{member.id}/status",
                                     json={"status": "banned"}, headers=admin.auth)
            assert resp.status == 200, await resp.text()
            await asyncio.wait_for(asyncio.gather(*tasks), 15)
            assert [dict(s.closes) for s in sockets] == [{4403: 1}, {4403: 1}]
        finally:
            await close_sockets(sockets, tasks)


async def test_a_rate_limit_holds_across_instances(healthy_cluster: Cluster) -> None:
    # One client address (as nginx forwards it) signing in on both instances in turn: the login
    # limit (10 a minute per address) counts both instances' attempts together.
    headers = {"X-Forwarded-For": "203.0.113.77"}
    statuses = []
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
        for attempt in range(12):
            base = healthy_cluster.web_base(attempt % 2)
            # A new address each time: the per-email limit (5 a minute) stays out of the way.
            body = {"email": f"nobody{attempt}@cluster.example", "password": "wrong-password-1"}
            async with session.post(base + "/api/auth/login", json=body, headers=headers) as resp:
                statuses.append(resp.status)
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]


async def test_the_socket_cap_counts_a_members_sockets_on_every_instance(healthy_cluster: Cluster) -> None:
    (member,) = make_members(healthy_cluster, 1)
    half = MAX_SOCKETS_PER_USER // 2
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
        held: list[Socket] = []
        tasks = []
        for i in (0, 1):
            opened, running = await open_sockets(session, _ws(healthy_cluster, i), [member], half)
            held += opened
            tasks += running
        extra = [Socket(url, member, reconnect=False)
                 for url in (_ws(healthy_cluster, 0), _ws(healthy_cluster, 1), healthy_cluster.ws_url)]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.run(session) for s in extra)), 15)
            assert [dict(s.closes) for s in extra] == [{4429: 1}] * 3
            assert all(s.connects == 1 and not s.closes for s in held)
        finally:
            await close_sockets(held, tasks)
