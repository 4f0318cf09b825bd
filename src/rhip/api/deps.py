"""Typed dependencies so handlers stay short: ``def read(id: str, engine: EngineDep,
user: DirectoryReader)``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from rhip.api.auth import CurrentUser, PurposeOfUse, permit
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.settings import Settings
from rhip.security.policy import Action
from rhip.security.schemas import Principal


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _vault(request: Request) -> IdentifierVault:
    return request.app.state.vault


EngineDep = Annotated[Engine, Depends(_engine)]
SettingsDep = Annotated[Settings, Depends(_settings)]
VaultDep = Annotated[IdentifierVault, Depends(_vault)]


# Who may call: the signed-in principal, narrowed by the policy (``rhip.security.policy``).
DirectoryReader = Annotated[Principal, Depends(permit(Action.READ_DIRECTORY))]  # anyone signed in
StatsReader = Annotated[Principal, Depends(permit(Action.READ_STATS))]  # operators
Administrator = Annotated[Principal, Depends(permit(Action.MANAGE))]  # operators

__all__ = [
    "Administrator",
    "CurrentUser",
    "DirectoryReader",
    "EngineDep",
    "PurposeOfUse",
    "SettingsDep",
    "StatsReader",
    "VaultDep",
]
