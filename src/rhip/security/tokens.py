"""Access tokens (访问令牌): signed JWTs (RFC 7519, HS256) carrying the principal.

The signing key derives from ``Settings.secret_key`` (HKDF, its own label), so rotating the secret
signs everyone out. A token is self-contained: verifying it needs no database read, which keeps
the viewing hot path short; the price is that a disabled account keeps working until its token
expires (``DEFAULT_TTL``).

>>> from rhip.kernel.settings import Settings
>>> s = Settings(env="test")
>>> p = Principal("u1", "dr.li", Role.DOCTOR, institution_id="inst-1")
>>> verify(s, issue(s, p)) == p
True
"""

from __future__ import annotations

import datetime as dt

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rhip.kernel import clock
from rhip.kernel.errors import Unauthorized
from rhip.kernel.settings import Settings
from rhip.security.schemas import Principal, Role

ALGORITHM = "HS256"
ISSUER = AUDIENCE = "rhip"
DEFAULT_TTL = dt.timedelta(hours=8)  # one clinical shift
_LEEWAY = 10  # seconds of clock skew tolerated between nodes


def signing_key(settings: Settings) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"rhip access token")
    return hkdf.derive(settings.secret_key.encode())


def issue(
    settings: Settings,
    principal: Principal,
    ttl: dt.timedelta = DEFAULT_TTL,
    *,
    now: dt.datetime | None = None,
) -> str:
    """A signed token for ``principal`` valid for ``ttl``."""
    at = now or clock.now()
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": principal.user_id,
        "iat": int(at.timestamp()),
        "exp": int((at + ttl).timestamp()),
        "name": principal.username,
        "role": principal.role.value,
        "inst": principal.institution_id,
        "pat": principal.patient_id,
        "dn": principal.display_name,
    }
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM)


def verify(settings: Settings, token: str) -> Principal:
    """The principal of a valid token; Unauthorized saying why (expired, bad signature, …).

    Messages name the kind of failure only, never the claims or the expected values.
    """
    try:
        claims = jwt.decode(
            token,
            signing_key(settings),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=_LEEWAY,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("access token has expired; sign in again") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("access token signature is not valid") from None
    except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
        raise Unauthorized("access token was not issued for this platform") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("access token is malformed") from None
    try:
        return Principal(
            user_id=str(claims["sub"]),
            username=str(claims["name"]),
            role=Role(claims["role"]),
            institution_id=claims.get("inst"),
            patient_id=claims.get("pat"),
            display_name=str(claims.get("dn") or ""),
        )
    except (KeyError, ValueError):
        raise Unauthorized("access token is malformed") from None
