"""The catalogue's page cache: one read per key at a time, kept ``ttl`` from the read's start,
never a failure kept, never past its time; its entity tags."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from freezegun import freeze_time

from web.page_cache import PageCache, entity_tag, matches


class Source:
    """A read that counts its calls and answers what ``value`` holds when it starts."""

    def __init__(self) -> None:
        self.calls = 0
        self.value = b'"data":1'
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> bytes:
        self.calls += 1
        value = self.value
        if self.gate is not None:
            await self.gate.wait()
        return value


async def _started(source: Source, calls: int) -> None:
    for _ in range(100):  # a few loop turns at most; bounded
        if source.calls >= calls:
            return
        await asyncio.sleep(0)
    raise AssertionError("the read did not start")


async def test_concurrent_misses_share_one_read() -> None:
    cache, source = PageCache(0.5), Source()
    source.gate = asyncio.Event()
    waiting = [asyncio.ensure_future(cache.get("k", source)) for _ in range(20)]
    await asyncio.sleep(0)
    source.gate.set()
    entries = await asyncio.gather(*waiting)
    assert source.calls == 1 and {e.fields for e in entries} == {b'"data":1'}


async def test_an_entry_is_kept_ttl_from_the_start_of_its_read() -> None:
    cache, source = PageCache(0.5), Source()
    with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True) as frozen:
        assert (await cache.get("k", source)).fields == b'"data":1'
        source.value = b'"data":2'  # a change committed after the read
        frozen.tick(0.4)
        assert (await cache.get("k", source)).fields == b'"data":1'
        assert (await cache.get("other", source)).fields == b'"data":2'  # keys apart
        frozen.tick(0.1)
        assert (await cache.get("k", source)).fields == b'"data":2'
    assert source.calls == 3


async def test_a_read_too_old_to_answer_is_not_joined() -> None:
    """A request arriving once a running read is ``ttl`` old starts its own: the running one
    cannot show a change committed since it started."""
    cache, source = PageCache(0.5), Source()
    source.gate = asyncio.Event()
    with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True) as frozen:
        slow = asyncio.ensure_future(cache.get("k", source))
        await _started(source, 1)
        source.value = b'"data":2'
        frozen.tick(0.6)
        late = asyncio.ensure_future(cache.get("k", source))
        await _started(source, 2)
        source.gate.set()
        assert (await slow).fields == b'"data":1'
        assert (await late).fields == b'"data":2'
        # The later read's answer stays, whichever finished last.
        assert (await cache.get("k", source)).fields == b'"data":2'
    assert source.calls == 2


async def test_a_failed_read_is_not_kept() -> None:
    cache, calls = PageCache(0.5), []

    async def failing() -> bytes:
        calls.append(1)
        raise ConnectionError("database down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await cache.get("k", failing)
    assert len(calls) == 2
    assert (await cache.get("k", Source())).fields == b'"data":1'


async def test_a_caller_that_goes_away_leaves_the_read_to_the_others() -> None:
    cache, source = PageCache(0.5), Source()
    source.gate = asyncio.Event()
    first = asyncio.ensure_future(cache.get("k", source))
    second = asyncio.ensure_future(cache.get("k", source))
    await asyncio.sleep(0)
    first.cancel()
    source.gate.set()
    assert (await second).fields == b'"data":1' and source.calls == 1


async def test_zero_ttl_reads_every_time_and_entries_are_bounded() -> None:
    source = Source()
    off = PageCache(0)
    for _ in range(3):
        await off.get("k", source)
    assert source.calls == 3
    small = PageCache(0.5, size=2)
    for key in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" comes
        await small.get(key, source)
    await small.get("a", source)
    assert source.calls == 6
    await small.get("b", source)
    assert source.calls == 7


def test_entity_tags_compare_weakly_and_change_with_the_content() -> None:
    tag = entity_tag(b'"data":1')
    assert tag.startswith('"') and tag != entity_tag(b'"data":2')
    assert matches(tag, tag) and matches(f'"x", W/{tag}', tag) and matches("*", tag)
    assert not matches(None, tag) and not matches('"x"', tag) and not matches("", tag)
