"""Registry test helpers: valid credit codes and institution payloads, as fixtures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rhip.kernel.ids import make_credit_code


def _code(n: int) -> str:
    return make_credit_code(f"12440300{n:08d}X"[:17])


def _payload(n: int = 1, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "credit_code": _code(n),
        "name": f"深圳市测试医院{n}",
        "type": "public_hospital",
        "district_code": "440304",
        "grade": "三级甲等",
        "connection_status": "connected",
        "feeds": ["lab", "adt"],
        "functions": ["viewing"],
        "allow_cidrs": ["127.0.0.0/8", "::1/128"],
    }
    return data | over


@pytest.fixture
def credit_code() -> Callable[[int], str]:
    """A valid, distinct GB 32100 credit code per number."""
    return _code


@pytest.fixture
def payload() -> Callable[..., dict[str, Any]]:
    """A valid institution payload; keyword arguments override fields."""
    return _payload
