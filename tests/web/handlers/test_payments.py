"""Withdrawals: the hold, Idempotency-Key, cancellation, and 50 concurrent requests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import LedgerEntry, OutboxEvent, Payment, User
from tests.fixtures.factories import auth_headers
from tests.fixtures.money import live_client  # noqa: F401
from tests.fixtures.money_factories import make_funded_user

BODY = {"amount": 10, "method": "paypal", "destination": "me@example.com"}


def _headers(settings: Settings, user: User, key: str | None = "k1") -> dict[str, str]:
    headers = auth_headers(settings, user)
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _balance(session: Session, user: User) -> Decimal:
    session.expire_all()
    return session.get(User, user.id).balance  # type: ignore[union-attr]


async def test_withdrawal_holds_and_replays(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_funded_user(session, "25.50")
    session.commit()
    resp = await client.post("/api/payments", json=BODY, headers=_headers(settings, user))
    first = await resp.json()
    assert resp.status == 202, first
    data = first["data"]
    assert {k: data[k] for k in ("amount", "method", "destination", "status", "failureReason")} == {
        "amount": 10, "method": "paypal", "destination": "me@example.com", "status": "pending",
        "failureReason": None}
    assert _balance(session, user) == Decimal("15.50")
    hold = session.query(LedgerEntry).filter_by(kind="payout_hold").one()
    assert (hold.amount, hold.reference_id) == (Decimal("-10.00"), data["id"])
    status_event = session.query(OutboxEvent).filter_by(event="payment:status").one()
    assert status_event.data == {"paymentId": data["id"], "status": "pending", "amount": 10.0}

    again = await client.post("/api/payments", json=dict(reversed(BODY.items())), headers=_headers(settings, user))
    assert again.status == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["data"] == data
    other_body = await client.post("/api/payments", json={**BODY, "amount": 11}, headers=_headers(settings, user))
    assert other_body.status == 409
    assert session.query(Payment).count() == 1 and _balance(session, user) == Decimal("15.50")

    got = await client.get(f"/api/payments/{data['id']}", headers=auth_headers(settings, user))
    assert (await got.json())["data"] == data
    listed = await client.get("/api/payments", headers=auth_headers(settings, user))
    assert [p["id"] for p in (await listed.json())["data"]] == [data["id"]]


async def test_user_b_never_gets_user_a_reply(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    a = make_funded_user(session, "20")
    b = make_funded_user(session, "20")
    session.commit()
    ra = await (await client.post("/api/payments", json=BODY, headers=_headers(settings, a, "shared"))).json()
    rb_resp = await client.post("/api/payments", json=BODY, headers=_headers(settings, b, "shared"))
    rb = await rb_resp.json()
    assert rb_resp.status == 202 and "Idempotent-Replayed" not in rb_resp.headers
    assert rb["data"]["id"] != ra["data"]["id"]
    assert (await client.get(f"/api/payments/{ra['data']['id']}", headers=auth_headers(settings, b))).status == 404
    assert _balance(session, a) == _balance(session, b) == Decimal("10.00")
    # Each replays its own answer, whoever stored the key first.
    for user, first in ((b, rb), (a, ra)):
        again = await client.post("/api/payments", json=BODY, headers=_headers(settings, user, "shared"))
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert (await again.json())["data"]["id"] == first["data"]["id"]


@pytest.mark.parametrize(
    ("amount", "status"),
    [("20.01", 422), ("4.99", 422), ("-5", 422), ("0", 422), ("5.001", 422), ("abc", 422)],
)
async def test_refused_amounts_hold_nothing(client, session: Session, settings: Settings, amount, status) -> None:  # type: ignore[no-untyped-def]
    user = make_funded_user(session, "20")
    session.commit()
    resp = await client.post("/api/payments", json={**BODY, "amount": amount}, headers=_headers(settings, user))
    assert resp.status == status, await resp.json()
    assert _balance(session, user) == Decimal("20.00")
    assert session.query(Payment).count() == 0


async def test_an_unknown_field_holding_a_huge_integer_is_ignored_like_any_other(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """schemathesis's stateful phase found it: the request's fingerprint could not serialise an
    integer past 64 bits (500); the same key and body still replay, another body still conflicts."""
    user = make_funded_user(session, "20")
    session.commit()
    body = {**BODY, "note": 2**70}
    first = await client.post("/api/payments", json=body, headers=_headers(settings, user))
    assert first.status == 202, await first.json()
    again = await client.post("/api/payments", json=body, headers=_headers(settings, user))
    assert again.status == 202 and again.headers["Idempotent-Replayed"] == "true"
    other = await client.post("/api/payments", json={**body, "note": 2**71},
                              headers=_headers(settings, user))
    assert other.status == 409


async def test_refusal_is_replayed_and_key_is_required(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_funded_user(session, "8")
    session.commit()
    assert (await client.post("/api/payments", json=BODY, headers=_headers(settings, user, None))).status == 400
    first = await client.post("/api/payments", json=BODY, headers=_headers(settings, user))
    assert first.status == 422
    again = await client.post("/api/payments", json=BODY, headers=_headers(settings, user))
    assert again.status == 422 and again.headers["Idempotent-Replayed"] == "true"
    replayed, original = await again.json(), await first.json()
    # The replay is the refusal itself: its message, field errors and code, not a bare status.
    assert (replayed["message"], replayed.get("errors"), replayed["code"]) == (
        original["message"], original.get("errors"), original["code"])
    assert replayed["message"] == "Amount exceeds available balance"
    other = await client.post("/api/payments", json={**BODY, "amount": 6},
                              headers=_headers(settings, user))
    assert other.status == 409
    assert (await other.json())["message"] == "Idempotency-Key already used with a different body"


async def test_cancel_only_while_pending(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_funded_user(session, "10")
    other = make_funded_user(session, "0")
    session.commit()
    payment = (await (await client.post("/api/payments", json=BODY, headers=_headers(settings, user))).json())["data"]
    assert (await client.post(f"/api/payments/{payment['id']}/cancel", headers=auth_headers(settings, other))).status == 404
    resp = await client.post(f"/api/payments/{payment['id']}/cancel", headers=auth_headers(settings, user))
    assert resp.status == 200 and (await resp.json())["data"]["status"] == "cancelled"
    assert _balance(session, user) == Decimal("10.00")
    assert (await client.post(f"/api/payments/{payment['id']}/cancel", headers=auth_headers(settings, user))).status == 409
    assert _balance(session, user) == Decimal("10.00")


@pytest.mark.committed
async def test_fifty_concurrent_withdrawals_of_the_whole_balance(live_client, committed: Engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    with Session(committed, expire_on_commit=False) as session, session.begin():
        user = make_funded_user(session, "10")
    responses = await asyncio.gather(*(
        live_client.post("/api/payments", json=BODY, headers=_headers(settings, user, f"k{i}"))
        for i in range(50)))
    statuses = sorted(r.status for r in responses)
    assert statuses.count(202) == 1 and set(statuses) == {202, 422}
    with committed.connect() as conn:
        assert conn.execute(text("SELECT balance FROM users")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM payments")).scalar_one() == 1


@pytest.mark.committed
async def test_concurrent_requests_with_one_key_execute_once(live_client, committed: Engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    with Session(committed, expire_on_commit=False) as session, session.begin():
        user = make_funded_user(session, "100")
    responses = await asyncio.gather(*(
        live_client.post("/api/payments", json=BODY, headers=_headers(settings, user, "same"))
        for _ in range(50)))
    assert {r.status for r in responses} <= {202, 409} and any(r.status == 202 for r in responses)
    ids = {(await r.json())["data"]["id"] for r in responses if r.status == 202}
    assert len(ids) == 1
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM payments")).scalar_one() == 1
        assert conn.execute(text("SELECT balance FROM users")).scalar_one() == Decimal("90.00")


async def _until(check: Callable[[], bool], what: str, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class PausedWithdrawal:
    """Stands in for ``request_withdrawal``: does the real work, then (first call only) waits
    inside the request's transaction until the test lets it go."""

    def __init__(self) -> None:
        from common.services import payments

        self.real = payments.request_withdrawal
        self.inside, self.go = threading.Event(), threading.Event()
        self.calls = 0
        self.backend_pid: int | None = None

    def __call__(self, session: Session, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        row = self.real(session, **kwargs)
        if self.calls == 1:
            self.backend_pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
            self.inside.set()
            self.go.wait(30)
        return row


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch) -> Iterator[PausedWithdrawal]:
    stand_in = PausedWithdrawal()
    monkeypatch.setattr("web.handlers.payments.request_withdrawal", stand_in)
    yield stand_in
    stand_in.go.set()


