"""What support sees of a logged callback's parameters (``shown_params``, ``redacted``): each
scheme's known fields, and any other parameter unless its name or value looks secret; redacted by
default."""

from __future__ import annotations

import pytest

from common.postbacks import REDACTED, SCHEMES, shown_params


def test_every_schemes_known_fields_are_shown_and_its_signature_never() -> None:
    for scheme in SCHEMES.values():
        assert {scheme.txn_param, scheme.user_param, scheme.click_param} <= set(scheme.shown_fields)
        params = {name: "v" for name in (*scheme.shown_fields, *scheme.signature_params)}
        shown = shown_params(params)
        assert {k for k, v in shown.items() if v == REDACTED} == set(scheme.signature_params), scheme
    sample = {"txn_id": "t-1", "user_id": "7", "offer_id": "o1", "amount": "10.00",
              "status": "1", "click_id": "abc", "sig": "f" * 64}
    assert shown_params(sample) == {**sample, "sig": REDACTED}


@pytest.mark.parametrize("name", [
    # the brief's families, in every case and with separators in the way
    "sig", "SIG", "Signature", "x_sig", "s_i_g", "s-i-g", "S.I.G", "hmac", "HMAC_SHA256", "hmacsha1",
    "checksum", "CheckSum", "md5", "MD5_hash", "digest", "body-digest", "key", "apiKey", "API_KEY",
    "api-key", "secretkey", "privateKey", "auth", "Authorization", "authcode", "pwd", "user_pwd",
    "hash", "secure_hash", "secret", "client_secret", "token", "access_token", "verifier",
    "verification", "verify", "password", "passw0rd_hint", "passwd", "pass_word", "sha256", "crc32",
    "nonce", "salt", "credentials",
    # look-alike spellings: compatibility forms, the long s, and letters of other scripts
    # (escaped: fullwidth "sig", the long s, a Cyrillic dze, fullwidth "token" and "Key")
    "\uff53\uff49\uff47", "\u017fig", "\u0455ig", "\uff54\uff4f\uff4b\uff45\uff4e", "\uff2b\uff45\uff59",
    "sig\u200b", "s\u00adig",
    # a name the log bounded (its end replaced by a marker) is judged as the marker leaves it
    "x" * 52 + "…[truncated]",
])
def test_secret_looking_names_are_redacted(name: str) -> None:
    assert shown_params({name: "visible", "offer_id": "o1"}) == {name: REDACTED, "offer_id": "o1"}


@pytest.mark.parametrize("name", ["ref", "campaign", "country", "ip_address", "sub2", "currency_name",
                                  "reward_name", "subid_2", "event"])
def test_other_names_are_shown(name: str) -> None:
    assert shown_params({name: "visible"}) == {name: "visible"}


@pytest.mark.parametrize("value", [
    "0123456789abcdef0123456789abcdef",  # an MD5 under a name that says nothing
    "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
    "dGhpcyBpcyBhIHNpZ25hdHVyZSBvZiBzb21lIGtpbmQhIQ==",  # base64 of 40+ characters
])
def test_a_digest_looking_value_is_redacted_under_any_unknown_name(value: str) -> None:
    assert shown_params({"s1g": value, "zz": value}) == {"s1g": REDACTED, "zz": REDACTED}
    # A known field keeps its value: a network's own ids are shown as sent.
    assert shown_params({"txn_id": value}) == {"txn_id": value}
