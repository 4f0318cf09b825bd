"""The listener's scorecard tally: counts summed in memory, written together, never lost on a
failed write (statistics only may lag by the flush interval)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine

from exchange.support import add_institution
from rhip.kernel.ids import make_credit_code
from rhip.quality import repo
from rhip.quality.service import RuleCount, ScorecardTally
from rhip.store import make_engine

DAY = dt.date(2024, 3, 1)
pytestmark = pytest.mark.postgres  # sqlite always; PostgreSQL when reachable


def _count(checked: int, passed: int, warnings: int = 0) -> RuleCount:
    return RuleCount(checked=checked, passed=passed, warnings=warnings)


def _rows(engine: Engine, iid: str) -> dict[str, tuple[int, int, int, int]]:
    with engine.connect() as conn:
        return {r["rule_id"]: tuple(r[c] for c in repo.COUNTS)
                for r in repo.daily(conn, iid, DAY, DAY)}  # fmt: skip


@pytest.fixture
def iid(engine: Engine) -> str:
    return add_institution(engine, make_credit_code("12440300MB2F34T10"))


def test_counts_are_summed_in_memory_and_written_on_flush(engine: Engine, iid: str) -> None:
    tally = ScorecardTally(every=3600)
    tally.add(DAY, [(iid, {"unit.known": _count(10, 9, 1)})])
    tally.add(DAY, [(iid, {"unit.known": _count(5, 5), "value.range": _count(3, 2, 1)})])
    assert not tally.due() and _rows(engine, iid) == {}  # not yet: statistics may lag
    tally.flush(engine)
    tally.flush(engine)  # nothing left: adds nothing twice
    assert _rows(engine, iid) == {"unit.known": (15, 14, 1, 0), "value.range": (3, 2, 1, 0)}


def test_a_failed_flush_keeps_the_counts_for_the_next(engine: Engine, iid: str, tmp_path) -> None:
    tally = ScorecardTally(every=0)
    tally.add(DAY, [(iid, {"unit.known": _count(4, 4)})])
    assert tally.due()
    broken = make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    with pytest.raises(Exception):  # noqa: B017  # any database error
        tally.flush(broken)
    tally.add(DAY, [(iid, {"unit.known": _count(1, 0)})])
    tally.flush(engine)
    assert _rows(engine, iid) == {"unit.known": (5, 4, 0, 0)}
