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
    "import_optional",
]


def import_optional(name: str):
    """Import ``name``, or None when that module (or its package) does not exist.

    For parts of rhip that an installation may lack (a context not shipped); an ImportError
    raised *inside* an existing module still propagates.
    """
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise
