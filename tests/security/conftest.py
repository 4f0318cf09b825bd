"""Cheap argon2 parameters for tests: the real ones (64 MiB, 3 passes) cost ~50 ms a hash, and
these tests make and sign in many accounts. What is tested, the argon2id scheme and the
verification logic, is the same."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from rhip.security import passwords


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", cheap)
    monkeypatch.setattr(passwords, "_DUMMY", cheap.hash("rhip: no such user"))
