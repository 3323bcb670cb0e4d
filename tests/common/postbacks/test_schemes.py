"""Each network's reply to each outcome is the one it expects (NETWORKS.md, docs/money.md "Replies"):
a reply it retries on where a retry can help, and its "do not retry" where it cannot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from common.config import Settings
from tests.fixtures.factories import make_user
from tests.fixtures.money import money_settings  # noqa: F401
from tests.fixtures.money_factories import make_offer
from tests.fixtures.schemes import SIGNATURE_PARAM, signed

ENVELOPE = None  # the reply is the JSON envelope, not plain text

# outcome -> network -> (status, plain-text body or ENVELOPE)
EXPECTED: dict[str, dict[str, tuple[int, str | None]]] = {
    "credited": {"testnet": (200, ENVELOPE), "cpx": (200, ENVELOPE), "sr": (200, "1"), "tapjoy": (200, ENVELOPE)},
    "duplicate": {"testnet": (200, ENVELOPE), "cpx": (200, ENVELOPE), "sr": (200, "1"), "tapjoy": (200, ENVELOPE)},
    "bad_signature": {"testnet": (403, ENVELOPE), "cpx": (403, ENVELOPE), "sr": (403, "0"), "tapjoy": (403, ENVELOPE)},
    "unknown_user": {"testnet": (422, ENVELOPE), "cpx": (422, ENVELOPE), "sr": (422, "0"), "tapjoy": (403, ENVELOPE)},
    "unknown_offer": {"testnet": (422, ENVELOPE), "cpx": (422, ENVELOPE), "sr": (422, "0"), "tapjoy": (422, ENVELOPE)},
    "malformed": {"testnet": (400, ENVELOPE), "cpx": (400, ENVELOPE), "sr": (400, "0"), "tapjoy": (403, ENVELOPE)},
    "bad_amount": {"testnet": (422, ENVELOPE), "cpx": (422, ENVELOPE), "sr": (422, "0"), "tapjoy": (403, ENVELOPE)},
    "rate_limited": {"testnet": (429, ENVELOPE), "cpx": (429, ENVELOPE), "sr": (429, "0"), "tapjoy": (429, ENVELOPE)},
}


def _malformed(network: str, uid: int) -> dict[str, str]:
    """Signed correctly, but a parameter is unusable (not an amount problem)."""
    if network == "testnet":
        return signed(network, user=uid, txn="m1", offer="*", status="9")
    if network == "cpx":
        return {**signed(network, user=uid, txn="m1"), "status": "7"}
    return signed(network, user="not-a-user", txn="m1")  # sr, tapjoy: the user id is signed


CASES: dict[str, Callable[[str, int], dict[str, str]]] = {
    "credited": lambda net, uid: signed(net, user=uid, txn="t1"),
    "bad_signature": lambda net, uid: {**signed(net, user=uid, txn="t1"), SIGNATURE_PARAM[net]: "0" * 32},
    "unknown_user": lambda net, uid: signed(net, user=uid + 1000, txn="t2"),
    "malformed": _malformed,
    "bad_amount": lambda net, uid: signed(net, user=uid, txn="t3", amount="1e30"),
}


@pytest.fixture
def make_client(aiohttp_client, money_settings: Settings, bound_db):  # type: ignore[no-untyped-def]
    from web.app import create_app

    async def make(**overrides: Any):  # type: ignore[no-untyped-def]
        return await aiohttp_client(create_app(money_settings.model_copy(update=overrides), db=bound_db))

    return make


async def _check(resp: Any, network: str, outcome: str) -> None:
    status, text = EXPECTED[outcome][network]
    body = await resp.text()
    assert resp.status == status, (outcome, body)
    if text is ENVELOPE:
        assert resp.content_type == "application/json", (outcome, body)
        assert (await resp.json())["success"] is (status == 200)
    else:
        assert (resp.content_type, body) == ("text/plain", text), outcome


@pytest.mark.parametrize("network", ["testnet", "cpx", "sr", "tapjoy"])
async def test_each_outcome_gets_the_reply_the_network_expects(make_client, session: Session, network: str) -> None:  # type: ignore[no-untyped-def]
    client = await make_client()
    user = make_user(session)
    make_offer(session, network=network, external_id="*")
    session.commit()
    for outcome, build in CASES.items():
        resp = await client.get(f"/api/postbacks/{network}", params=build(network, user.id))
        await _check(resp, network, outcome)
    again = await client.get(f"/api/postbacks/{network}", params=CASES["credited"](network, user.id))
    await _check(again, network, "duplicate")


@pytest.mark.parametrize("network", ["testnet", "cpx", "sr", "tapjoy"])
async def test_unknown_offer_reply(make_client, session: Session, network: str) -> None:  # type: ignore[no-untyped-def]
    client = await make_client()
    user = make_user(session)  # and no offer at all: the wall offer is missing too
    session.commit()
    resp = await client.get(f"/api/postbacks/{network}", params=signed(network, user=user.id, txn="o1"))
    await _check(resp, network, "unknown_offer")


@pytest.mark.parametrize("network", ["testnet", "cpx", "sr", "tapjoy"])
async def test_rate_limited_reply(make_client, session: Session, network: str) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_postback="1/minute")
    user = make_user(session)
    make_offer(session, network=network, external_id="*")
    session.commit()
    await client.get(f"/api/postbacks/{network}", params=signed(network, user=user.id, txn="r1"))
    resp = await client.get(f"/api/postbacks/{network}", params=signed(network, user=user.id, txn="r2"))
    await _check(resp, network, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(("network", "restricted"), [
    ("sr", False), ("sr", True), ("tapjoy", False), ("tapjoy", True), ("testnet", False),
])
def test_an_unsigned_click_id_is_believed_only_from_the_networks_addresses(network: str, restricted: bool) -> None:
    """SuperRewards' and Tapjoy's signatures leave the sub-id out: anyone holding one signed URL
    could otherwise choose which click decides the credit. The generic scheme signs it."""
    import ipaddress

    from common.postbacks import adapter_for
    from tests.fixtures.money import NETWORKS

    config = NETWORKS[network]
    if restricted:
        config = config.model_copy(update={"allowed_ips": (ipaddress.ip_network("192.0.2.0/24"),)})
    params = signed(network, user=7, txn="t1", click_id="C" * 22)
    click = adapter_for(config).verify(params, headers={}, raw_query="").click_id  # type: ignore[union-attr]
    assert click == ("C" * 22 if restricted or network == "testnet" else None)
