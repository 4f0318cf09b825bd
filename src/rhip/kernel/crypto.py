"""Protection of personal identifiers: a keyed hash for matching, an encrypted value for display.

Both keys derive from ``Settings.secret_key`` (HKDF with distinct labels), so one secret set by the
operator protects the whole database; losing it makes stored identifiers unreadable, by design.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(secret: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret.encode())


class IdentifierVault:
    """Keyed hash (HMAC-SHA256) and Fernet encryption of identifier values.

    >>> v = IdentifierVault("k")
    >>> v.hash("urn:oid:2.16.156.10011.1.3", "X") == v.hash("urn:oid:2.16.156.10011.1.3", "X")
    True
    >>> v.decrypt(v.encrypt("440304199001011234"))
    '440304199001011234'
    """

    def __init__(self, secret: str):
        self._mac_key = _derive(secret, b"rhip identifier hash")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, b"rhip identifier enc")))

    def hash(self, system: str, value: str) -> str:
        msg = f"{system}|{value}".encode()
        return hmac.new(self._mac_key, msg, hashlib.sha256).hexdigest()[:40]

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()
