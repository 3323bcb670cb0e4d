"""Malformed callbacks on the public postback route are a 4xx with the log row the rules call for,
never a 500: signatures are compared as bytes, bodies are parsed defensively."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from common.models import PostbackLog, Sale
from tests.factories import make_user
from tests.money.factories import make_offer
from tests.money.schemes import SIGNATURE_PARAM, signed


@pytest.mark.parametrize("network", ["testnet", "cpx", "sr", "tapjoy"])
@pytest.mark.parametrize("sig", ["é" * 32, "💥", "0" * 31 + "ÿ"])
async def test_a_non_ascii_signature_is_a_bad_signature(money_client, session: Session, network: str, sig: str) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network=network, external_id="*")
    session.commit()
    params = {**signed(network, user=user.id, txn="t1"), SIGNATURE_PARAM[network]: sig}
    resp = await money_client.get(f"/api/postbacks/{network}", params=params)
    assert resp.status == 403
    assert session.query(Sale).count() == 0
    assert session.query(PostbackLog).one().verdict == "bad_signature"


@pytest.mark.parametrize("content_type", [
    "multipart/form-data",  # no boundary
    "multipart/form-data; boundary=",
    "application/x-www-form-urlencoded; charset=no-such-charset",
])
async def test_an_unreadable_body_is_400_with_an_invalid_log_row(money_client, session: Session, content_type: str) -> None:  # type: ignore[no-untyped-def]
    resp = await money_client.post("/api/postbacks/testnet?txn_id=t1", data=b"a=1&b=%FF",
                                   headers={"Content-Type": content_type})
    body = await resp.json()
    assert resp.status == 400 and body["success"] is False, body
    logged = session.query(PostbackLog).one()
    assert (logged.verdict, logged.params) == ("invalid", {"txn_id": "t1"})


async def test_an_unreadable_body_for_an_unknown_network_stores_nothing(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    resp = await money_client.post("/api/postbacks/nosuchnet", data=b"x",
                                   headers={"Content-Type": "multipart/form-data"})
    assert resp.status == 403
    assert session.query(PostbackLog).count() == 0
