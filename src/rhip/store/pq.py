"""A few statements in one round trip straight through libpq, for the listener's group commit.

psycopg's cursors adapt parameters and results in Python: ~30–60 µs of CPU a statement on this
machine, plus ~35 µs for an array parameter, while the same statements through its libpq wrapper
(``psycopg.pq``) cost a few µs. A group commit of two HL7 messages runs about ten statements, so
that overhead was a third of the listener's CPU per message. ``Pipeline`` sends statements with
text parameters in libpq's pipeline mode and returns each one's rows as text; the caller knows the
columns' types. It is used only where the values are plain (str, int, float, bool, aware
datetime, date, bytes, lists of str) and the statement count is small; everything else goes
through psycopg as usual. ``JsonRows`` puts many rows of one table in such a pipeline as a
single statement (COPY cannot be pipelined), so that a batch's writes and its COMMIT share one
round trip; ``Pipeline.generic_plans`` keeps the server from planning every execution again.

An error in any statement raises the psycopg exception for its SQLSTATE (``IntegrityError`` for a
unique violation …) after the pipeline is drained, with the transaction left aborted for the
caller to roll back. ``InvalidSqlStatementName`` means the server forgot the prepared statements
(psycopg deallocates all of a connection's after a rollback): they are prepared again next time,
and the caller may simply retry.
"""

from __future__ import annotations

import datetime as dt
import math
import weakref
import zlib
from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg
from psycopg import pq
from psycopg.waiting import Wait
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

_STATUS = pq.ExecStatus
_BINARY, _TEXT = 1, 0


