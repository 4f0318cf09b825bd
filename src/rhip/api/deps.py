"""Typed dependencies so handlers stay short: ``def read(id: str, engine: EngineDep)``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.settings import Settings


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _vault(request: Request) -> IdentifierVault:
    return request.app.state.vault


EngineDep = Annotated[Engine, Depends(_engine)]
SettingsDep = Annotated[Settings, Depends(_settings)]
VaultDep = Annotated[IdentifierVault, Depends(_vault)]
