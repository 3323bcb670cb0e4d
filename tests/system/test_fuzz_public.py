"""Hypothesis against every route a stranger can reach without signing in: the postbacks of every
configured scheme, the auth routes and the ``/ws`` handshake. Never a 5xx, and the server logs no
unhandled error (the only trace a WebSocket failure leaves after the upgrade).

The app runs for real in a thread (``ThreadedServer``), fed by blocking clients from hypothesis.
Examples are bounded (FUZZ_PUBLIC_EXAMPLES per test) so the whole file stays well under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import requests
from aiohttp.http_exceptions import HttpProcessingError
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from common.config import Settings
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.live import ROOMY, ThreadedServer
from tests.fixtures.money import NETWORKS
from tests.fixtures.money_factories import make_offer
from tests.fixtures.schemes import SIGNATURE_PARAM, signed

EXAMPLES = int(os.environ.get("FUZZ_PUBLIC_EXAMPLES", "150"))
FUZZ = hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                           suppress_health_check=list(HealthCheck), derandomize=True)
TIMEOUT = 10

# Values that broke something once, or are known to be edges: big, non-finite, non-ASCII, NUL,
# digits of other scripts, lone surrogates as sent on the wire, numbers past int()'s limit.
EDGES = ["", "0", "-1", "1e30", "-1e30", "NaN", "Infinity", "sNaN", "1e-999999999", "²", "١٢",
         "é" * 33, "💥", "\x00", "%00", "%ED%A0%80", "9" * 5000, "x" * 300, " ", "null", "[]"]
text = st.one_of(st.sampled_from(EDGES), st.text(max_size=40))


class ErrorLog(logging.Handler):
    """Collects what the server logs at ERROR (unhandled errors in handlers and sockets)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            return  # the client's malformed HTTP (e.g. a URL over 8 KB): aiohttp answers it 400
        self.records.append(f"{record.name}: {record.getMessage()} {record.exc_text or ''}"[:800])


@pytest.fixture
def errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.fixture
def server(settings: Settings, committed: Engine) -> Iterator[ThreadedServer]:
    from web.app import create_app

    app = create_app(settings.model_copy(
        update={**ROOMY, "networks": NETWORKS, "ws_auth_timeout": 0.5}))
    running = ThreadedServer(app)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def member(committed: Engine, settings: Settings) -> dict[str, Any]:
    """A user, and a wall offer on each test network, so that signed callbacks reach the credit."""
    with Session(committed, expire_on_commit=False) as session:
        user = make_user(session)
        for network in ("testnet", "cpx", "sr", "tapjoy"):
            make_offer(session, network=network, external_id="*")
        session.commit()
    token = auth_headers(settings, user)["Authorization"].removeprefix("Bearer ")
    return {"id": user.id, "token": token}


def _no_5xx(resp: requests.Response, what: str) -> None:
    assert resp.status_code < 500, f"{what}: {resp.status_code} {resp.text[:300]}"


# -- postbacks ------------------------------------------------------------------------------------

BODY_TYPES = [
    None, "application/x-www-form-urlencoded", "multipart/form-data",
    "multipart/form-data; boundary=", "multipart/form-data; boundary=xyz",
    "application/x-www-form-urlencoded; charset=no-such-charset", "application/json", "text/plain",
]


@st.composite
def callbacks(draw: st.DrawFn, user_id: int) -> tuple[str, str, dict[str, str], str | None, bytes]:
    network = draw(st.sampled_from(["testnet", "cpx", "sr", "tapjoy", "nosuchnet"]))
    if draw(st.booleans()):  # signed: the odd values reach the parsing behind the signature
        user = draw(st.one_of(st.just(user_id), text))
        params = signed("testnet" if network == "nosuchnet" else network, user=user,
                        txn=draw(text), amount=draw(text), offer=draw(st.sampled_from(["*", "x"])))
    else:
        params = draw(st.dictionaries(text, text, max_size=6))
        if network != "nosuchnet" and draw(st.booleans()):
            params[SIGNATURE_PARAM[network]] = draw(text)
    method = draw(st.sampled_from(["GET", "POST"]))
    content_type = draw(st.sampled_from(BODY_TYPES)) if method == "POST" else None
    body = draw(st.binary(max_size=200)) if draw(st.booleans()) else b""
    return network, method, params, content_type, body


