"""The limiter sends the hits of the requests that ask while its call is out (or in one turn of the
event loop) in one call of its script, and that changes nothing about the limits: a model of moving windows taken one request after the other
(hypothesis) agrees with the real Redis on every answer; a batch shared with other requests, or
with another instance's, counts exactly; a request cancelled while it waits does not disturb the
others; a Redis that is down or silent lets the whole batch through."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import redis
from freezegun import freeze_time
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from common.config import Settings
from common.errors import RateLimited
from common.ratelimit import Check, Limiter
from tests.fixtures.redis_peers import silent_redis, slow_proxy

# Limits told apart by their amount, so that a refusal names which one was spent.
LIMITS = {"one": ("1/minute", 1, 60), "two": ("2/minute", 2, 60), "three": ("3/10second", 3, 10)}


def _counted(settings: Settings) -> tuple[Limiter, list[int]]:
    """A limiter under a prefix of its own, and the number of requests in each script call."""
    limiter = Limiter.from_settings(settings)
    limiter.prefix = f"{limiter.prefix}:{uuid.uuid4().hex}"
    calls: list[int] = []
    script = limiter._script

    async def counted(*, keys: list[str], args: list[object]) -> object:
        answers = await script(keys=keys, args=args)
        calls.append(len(answers))
        return answers

    limiter._script = counted
    return limiter, calls


@asynccontextmanager
async def _limiter(settings: Settings) -> AsyncIterator[tuple[Limiter, list[int]]]:
    """``_counted``, closed on the way out."""
    limiter, calls = _counted(settings)
    try:
        yield limiter, calls
    finally:
        await limiter.close()


@asynccontextmanager
async def _behind_slow_proxy(
    settings: Settings, delay: float,
) -> AsyncIterator[tuple[Limiter, list[int]]]:
    """``_limiter`` reaching Redis through ``slow_proxy``, its connection made and its script
    loaded (unhurried), and its calls counted from then on."""
    port = int(settings.redis_url.split(":")[-1].split("/")[0])
    db = settings.redis_url.rsplit("/", 1)[1]
    async with slow_proxy(delay, port) as proxied, _limiter(
            settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{proxied}/{db}"}),
    ) as (limiter, calls):
        await limiter.hit_all(Check("t:warm", "5/minute", ("x",)))
        calls.clear()
        yield limiter, calls


def _check(name: str, who: str = "x") -> Check:
    return Check(f"t:{name}", LIMITS[name][0], (who,))


async def _ask(limiter: Limiter, *checks: Check) -> RateLimited | None:
    try:
        await limiter.hit_all(*checks)
    except RateLimited as exc:
        return exc
    return None


async def _turn(limiter: Limiter, requests: list[tuple[Check, ...]]) -> list[RateLimited | None]:
    """The requests, all asking in one turn of the loop (in this order)."""
    return list(await asyncio.gather(*(_ask(limiter, *checks) for checks in requests)))


@dataclass
class Windows:
    """Moving windows, one request after the other: the rule the script must keep."""

    stamps: dict[str, list[float]] = field(default_factory=dict)

    def hit(self, names: tuple[str, ...], now: float) -> tuple[int, int] | None:
        """None when every limit took the hit, else (the spent limit's amount, Retry-After)."""
        for name in names:
            _, amount, expiry = LIMITS[name]
            stamps = self.stamps.setdefault(name, [])
            if len(stamps) >= amount and stamps[amount - 1] >= now - expiry:
                oldest = stamps[amount - 1]
                return amount, min(expiry, max(1, math.ceil(oldest + expiry - now)))
            stamps.insert(0, now)
            del stamps[amount:]
        return None


requests_of_a_turn = st.lists(
    st.lists(st.sampled_from(sorted(LIMITS)), min_size=1, max_size=3, unique=True).map(tuple),
    min_size=1, max_size=6)


@hsettings(max_examples=30, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(turns=st.lists(st.tuples(st.integers(0, 70), requests_of_a_turn), min_size=1, max_size=6))
def test_batches_answer_as_requests_one_after_the_other(
    settings: Settings, turns: list[tuple[int, list[tuple[str, ...]]]],
) -> None:
    async def run() -> None:
        async with _limiter(settings) as (limiter, calls):
            model = Windows()
            with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True) as frozen:
                for seconds, requests in turns:
                    frozen.tick(seconds)
                    now = dt.datetime.now(dt.UTC).timestamp()
                    answers = await _turn(limiter, [tuple(map(_check, r)) for r in requests])
                    seen = [None if a is None else (a.limit, a.retry_after) for a in answers]
                    assert seen == [model.hit(names, now) for names in requests]
            assert calls == [len(requests) for _, requests in turns]  # one call per turn

    asyncio.run(run())


async def test_one_turn_is_one_call_and_counts_exactly(settings: Settings) -> None:
    """Twelve requests of one turn on a limit of five: one call, the first five asked pass."""
    async with _limiter(settings) as (limiter, calls):
        answers = await _turn(limiter, [(Check("t:burst", "5/minute", ("x",)),)] * 12)
        assert [a is None for a in answers] == [True] * 5 + [False] * 7
        assert calls == [12]
        assert all(isinstance(a, RateLimited) and a.limit == 5 for a in answers[5:])


async def test_two_instances_batching_at_once_never_exceed_the_limit(settings: Settings) -> None:
    """Two processes' limiters (two clients, two connections), each with a batch of 20 on one
    budget of 15, both in flight at once: 15 pass in all, whatever the order Redis takes them."""
    check = (Check("t:shared", "15/minute", ("x",)),)
    async with _limiter(settings) as (first, _), _limiter(settings) as (second, _):
        second.prefix = first.prefix
        both = await asyncio.gather(_turn(first, [check] * 20), _turn(second, [check] * 20))
        assert sum(a is None for answers in both for a in answers) == 15


async def test_a_request_cancelled_before_its_call_is_not_counted_nor_disturbs_the_others(
    settings: Settings,
) -> None:
    async with _limiter(settings) as (limiter, calls):
        check = Check("t:cancel", "2/minute", ("x",))
        tasks = [asyncio.create_task(_ask(limiter, check)) for _ in range(4)]
        await asyncio.sleep(0)  # each has asked; the sender is yet to start
        tasks[0].cancel()
        answers = await asyncio.gather(*tasks[1:])
        assert tasks[0].cancelled()
        assert [a is None for a in answers] == [True, True, False]
        assert calls == [3]


async def test_a_request_without_limits_asks_nothing(settings: Settings) -> None:
    async with _limiter(settings) as (limiter, calls):
        assert await limiter.hit_all() is None
        assert calls == []


async def test_a_batch_fails_open_without_redis(
    settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    broken = Limiter.from_settings(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        answers = await _turn(broken, [(Check("t:down", "1/minute", ("x",)),)] * 5)
        assert answers == [None] * 5
    finally:
        await broken.close()
    unavailable = [r for r in caplog.records if r.getMessage().startswith("rate limiter unavailable")]
    assert len(unavailable) == 5


async def test_a_silent_redis_lets_the_batch_through_after_the_timeout(settings: Settings) -> None:
    async with silent_redis() as port:
        limiter = Limiter.from_settings(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"}))
        limiter.timeout = 0.2
        try:
            answers = await asyncio.wait_for(
                _turn(limiter, [(Check("t:silent", "1/minute", ("x",)),)] * 3), 10)
            assert answers == [None] * 3
        finally:
            await limiter.close()


async def test_a_bug_in_the_call_reaches_the_requests_and_the_next_turn_works(
    settings: Settings,
) -> None:
    """Anything but Redis or the network failing is not taken as open: every request of the
    batch raises it (an error answer, as before batching), and the limiter keeps working."""
    async with _limiter(settings) as (limiter, _):
        script = limiter._script

        async def broken(**kwargs: object) -> object:
            raise ValueError("a bug")

        limiter._script = broken
        results = await asyncio.gather(*(limiter.hit("t:bug", "1/minute", "x") for _ in range(2)),
                                       return_exceptions=True)
        assert [type(r) for r in results] == [ValueError, ValueError]
        limiter._script = script
        assert await _ask(limiter, Check("t:bug", "1/minute", ("x",))) is None


async def test_a_redis_error_answer_fails_open(settings: Settings) -> None:
    async with _limiter(settings) as (limiter, _):

        async def refused(**kwargs: object) -> object:
            raise redis.ResponseError("NOSCRIPT or worse")

        limiter._script = refused
        assert await _turn(limiter, [(Check("t:err", "1/minute", ("x",)),)] * 2) == [None, None]


async def test_a_burst_larger_than_a_batch_goes_in_several_calls_and_counts_exactly(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("common.ratelimit.BATCH", 4)
    async with _limiter(settings) as (limiter, calls):
        answers = await _turn(limiter, [(Check("t:big", "7/minute", ("x",)),)] * 10)
        assert [a is None for a in answers] == [True] * 7 + [False] * 3
        assert calls == [4, 4, 2]


async def test_requests_asking_while_a_call_is_out_go_together_in_the_next(
    settings: Settings,
) -> None:
    """One call in flight at a time: what asks meanwhile waits for it, then goes in one call."""
    async with _limiter(settings) as (limiter, calls):
        check = Check("t:inflight", "100/minute", ("x",))
        first = asyncio.create_task(_ask(limiter, check))
        while not calls and not limiter._sender:  # the first call has started
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        later = [asyncio.create_task(_ask(limiter, check)) for _ in range(5)]
        assert await asyncio.gather(first, *later) == [None] * 6
        assert calls == [1, 5]


async def test_a_sender_cancelled_before_it_started_does_not_strand_the_next_requests(
    settings: Settings,
) -> None:
    async with _limiter(settings) as (limiter, _):
        check = Check("t:stranded", "5/minute", ("x",))
        waiting = asyncio.create_task(_ask(limiter, check))
        await asyncio.sleep(0)  # it has asked; the sender is created, not yet started
        assert limiter._sender is not None
        limiter._sender.cancel()
        assert await asyncio.wait_for(waiting, 5) is None  # the abandoned call: let through
        assert await asyncio.wait_for(_ask(limiter, check), 5) is None


async def test_a_request_right_after_a_call_ends_gets_its_own(settings: Settings) -> None:
    """Asked as soon as the previous answer arrives, while the sender that gave it is ending:
    the request must not join a sender that will send nothing more."""
    async with _limiter(settings) as (limiter, calls):
        check = Check("t:next", "5/minute", ("x",))
        async with asyncio.timeout(5):
            for _ in range(3):
                await limiter.hit_all(check)  # awaited directly: no task between the two
        assert calls == [1, 1, 1]


async def test_a_slow_redis_never_holds_a_request_longer_than_the_bound(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis answers, slowly, and the queue behind the call in flight is long: each request
    waits at most ``timeout`` in all, then goes on uncounted; those that gave up are not sent."""
    monkeypatch.setattr("common.ratelimit.BATCH", 10)
    async with _behind_slow_proxy(settings, 0.1) as (limiter, calls):
        check = Check("t:slow", "1000/minute", ("x",))
        loop = asyncio.get_running_loop()
        limiter.timeout = 0.7
        started = loop.time()
        answers = await asyncio.wait_for(_turn(limiter, [(check,)] * 100), 10)
        waited = loop.time() - started
        assert answers == [None] * 100  # the answered passed, the rest went on uncounted
        assert waited < 0.7 + 0.5  # the bound, and some slack for a loaded machine
        # Answered calls of 10 came back every 0.2 s until the bound; the rest were not sent.
        assert calls and set(calls) == {10} and sum(calls) < 100


async def test_an_error_answer_fails_its_own_batch_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An error answer means Redis is up: the batches behind it are still counted."""
    monkeypatch.setattr("common.ratelimit.BATCH", 2)
    async with _limiter(settings) as (limiter, calls):
        script = limiter._script
        failed: list[int] = []

        async def once_refused(*, keys: list[str], args: list[object]) -> object:
            if not failed:
                failed.append(1)
                raise redis.ResponseError("BUSY a script is running")
            return await script(keys=keys, args=args)

        limiter._script = once_refused
        check = Check("t:busy", "1/minute", ("x",))
        answers = await _turn(limiter, [(check,)] * 4)
        # The first two let through uncounted; of the next two, one passes and one is refused.
        assert [a is None for a in answers] == [True, True, True, False]
        assert calls == [2]


async def test_a_bug_while_a_call_is_made_reaches_its_requests_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not taken for an outage: the requests of the batch raise the bug, without waiting for
    their bound, and the limiter keeps working."""
    async with _limiter(settings) as (limiter, _):
        limiter.timeout = 30  # a request left waiting would show as a hang, cut by wait_for below

        def broken(self: object) -> object:
            raise KeyError("a bug")

        with monkeypatch.context() as patched:
            patched.setattr("common.ratelimit._Batch.call", broken)
            results = await asyncio.wait_for(asyncio.gather(
                *(limiter.hit("t:callbug", "1/minute", "x") for _ in range(2)),
                return_exceptions=True), 5)
        assert [type(r) for r in results] == [KeyError, KeyError]
        assert await _ask(limiter, Check("t:callbug", "1/minute", ("x",))) is None


async def test_a_request_that_gives_up_while_its_call_is_out_is_let_through_and_counted(
    settings: Settings,
) -> None:
    async with _behind_slow_proxy(settings, 0.15) as (limiter, calls):
        check = Check("t:gaveup", "2/minute", ("x",))
        tasks = [asyncio.create_task(_ask(limiter, check)) for _ in range(3)]
        while limiter._waiting or limiter._sender is None or limiter._sender.done():
            # until the call with all three is out (the warm-up's sender may not have ended)
            await asyncio.sleep(0.01)
        tasks[0].cancel()
        answers = await asyncio.gather(*tasks[1:])
        # The first was counted (its call had started): of the other two, one passes.
        assert [a is None for a in answers] == [True, False]
        assert calls == [3]
