"""Signed callbacks of each configured test network (tests/money/conftest.py ``NETWORKS``), built
the way the network builds them (NETWORKS.md), for tests that go through every scheme."""

from __future__ import annotations

import hashlib

from tests.money.factories import generic_params

# Test network name -> scheme.
SCHEME_OF = {"testnet": "generic", "cpx": "cpx", "sr": "superrewards", "tapjoy": "tapjoy"}


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def signed(network: str, *, user: object, txn: str, amount: str = "2.00", offer: str = "*",
           **extra: str) -> dict[str, str]:
    """A callback crediting ``amount`` to ``user`` for ``txn``, signed with the test secret."""
    uid = str(user)
    if network == "testnet":
        return generic_params(user_id=uid, offer_id=offer, txn_id=txn, amount=amount, **extra)
    if network == "cpx":
        return {"user_id": uid, "trans_id": txn, "amount_usd": amount, "status": "1",
                "secure_hash": md5(f"{txn}-cpx-secret"), **extra}
    if network == "sr":
        return {"id": txn, "new": amount, "total": amount, "uid": uid, "oid": offer,
                "sig": md5(f"{txn}:{amount}:{uid}:sr-secret"), **extra}
    if network == "tapjoy":
        return {"id": txn, "snuid": uid, "currency": amount,
                "verifier": md5(f"{txn}:{uid}:{amount}:tj-secret"), **extra}
    raise ValueError(network)


SIGNATURE_PARAM = {"testnet": "sig", "cpx": "secure_hash", "sr": "sig", "tapjoy": "verifier"}