@pytest.mark.committed
def test_postbacks_of_every_scheme_never_answer_5xx(server: ThreadedServer, member: dict[str, Any], errors: ErrorLog) -> None:  # type: ignore[no-untyped-def]
    @given(case=callbacks(member["id"]))
    @FUZZ
    def run(case: tuple[str, str, dict[str, str], str | None, bytes]) -> None:
        network, method, params, content_type, body = case
        url = f"{server.url}/api/postbacks/{network}"
        if method == "GET":
            resp = requests.get(url, params=params, timeout=TIMEOUT)
        elif content_type == "application/x-www-form-urlencoded":
            resp = requests.post(url, data=params, timeout=TIMEOUT)
        else:
            headers = {"Content-Type": content_type} if content_type else {}
            resp = requests.post(url, params=params, data=body, headers=headers, timeout=TIMEOUT)
        _no_5xx(resp, f"{method} {network} {content_type} {params!r}"[:600])

    run()
    assert errors.records == []


# -- auth -----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)
FIELDS = ["email", "password", "name", "refreshToken", "token"]
auth_bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5),
    st.fixed_dictionaries({"email": st.emails(), "password": text, "name": text}),
    json_values,
)


@pytest.mark.committed
def test_auth_routes_never_answer_5xx(server: ThreadedServer, errors: ErrorLog) -> None:
    @given(path=st.sampled_from(["register", "login", "refresh", "logout"]), body=auth_bodies,
           raw=st.one_of(st.none(), st.binary(max_size=100)),
           content_type=st.sampled_from(["application/json", "application/json; charset=latin-1",
                                         "text/plain", "multipart/form-data"]))
    @FUZZ
    def run(path: str, body: Any, raw: bytes | None, content_type: str) -> None:
        url = f"{server.url}/api/auth/{path}"
        if raw is None:
            resp = requests.post(url, json=body, timeout=TIMEOUT)
        else:
            resp = requests.post(url, data=raw, headers={"Content-Type": content_type},
                                 timeout=TIMEOUT)
        _no_5xx(resp, f"{path} {body!r} {raw!r}"[:600])

    run()
    assert errors.records == []


# -- the /ws handshake ----------------------------------------------------------------------------

frames = st.one_of(
    text,
    st.builds(lambda e, d: {"event": e, "data": d}, st.sampled_from(
        ["auth", "chat:join", "chat:send", "ping", "x"]), json_values),
    st.builds(lambda room, since: {"event": "auth", "data": {"since": since, "roomId": room}},
              json_values, st.one_of(st.integers(), text)),
)


async def _handshake(url: str, query: dict[str, str], first: Any, then: Any) -> int | None:
    """The HTTP status when the upgrade is refused, else None after the exchange."""
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(f"{url}/ws", params=query, timeout=aiohttp.ClientWSTimeout(ws_close=2))
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        async with ws:
            for frame in (first, then):
                if ws.closed:
                    break
                if isinstance(frame, str):
                    await ws.send_str(frame)
                else:
                    await ws.send_json(frame)
            with contextlib.suppress(TimeoutError):
                await ws.receive(timeout=1)
        return None


@pytest.mark.committed
def test_ws_handshake_never_fails_on_the_server(server: ThreadedServer, member: dict[str, Any], errors: ErrorLog) -> None:
    token = member["token"]

    @given(query=st.dictionaries(st.sampled_from(["token", "since", "x"]),
                                 st.one_of(text, st.just(token)), max_size=3),
           authed=st.booleans(), first=frames, then=frames)
    @example(query={"token": token, "since": "²"}, authed=True, first="x", then="y")
    @example(query={"token": token, "since": "9" * 5000}, authed=True, first="x", then="y")
    @example(query={}, authed=True, first={"event": "auth", "data": {"since": 10**30}},
             then={"event": "chat:join", "data": {"roomId": 10**30}})
    @example(query={"token": token}, authed=True, first={"event": "chat:join", "data": {"roomId": "²"}},
             then={"event": "chat:send", "data": {"roomId": 2**63, "content": "x"}})
    @FUZZ
    def run(query: dict[str, str], authed: bool, first: Any, then: Any) -> None:
        if authed and isinstance(first, dict) and first.get("event") == "auth":
            data = first.get("data")
            first = {**first, "data": {**(data if isinstance(data, dict) else {}), "token": token}}
        status = asyncio.run(_handshake(server.url, query, first, then))
        assert status is None or status < 500, (query, first, then)

    run()
    assert errors.records == []
