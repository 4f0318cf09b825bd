"""Shapes of inbox data for the API (never an ORM row or the raw bytes as-is)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class InboxMessagePublic(BaseModel):
    id: int
    channel: str
    sender: str
    institution_id: str | None
    peer: str
    control_id: str | None
    message_type: str | None
    status: str
    error: str | None
    ack_code: str | None
    size: int
    truncated: bool
    attempts: int
    duplicate_of: int | None
    received_at: dt.datetime
    processed_at: dt.datetime | None


class RetryRequest(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=1000)


class RetryResultPublic(BaseModel):
    id: int
    status: str
    ack_code: str | None
    error: str | None