def _handler_task() -> asyncio.Task[Any]:
    """The server task running ``create_payment`` (the one a shutdown would cancel)."""
    for task in asyncio.all_tasks():
        awaiting: Any = task.get_coro()
        while awaiting is not None:  # down the chain of awaits: middlewares, decorators, handler
            code = getattr(awaiting, "cr_code", None)
            if code is not None and code.co_name == "create_payment":
                return task
            awaiting = getattr(awaiting, "cr_await", None)
    raise AssertionError("no create_payment handler is running")


def _lock_waiters(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'")).scalar_one()


async def _payments_client(aiohttp_client, settings: Settings, **overrides: Any):  # type: ignore[no-untyped-def]
    from web.app import create_app

    return await aiohttp_client(create_app(settings.model_copy(
        update={"rate_limit_withdrawal": "1000/minute", **overrides})))


@pytest.mark.committed
async def test_cancelled_request_and_its_key_commit_together(aiohttp_client, committed: Engine, settings: Settings, paused: PausedWithdrawal) -> None:  # type: ignore[no-untyped-def]
    """A shutdown cancels the handler while its write thread is inside the transaction: the key
    stays with the payment, so a retry waits for it and replays it (never a second payment)."""
    api = await _payments_client(aiohttp_client, settings, idempotency_wait_ms=30_000)
    with Session(committed, expire_on_commit=False) as session, session.begin():
        user = make_funded_user(session, "100")
    first = asyncio.ensure_future(api.post("/api/payments", json=BODY, headers=_headers(settings, user)))
    await _until(paused.inside.is_set, "the write thread to enter the transaction")
    _handler_task().cancel()
    with pytest.raises(Exception):  # noqa: B017  (the connection drops with the cancelled handler, however aiohttp words it)
        await first
    retry = asyncio.ensure_future(api.post("/api/payments", json=BODY, headers=_headers(settings, user)))
    # The retry either waits for the first transaction's key, or (the fault) runs again.
    await _until(lambda: retry.done() or paused.calls > 1 or _lock_waiters(committed) > 0,
                 "the retry to wait on the key")
    paused.go.set()
    resp = await retry
    body = await resp.json()
    assert resp.status == 202, body
    assert resp.headers.get("Idempotent-Replayed") == "true"
    assert paused.calls == 1
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM payments")).scalar_one() == 1
        assert conn.execute(text("SELECT id FROM payments")).scalar_one() == body["data"]["id"]
        assert conn.execute(text("SELECT balance FROM users")).scalar_one() == Decimal("90.00")


@pytest.mark.committed
async def test_crash_after_claiming_leaves_no_key_behind(aiohttp_client, committed: Engine, settings: Settings, paused: PausedWithdrawal) -> None:  # type: ignore[no-untyped-def]
    """The process dies (its database session ends, no code of it runs again) after the key was
    claimed: the retry is served at once instead of 409 for a day."""
    api = await _payments_client(aiohttp_client, settings, idempotency_wait_ms=30_000)
    with Session(committed, expire_on_commit=False) as session, session.begin():
        user = make_funded_user(session, "100")
    first = asyncio.ensure_future(api.post("/api/payments", json=BODY, headers=_headers(settings, user)))
    await _until(paused.inside.is_set, "the write thread to enter the transaction")
    with committed.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": paused.backend_pid})

    def gone() -> bool:
        with committed.connect() as conn:
            return not conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                    {"pid": paused.backend_pid}).scalar_one()

    await _until(gone, "the crashed session to end")
    resp = await api.post("/api/payments", json=BODY, headers=_headers(settings, user))
    body = await resp.json()
    assert resp.status == 202, body
    assert "Idempotent-Replayed" not in resp.headers
    paused.go.set()
    await first  # the "dead" request's thread wakes to a closed connection; its answer is moot
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM payments")).scalar_one() == 1
        assert conn.execute(text("SELECT balance FROM users")).scalar_one() == Decimal("90.00")
    again = await api.post("/api/payments", json=BODY, headers=_headers(settings, user))
    assert again.status == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["data"]["id"] == body["data"]["id"]


