"""Security (安全): accounts, sign-in tokens, purpose of use and the access policy."""

from rhip.security.policy import Action, Decision, Relationship, decide
from rhip.security.schemas import Principal, Role, UserCreate, UserPublic
from rhip.security.service import (
    DEMO_ACCOUNTS,
    authenticate,
    care_relationship,
    create_demo_users,
    create_user,
    list_users,
    submitter_relationship,
)

__all__ = [
    "DEMO_ACCOUNTS",
    "Action",
    "Decision",
    "Principal",
    "Relationship",
    "Role",
    "UserCreate",
    "UserPublic",
    "authenticate",
    "care_relationship",
    "create_demo_users",
    "create_user",
    "decide",
    "list_users",
    "submitter_relationship",
]
