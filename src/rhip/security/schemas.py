"""Shapes of the security context: roles, the signed-in principal, account in/out shapes."""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass

from pydantic import BaseModel, Field, model_validator


class Role(enum.StrEnum):
    """The four kinds of account (角色)."""

    OPERATOR = "operator"  # 平台运维 platform operator (health commission IT)
    DOCTOR = "doctor"  # 医生, bound to an institution
    PATIENT = "patient"  # 患者/居民, bound to a golden patient
    INTEGRATOR = "integrator"  # 机构接入方 institution integrator, bound to an institution


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request (当前用户): what a verified token or a login says."""

    user_id: str
    username: str
    role: Role
    institution_id: str | None = None
    patient_id: str | None = None
    display_name: str = ""


USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")


class UserCreate(BaseModel):
    """A new account; the binding its role needs is required, any other binding refused."""

    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=8, max_length=256, repr=False)
    role: Role
    institution_id: str | None = None
    patient_id: str | None = None
    display_name: str = Field("", max_length=100)

    @model_validator(mode="after")
    def _binding(self) -> UserCreate:
        if not USERNAME.match(self.username):
            raise ValueError("username: letters, digits and . _ @ - only, 2 to 64 characters")
        needs_inst = self.role in (Role.DOCTOR, Role.INTEGRATOR)
        if needs_inst != (self.institution_id is not None):
            raise ValueError(
                f"institution_id is {'required' if needs_inst else 'not allowed'} "
                f"for role {self.role.value}"
            )
        needs_patient = self.role is Role.PATIENT
        if needs_patient != (self.patient_id is not None):
            raise ValueError(
                f"patient_id is {'required' if needs_patient else 'not allowed'} "
                f"for role {self.role.value}"
            )
        return self


class UserPublic(BaseModel):
    """An account as listed: never the password hash."""

    id: str
    username: str
    role: Role
    institution_id: str | None
    patient_id: str | None
    display_name: str
    active: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None


class TokenResponse(BaseModel):
    """OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int  # seconds
