"""Fixtures of the MPI tests: a vault, a small set of institutions and a synthetic population."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.ids import make_credit_code
from rhip.kernel.regions import SHENZHEN
from rhip.synth.people import generate


def make_institutions(n: int = 12) -> pd.DataFrame:
    """``n`` institutions spread over Shenzhen's districts, with valid credit codes."""
    types = np.array(["public_hospital", "private_hospital", "chc", "clinic", "lab"])
    codes = list(SHENZHEN)
    return pd.DataFrame(
        {
            "id": [f"org-{i}" for i in range(n)],
            "credit_code": [make_credit_code(f"12440300MB{i:07d}") for i in range(n)],
            "type": types[np.arange(n) % len(types)],
            "district_code": [codes[i % len(codes)] for i in range(n)],
        }
    )


@pytest.fixture
def vault() -> IdentifierVault:
    return IdentifierVault("test-secret")


@pytest.fixture(scope="session")
def institutions() -> pd.DataFrame:
    return make_institutions()


@pytest.fixture(scope="session")
def population(institutions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate(300, institutions, seed=7)
