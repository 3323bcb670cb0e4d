"""The callback schemes we speak (NETWORKS.md). A network picks one with POSTBACK_SCHEME_<NAME>."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import ClassVar

from common.postbacks.base import (
    Adapter,
    Callback,
    Outcome,
    PostbackInvalid,
    PostbackRefused,
)

_CREDIT = {"1", "approved", "completed"}
_REVERSE = {"2", "reversed", "chargeback"}


def generic_signature(secret: str, params: Mapping[str, str]) -> str:
    """docs/money.md "Postbacks": HMAC-SHA256 of the other parameters sorted by name, ``k=v&k=v``."""
    message = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sig")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class Generic(Adapter):
    """Ours (docs/money.md "Postbacks"): ``user_id, offer_id, txn_id, amount, status, sig``, optionally
    ``click_id`` (docs/money.md "Clicks"; signed like every other parameter)."""

    scheme = "generic"
    txn_param, user_param, signature_params = "txn_id", "user_id", ("sig",)
    shown_fields = ("txn_id", "user_id", "offer_id", "amount", "status", "click_id")

    def verify(self, params: Mapping[str, str], *, headers: Mapping[str, str], raw_query: str) -> Callback:
        if not self._same(generic_signature(self.config.secret, params), params.get("sig")):
            raise PostbackRefused("bad signature")
        # The signed text joins k=v with "&" unescaped: a value holding "&" (or a name holding
        # "&" or "=") could be re-split into other parameters under the same signature. An "="
        # in a value (base64 padding) cannot move a boundary and is fine.
        if any("&" in k or "=" in k or "&" in v for k, v in params.items()):
            raise PostbackInvalid("a parameter could be read as another set of parameters")
        status = self._required(params, "status").lower()
        if status not in _CREDIT | _REVERSE:
            raise PostbackInvalid("unknown status")
        return Callback(
            kind="credit" if status in _CREDIT else "reversal",
            txn_id=self._required(params, "txn_id"),
            user_id=self._user(params, "user_id"),
            offer_external_id=self._required(params, "offer_id"),
            amount=self._amount(params, "amount"),
            click_id=self._click(params),
        )


class Cpx(Adapter):
    """CPX Research: ``user_id, trans_id, amount_usd, status`` (1 complete, 2 cancelled),
    ``secure_hash`` = MD5 of ``trans_id-secret``. Surveys carry no offer id: the network's wall
    offer (external id ``*``) holds the payout rule."""

    scheme = "cpx"
    click_param = "subid_1"  # CPX passes the wall URL's subid_1 back as {subid_1}
    txn_param, user_param, signature_params = "trans_id", "user_id", ("secure_hash",)
    shown_fields = ("trans_id", "user_id", "offer_id", "amount_usd", "status", "subid_1")
    requires_allowed_ips = True  # its hash covers the transaction id only

    def verify(self, params: Mapping[str, str], *, headers: Mapping[str, str], raw_query: str) -> Callback:
        txn = self._required(params, "trans_id")
        if not self._same(_md5(f"{txn}-{self.config.secret}"), params.get("secure_hash")):
            raise PostbackRefused("bad secure_hash")
        status = self._required(params, "status")
        if status not in ("1", "2"):
            raise PostbackInvalid("unknown status")
        return Callback(
            kind="credit" if status == "1" else "reversal",
            txn_id=txn,
            user_id=self._user(params, "user_id"),
            offer_external_id=self._optional(params, "offer_id"),
            amount=self._amount(params, "amount_usd"),
            click_id=self._click(params),
        )


class SuperRewards(Adapter):
    """SuperRewards: ``uid, id, new, total, oid``; ``sig`` = MD5 of ``id:new:uid:secret``; a
    negative ``new`` reverses; the reply body is ``1`` (success) or ``0`` (failure)."""

    scheme = "superrewards"
    click_signed = False  # its sig covers id, new and uid only
    txn_param, user_param, signature_params = "id", "uid", ("sig",)
    shown_fields = ("id", "new", "total", "uid", "oid", "click_id")

    def verify(self, params: Mapping[str, str], *, headers: Mapping[str, str], raw_query: str) -> Callback:
        txn, new, uid = (self._required(params, n) for n in ("id", "new", "uid"))
        if not self._same(_md5(f"{txn}:{new}:{uid}:{self.config.secret}"), params.get("sig")):
            raise PostbackRefused("bad sig")
        amount = self._amount(params, "new")
        return Callback(
            kind="reversal" if amount < 0 else "credit",
            txn_id=txn,
            user_id=self._user(params, "uid"),
            offer_external_id=self._optional(params, "oid"),
            amount=abs(amount),
            click_id=self._click(params),
        )

    # SuperRewards reads the body, whatever the status: ``1`` done, ``0`` not (and it calls again).
    success_text, failure_text = "1", "0"


class Tapjoy(Adapter):
    """Tapjoy / Unity Offerwall: ``snuid`` user, ``id`` per request, ``currency``;
    ``verifier`` = MD5 of ``id:snuid:currency:secret``; 403 means "do not retry"."""

    scheme = "tapjoy"
    click_signed = False  # its verifier covers id, snuid and currency only
    txn_param, user_param, signature_params = "id", "snuid", ("verifier",)
    shown_fields = ("id", "snuid", "currency", "offer_id", "click_id")
    # Tapjoy retries every reply but 200 and 403 for 4 days: 403 ("do not retry") where a retry
    # cannot help (the user does not exist, the callback itself is unusable); a missing wall offer
    # (our configuration) and the rate limit stay retryable.
    statuses: ClassVar[Mapping[Outcome, int]] = {
        **Adapter.statuses, "unknown_user": 403, "malformed": 403, "bad_amount": 403}

    def verify(self, params: Mapping[str, str], *, headers: Mapping[str, str], raw_query: str) -> Callback:
        txn, snuid, currency = (self._required(params, n) for n in ("id", "snuid", "currency"))
        expected = _md5(f"{txn}:{snuid}:{currency}:{self.config.secret}")
        if not self._same(expected, params.get("verifier")):
            raise PostbackRefused("bad verifier")
        amount = self._amount(params, "currency")
        if amount < 0:
            raise PostbackInvalid("negative currency", "bad_amount")
        return Callback(
            kind="credit", txn_id=txn, user_id=self._user(params, "snuid"),
            offer_external_id=self._optional(params, "offer_id"), amount=amount,
            click_id=self._click(params),
        )
