"""Every context's tables on the one MetaData: import this to see the whole schema.

Used by migration autogeneration and by the test that the migrations match the models.
"""

from __future__ import annotations

import importlib

from rhip.store import metadata

MODEL_MODULES = (
    "rhip.registry.models",
    "rhip.identity.models",
    "rhip.exchange.models",
    "rhip.exchange.recognition_models",
    "rhip.quality.models",
    "rhip.security.models",
    "rhip.audit.models",
    "rhip.metrics.models",
)


def load_all():
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return metadata
