"""Password hashing and access tokens: round trips, and every way a token is refused."""

from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest

from rhip.kernel.errors import Unauthorized
from rhip.kernel.settings import Settings
from rhip.security import tokens
from rhip.security.passwords import hash_password, needs_rehash, verify_password
from rhip.security.schemas import Principal, Role

S = Settings(env="test")
DOCTOR = Principal("u1", "dr.li", Role.DOCTOR, institution_id="org-1", display_name="李医生")


def test_password_hash_is_argon2id_salted_and_verifies_only_the_password() -> None:
    h1, h2 = hash_password("correct horse"), hash_password("correct horse")
    assert h1.startswith("$argon2id$") and h1 != h2  # salted
    assert "correct horse" not in h1
    assert verify_password(h1, "correct horse")
    assert not verify_password(h1, "correct horsE")
    assert not verify_password("not-a-hash", "correct horse")
    assert not needs_rehash(h1)


def test_token_round_trip_keeps_the_principal() -> None:
    patient = Principal("u2", "pt", Role.PATIENT, patient_id="p-1")
    assert tokens.verify(S, tokens.issue(S, DOCTOR)) == DOCTOR
    assert tokens.verify(S, tokens.issue(S, patient)) == patient


def test_expired_token_is_refused_saying_so() -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=9)
    token = tokens.issue(S, DOCTOR, dt.timedelta(hours=8), now=old)
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(S, token)


def test_token_signed_with_another_secret_is_refused() -> None:
    other = Settings(env="test", secret_key="another-secret-of-another-platform")
    with pytest.raises(Unauthorized, match="signature"):
        tokens.verify(S, tokens.issue(other, DOCTOR))


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_forged_claims_break_the_signature() -> None:
    token = tokens.issue(S, DOCTOR)
    header, _, sig = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = ".".join([header, _b64(claims | {"role": "operator"}), sig])
    with pytest.raises(Unauthorized, match="signature") as err:
        tokens.verify(S, forged)
    assert "operator" not in err.value.message and "dr.li" not in err.value.message


def test_unsigned_and_garbage_tokens_are_refused() -> None:
    claims = jwt.decode(tokens.issue(S, DOCTOR), options={"verify_signature": False})
    none_alg = ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(claims), ""])
    for bad in (none_alg, "garbage", "a.b.c", ""):
        with pytest.raises(Unauthorized, match=r"malformed|signature"):
            tokens.verify(S, bad)


def test_token_for_another_audience_or_with_unknown_role_is_refused() -> None:
    key = tokens.signing_key(S)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    base = {"iss": "rhip", "aud": "rhip", "sub": "u1", "iat": now, "exp": now + 60,
            "name": "x", "role": "doctor"}  # fmt: skip
    with pytest.raises(Unauthorized, match="not issued for this platform"):
        tokens.verify(S, jwt.encode(base | {"aud": "elsewhere"}, key, algorithm="HS256"))
    with pytest.raises(Unauthorized, match="malformed"):
        tokens.verify(S, jwt.encode(base | {"role": "root"}, key, algorithm="HS256"))
    no_exp = {k: v for k, v in base.items() if k != "exp"}
    with pytest.raises(Unauthorized, match="malformed"):
        tokens.verify(S, jwt.encode(no_exp, key, algorithm="HS256"))
