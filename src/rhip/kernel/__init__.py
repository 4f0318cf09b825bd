"""Kernel: identifiers, errors, time, settings. Imports nothing else from rhip."""

from rhip.kernel.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MalformedInput,
    NotFound,
    NotSupported,
    RhipError,
    Unauthorized,
)
from rhip.kernel.settings import Settings

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "MalformedInput",
    "NotFound",
    "NotSupported",
    "RhipError",
    "Settings",
    "Unauthorized",
]
