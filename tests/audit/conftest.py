"""Sign-in heavy tests: cheap argon2 parameters (``factories.fast_password_hashing``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _cheap_hashing(fast_password_hashing: None) -> None:
    """Every test here with ``factories.fast_password_hashing`` on."""
