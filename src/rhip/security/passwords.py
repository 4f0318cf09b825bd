"""Password hashing (口令散列) with argon2id, the OWASP-recommended password hash.

>>> h = hash_password("correct horse")
>>> h.startswith("$argon2id$"), verify_password(h, "correct horse"), verify_password(h, "wrong")
(True, True, False)
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi defaults (RFC 9106 "low memory" profile: t=3, m=64 MiB, p=4)
_hasher = PasswordHasher()
# verified against when a username is unknown, so both failures take the same time
_DUMMY = _hasher.hash("rhip: no such user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True when ``password`` matches the stored hash; a malformed hash is a mismatch."""
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def burn_time(password: str) -> None:
    """Spend one verification's time (for unknown usernames: no timing oracle)."""
    verify_password(_DUMMY, password)


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