def dump(value: Any) -> bytes | None:
    """A parameter's text form (PostgreSQL input syntax); bytes are sent in binary (bytea)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime for a timestamptz parameter")
        return value.isoformat().encode()
    if isinstance(value, (dt.date, bytes)):
        return value.isoformat().encode() if isinstance(value, dt.date) else value
    if isinstance(value, (list, tuple)):
        return text_array(value)
    raise TypeError(f"no text form for {type(value).__name__}")


def numbered(sql: str) -> bytes:
    """A statement with psycopg's ``%s`` placeholders in libpq's form (``$1``, ``$2`` …)."""
    parts = sql.split("%s")
    return ("".join(f"{a}${n}" for n, a in enumerate(parts[:-1], start=1)) + parts[-1]).encode()


def text_array(values: Sequence[str]) -> bytes:
    """``{"a","b"}``: a text[] literal, every element quoted and escaped."""
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return ("{" + ",".join(f'"{v}"' for v in quoted) + "}").encode()


class JsonRows:
    """Many rows of ``table`` (values in ``columns`` order) in one statement of a pipeline: the
    rows as one JSON array of arrays, unpacked by the server (``jsonb_array_elements``).

    It stands in for COPY, which libpq cannot pipeline, and for one INSERT a row, each of which
    costs the server an executor start and the client a parameter per value: msgspec encodes a
    batch's rows in C, floats in their shortest exact form (the server reads back the same
    doubles) and bytes in base64 (decoded by the server). Values as ``bulk_insert(binary=True)``
    takes them: str, int, float, bool, aware datetime, date, bytes, None."""

    def __init__(self, table: Table, columns: Sequence[str]):
        dialect = postgresql.dialect()
        exprs, self._floats, self._instants = [], [], []
        for n, name in enumerate(columns):
            kind = table.c[name].type
            python = getattr(kind, "impl_instance", kind).python_type  # a TypeDecorator's own
            if python is str:
                exprs.append(f"r->>{n}")
            elif python is bytes:
                exprs.append(f"decode(r->>{n}, 'base64')")
            else:
                exprs.append(f"(r->>{n})::{kind.compile(dialect=dialect)}")
            if python is float:
                self._floats.append(n)
            elif python is dt.datetime:
                self._instants.append(n)
        names = ", ".join(f'"{c}"' for c in columns)
        self.sql = (
            f'INSERT INTO "{table.name}" ({names}) SELECT {", ".join(exprs)} '
            "FROM jsonb_array_elements($1::jsonb) AS r"
        ).encode()
        self.name = b"rhip_json_%s_%08x" % (table.name.encode(), zlib.crc32(self.sql))

    def encode(self, rows: Sequence[Sequence[Any]]) -> str | None:
        """The rows' JSON; None if a float would not come back the same (an infinity or NaN
        has no JSON form, and jsonb keeps numbers as numeric, which has no -0.0): COPY stores
        them exactly. A naive datetime raises, as ``dump`` does."""
        at = self._floats
        floats = [v for row in rows for n in at if (v := row[n]) is not None]
        if floats and not _all_exact(floats):
            return None
        at = self._instants
        if None in [v.tzinfo for row in rows for n in at if (v := row[n]) is not None]:
            raise ValueError("naive datetime for a timestamptz column")
        return msgspec.json.encode(rows).decode()

    def send(self, pipe: Pipeline, rows: Sequence[Sequence[Any]]) -> bool:
        """Queue the insert of ``rows`` in ``pipe`` (nothing for no rows); False if their JSON
        cannot carry them (``encode``), for the caller to COPY them."""
        if not rows:
            return True
        doc = self.encode(rows)
        if doc is None:
            return False
        pipe.send(self.name, self.sql, [doc], rows=False)
        return True


def _all_exact(values: list[float]) -> bool:
    """Every value survives JSON and jsonb's numeric: finite, and not -0.0. (One sum in C
    first: it is finite when every value is, unless the sum itself overflows.)"""
    try:
        finite = math.isfinite(math.fsum(values))
    except OverflowError:
        finite = False
    if finite and 0.0 not in values:  # -0.0 == 0.0: a zero's sign is looked at below
        return True
    return all(math.isfinite(v) and (v != 0 or math.copysign(1, v) > 0) for v in values)


_GENERIC_PLANS = b"SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"

# server-side prepared statements made by ``Pipeline`` on each libpq connection
_PREPARED: weakref.WeakKeyDictionary[pq.PGconn, set[bytes]] = weakref.WeakKeyDictionary()


class Pipeline:
    """Statements queued with ``send``, sent and answered in one round trip by ``run``.

    Each statement is prepared on the server the first time a connection sends it (by its
    ``name``), so the server parses and plans it once per connection, as psycopg does for a
    statement it sees often."""

    def __init__(self, driver: psycopg.Connection):
        self._conn = driver
        self._pg = driver.pgconn
        # per queued command: True (the caller's statement), False (one whose rows are not
        # returned), a name (a statement's prepare), None (BEGIN, COMMIT)
        self._kept: list[bool | bytes | None] = []
        self._prepared = _PREPARED.setdefault(self._pg, set())

    def begin_if_idle(self) -> bool:
        """Open a transaction unless one is open (psycopg commits it as its own); whether it
        did."""
        if self._pg.transaction_status != pq.TransactionStatus.IDLE:
            return False
        self._start()
        self._pg.send_query_params(b"BEGIN", None)
        self._kept.append(None)
        return True

    def commit(self) -> None:
        """Queue COMMIT: the transaction ends in this round trip. If a statement before it
        fails, the server skips it and the transaction stays aborted, for the caller to roll
        back (``run`` raises the statement's error)."""
        self._start()
        self._pg.send_query_params(b"COMMIT", None)
        self._kept.append(None)

    def generic_plans(self) -> None:
        """The open transaction's prepared statements run their generic plan.

        Our statements take arrays (``unnest($1::text[])``): for a short array the planner's
        estimate of a custom plan is always below the generic plan's (which assumes 100
        elements), so PostgreSQL would plan every execution again, ~15% of the backend's CPU
        in a group commit. The setting ends with the transaction."""
        self.send(b"rhip_generic_plans", _GENERIC_PLANS, rows=False)

    def send(self, name: bytes, sql: bytes, params: Sequence[Any] = (), rows=True) -> None:
        """Queue the statement ``sql`` (``$1``… placeholders), prepared as ``name``; ``rows``
        False: its result is not among ``run``'s."""
        self._start()
        if name not in self._prepared:
            self._pg.send_prepare(name, sql)
            self._kept.append(name)
            self._prepared.add(name)  # taken back in ``run`` if the server did not make it
        values = [dump(v) for v in params]
        formats = [_BINARY if isinstance(v, bytes) else _TEXT for v in params]
        self._pg.send_query_prepared(name, values or None, param_formats=formats or None)
        self._kept.append(rows)

    def _start(self) -> None:
        if not self._kept:
            self._pg.enter_pipeline_mode()

    def run(self) -> list[list[tuple[str | None, ...]]]:
        """Send everything queued and wait: each statement's rows (text values, None for NULL)."""
        pg = self._pg
        pg.pipeline_sync()
        if pg.flush():  # the socket's buffer was full: wait until it takes the rest
            self._conn.wait(_flushed(pg))
        out: list[list[tuple[str | None, ...]]] = []
        error = None
        made: set[bytes] = set()  # prepared by this round trip
        kept = iter(self._kept)
        while True:
            if pg.is_busy():  # wait with the GIL released (PQgetResult would hold it)
                self._conn.wait(_answered(pg))
            result = pg.get_result()
            if result is None:
                continue  # the end of one statement's results
            if result.status == _STATUS.PIPELINE_SYNC:
                break
            tag, ok = next(kept), result.status in (_STATUS.TUPLES_OK, _STATUS.COMMAND_OK)
            if result.status == _STATUS.FATAL_ERROR and error is None:
                error = psycopg.errors.error_from_result(result, encoding="utf-8")
            if isinstance(tag, bytes):
                if ok:
                    made.add(tag)
                else:  # a prepare skipped after an error, or failed
                    self._prepared.discard(tag)
            elif tag is True and ok:
                out.append(_rows(result))
        pg.exit_pipeline_mode()
        self._kept = []
        if isinstance(error, psycopg.errors.InvalidSqlStatementName):
            # psycopg sends DEALLOCATE ALL after a rollback when it has prepared statements of
            # its own: ours went with them (but for those made in this round trip). Prepared
            # again on next use; the caller retries.
            self._prepared.clear()
            self._prepared.update(made)
        if error is not None:
            raise error
        return out


def _rows(result: pq.PGresult) -> list[tuple[str | None, ...]]:
    width = result.nfields
    return [
        tuple(
            None if (v := result.get_value(r, c)) is None else bytes(v).decode()
            for c in range(width)
        )
        for r in range(result.ntuples)
    ]


def _flushed(pg: pq.PGconn):
    """A psycopg wait generator: until libpq's output buffer is sent."""
    while True:
        yield Wait.W
        if not pg.flush():
            return


def _answered(pg: pq.PGconn):
    """A psycopg wait generator: until a result can be read without blocking."""
    while True:
        yield Wait.R
        pg.consume_input()
        if not pg.is_busy():
            return


def timestamp(text: str | None) -> dt.datetime | None:
    """A timestamptz's text output (``2024-03-01 02:30:00+00``) as an aware datetime."""
    return None if text is None else dt.datetime.fromisoformat(text)
