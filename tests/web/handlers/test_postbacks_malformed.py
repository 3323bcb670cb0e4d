"""Malformed callbacks on the public postback route are a 4xx with the log row the rules call for,
never a 500: signatures are compared as bytes, bodies are parsed defensively."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from common.models import PostbackLog, Sale
from tests.fixtures.factories import make_user
from tests.fixtures.money import (  # noqa: F401
    money_client,
    money_settings,
)
from tests.fixtures.money_factories import generic_params, make_offer
from tests.fixtures.schemes import SIGNATURE_PARAM, signed


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


async def test_a_part_in_an_unknown_transfer_encoding_is_unreadable(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    body = (b"--BB\r\nContent-Disposition: form-data; name=\"txn_id\"\r\n"
            b"Content-Transfer-Encoding: bogus\r\n\r\nt1\r\n--BB--\r\n")
    resp = await money_client.post("/api/postbacks/testnet", data=body,
                                   headers={"Content-Type": "multipart/form-data; boundary=BB"})
    assert resp.status == 400
    assert session.query(PostbackLog).one().verdict == "invalid"


@pytest.mark.parametrize(("field", "value"), [
    # Non-ASCII digits on purpose: Python's int() and Decimal() read them, the API must not.
    ("user_id", "²"), ("user_id", "１２"), ("user_id", "٥"), ("user_id", "012"),  # noqa: RUF001
    ("amount", "1_0"), ("amount", "١٠"),  # noqa: RUF001
])
async def test_only_ascii_digits_make_a_user_id_or_an_amount(money_client, session: Session, field: str, value: str) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    session.commit()
    values = {"user_id": str(user.id), "offer_id": "o1", "txn_id": "t1", "amount": "10.00",
              field: value}
    resp = await money_client.get("/api/postbacks/testnet", params=generic_params(**values))
    assert resp.status in (400, 422)
    assert session.query(Sale).count() == 0
    assert session.query(PostbackLog).one().verdict == "invalid"


async def test_a_value_with_base64_padding_is_signed_as_sent(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    session.commit()
    params = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", sub1="YWJjZA==")
    assert (await money_client.get("/api/postbacks/testnet", params=params)).status == 200


@pytest.mark.parametrize("value", ["x&txn_id=EVIL", "a&b"])
async def test_a_generic_parameter_that_could_be_re_split_is_refused(money_client, session: Session, value: str) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    session.commit()
    params = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", sub1=value)
    resp = await money_client.get("/api/postbacks/testnet", params=params)
    assert resp.status == 400
    assert session.query(Sale).count() == 0