@pytest.mark.committed
async def test_a_retry_waits_only_so_long_for_a_running_request(aiohttp_client, committed: Engine, settings: Settings, paused: PausedWithdrawal) -> None:  # type: ignore[no-untyped-def]
    api = await _payments_client(aiohttp_client, settings, idempotency_wait_ms=50)
    with Session(committed, expire_on_commit=False) as session, session.begin():
        user = make_funded_user(session, "100")
    first = asyncio.ensure_future(api.post("/api/payments", json=BODY, headers=_headers(settings, user)))
    await _until(paused.inside.is_set, "the write thread to enter the transaction")
    busy = await api.post("/api/payments", json=BODY, headers=_headers(settings, user))
    assert busy.status == 409, await busy.json()
    paused.go.set()
    assert (await first).status == 202
    again = await api.post("/api/payments", json=BODY, headers=_headers(settings, user))
    assert again.status == 202 and again.headers["Idempotent-Replayed"] == "true"
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM payments")).scalar_one() == 1


def test_expired_keys_are_taken_over_and_purged(session: Session) -> None:
    from common.services.idempotency import Stored, claim_key, purge_expired, store_response

    user = make_funded_user(session, "0")
    claim = claim_key(session, user_id=user.id, key="k", request_hash=b"a" * 32, wait_ms=100)
    assert isinstance(claim, int)
    store_response(session, claim_id=claim, status=202, body={"data": 1})
    replay = claim_key(session, user_id=user.id, key="k", request_hash=b"a" * 32, wait_ms=100)
    assert replay == Stored(202, {"data": 1})
    session.execute(text("UPDATE idempotency_keys SET expires_at = now() - interval '1 s'"))
    # Taken over with a claim (and an id) of its own: the new execution is told apart.
    again = claim_key(session, user_id=user.id, key="k", request_hash=b"b" * 32, wait_ms=100)
    assert isinstance(again, int) and again != claim
    session.execute(text("UPDATE idempotency_keys SET expires_at = now() - interval '1 s'"))
    assert purge_expired(session) == 1
