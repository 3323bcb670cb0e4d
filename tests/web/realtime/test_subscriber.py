"""The web process's one Redis subscriber (web.pubsub): one connection serves every consumer,
routed by channel, and a connection Redis drops is made again with every channel subscribed."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aredis
from sqlalchemy import update

from common.events import emit
from common.models import User
from common.redis import events_channel
from tests.web.realtime.conftest import DEADLINE, close_code, connect, eventually
from web.keys import ACCOUNT_GATE, HUB, SUBSCRIBER
from web.pubsub import Subscriber


class Recorder:
    def __init__(self) -> None:
        self.heard: list[str] = []
        self.messages: list[bytes] = []

    def on_subscribed(self) -> None:
        self.heard.append("subscribed")

    def on_message(self, data: bytes) -> None:
        self.messages.append(data)

    def on_lost(self) -> None:
        self.heard.append("lost")


def _connections(redis_sync: redis.Redis, name: str) -> list[dict[str, str]]:
    return [c for c in redis_sync.client_list(_type="pubsub") if c.get("name", "").startswith(name)]


async def test_one_connection_routes_by_channel_and_resubscribes_after_a_drop(settings, redis_sync) -> None:  # type: ignore[no-untyped-def]
    name = f"{settings.redis_prefix}:subscriber-test"
    one, two = f"{settings.redis_prefix}:one", f"{settings.redis_prefix}:two"
    subscriber = Subscriber(aredis.Redis.from_url(settings.redis_url, client_name=name))
    first, second, other = Recorder(), Recorder(), Recorder()
    subscriber.follow(one, first)
    subscriber.follow(one, second)
    subscriber.follow(two, other)
    subscriber.start()
    try:
        await asyncio.wait_for(subscriber.subscribed.wait(), DEADLINE)
        assert redis_sync.pubsub_numsub(one, two) == [(one.encode(), 1), (two.encode(), 1)]
        [connection] = _connections(redis_sync, name)
        redis_sync.publish(one, b"to one")
        redis_sync.publish(two, b"to two")
        await eventually(lambda: other.messages == [b"to two"]
                         and first.messages == second.messages == [b"to one"])

        assert redis_sync.client_kill_filter(_id=connection["id"]) == 1
        everyone = (first, second, other)
        await eventually(lambda: all(r.heard == ["subscribed", "lost", "subscribed"] for r in everyone))
        assert subscriber.reconnects == 1 and subscriber.subscribed.is_set()
        assert len(_connections(redis_sync, name)) == 1
        redis_sync.publish(one, b"again")
        redis_sync.publish(two, b"again")
        await eventually(lambda: all(r.messages[-1] == b"again" for r in everyone))
    finally:
        await subscriber.stop()
        await subscriber.close()
    assert not subscriber.running and not subscriber.subscribed.is_set()
    assert all(r.heard[-1] == "lost" for r in everyone)


async def test_the_hub_and_the_account_gate_share_the_apps_subscription(  # type: ignore[no-untyped-def]
    app_client, someone, sync_ctx, settings, redis_sync
) -> None:
    app = app_client.app
    gate, subscriber = app[ACCOUNT_GATE], app[SUBSCRIBER]
    await eventually(lambda: gate.ready)
    channel = events_channel(settings)
    assert redis_sync.pubsub_numsub(channel) == [(channel.encode(), 1)]
    assert subscriber.routes[channel] == [gate, app[HUB]]

    # Redis drops the connection: the one subscription is made again, and the gate reloads.
    [connection] = _connections(redis_sync, f"{settings.redis_prefix}:ws-hub:")
    assert redis_sync.client_kill_filter(_id=connection["id"]) == 1
    await eventually(lambda: subscriber.reconnects == 1 and gate.ready)
    assert redis_sync.pubsub_numsub(channel) == [(channel.encode(), 1)]

    # A suspension after the reconnect reaches both: the socket closes, the gate blocks the user.
    me = someone()
    ws = await connect(app_client, me)
    assert me.id not in gate.blocked
    with sync_ctx.transaction() as session:
        session.execute(update(User).where(User.id == me.id).values(status="suspended"))
        emit(session, event="account:status", data={"status": "suspended"}, user_id=me.id)
    assert await close_code(ws) == 4403
    await eventually(lambda: me.id in gate.blocked)
