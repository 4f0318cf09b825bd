"""The online matcher (在线匹配): who is this registration, decided one at a time in arrival order.

An in-memory blocking index maps cheap keys to the registrations already seen, so an arriving
registration is scored against a handful of candidates rather than the whole index:

* resident-ID hash and other document hashes (passport, permits, insurance card, MRN) → person:
  an exact hit is a *deterministic* link;
* birth date + sex, name pinyin + birth year (survives a swapped day/month), phone → registrations:
  their persons are scored with Fellegi–Sunter weights (``scoring.MatchParameters``).

Outcomes: ``deterministic`` / ``auto`` (link), ``review`` (a provisional person of its own plus a
queue item naming the candidate), ``new``. Two people with different valid resident IDs are never
linked probabilistically. The index holds internal integer ids; ``service`` maps them to rows.

>>> m = OnlineMatcher()
>>> a = ("张伟", "zhangwei", "1990-03-12", "male", "13800138000", "", "440305")
>>> m.match(a, rid="h1").outcome, m.match(a).outcome
('new', 'auto')
>>> m.match(a, rid="h2").outcome  # same name, date and phone but another resident ID
'new'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rhip.identity.scoring import BIRTH, PHONE, PINYIN, SEX, MatchParameters

DETERMINISTIC, AUTO, REVIEW, NEW = "deterministic", "auto", "review", "new"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str  # deterministic | auto | review | new
    person: int  # the person the registration now belongs to
    weight: float | None = None  # best FS weight among candidates (None: deterministic or none)
    candidate: int | None = None  # for review: the person a reviewer may link it to
    registration: int = -1  # the registration's index in the matcher


def block_keys(rec: tuple) -> list[str]:
    """Blocking keys (分块键) of a match record; each names a small set of earlier registrations."""
    keys = []
    born, pinyin = rec[BIRTH], rec[PINYIN]
    if born:
        keys.append(f"b{born}{rec[SEX]}")
        if pinyin:
            keys.append(f"n{pinyin}{born[:4]}")
    elif pinyin:
        keys.append(f"n{pinyin}")
    if rec[PHONE]:
        keys.append(f"p{rec[PHONE]}")
    return keys


class OnlineMatcher:
    """Blocking index plus decisions; ``match`` decides and records one registration."""

    def __init__(self, params: MatchParameters | None = None, block_cap: int = 200):
        self.params = params or MatchParameters.default()
        self.block_cap = block_cap  # newest registrations kept per key: bounds work per arrival
        self.records: list[tuple] = []
        self.person_of: list[int] = []  # registration → person
        self.person_rid: list[str] = []  # person → resident-ID hash ("" if none yet)
        self.golden: list[int] = []  # person → registration its golden record is drawn from
        self.blocks: dict[str, list[int]] = {}
        self.rid_index: dict[str, int] = {}
        self.doc_index: dict[str, int] = {}

    @property
    def n_persons(self) -> int:
        return len(self.person_rid)

    def new_person(self, rid: str = "") -> int:
        self.person_rid.append(rid)
        self.golden.append(-1)
        if rid:
            self.rid_index[rid] = len(self.person_rid) - 1
        return len(self.person_rid) - 1

    def decide(
        self, rec: tuple, rid: str = "", docs: Iterable[str] = ()
    ) -> tuple[str, int, float | None]:
        """(outcome, person or -1, weight) for ``rec`` without changing the index."""
        if rid and rid in self.rid_index:
            return DETERMINISTIC, self.rid_index[rid], None
        for doc in docs:
            person = self.doc_index.get(doc)
            if person is not None and (not rid or self.person_rid[person] in ("", rid)):
                return DETERMINISTIC, person, None
        best_person, best = -1, None
        seen: set[int] = set()
        weigh, person_of, person_rid = self.params.weight, self.person_of, self.person_rid
        for key in block_keys(rec):
            for reg in self.blocks.get(key, ()):
                if reg in seen:
                    continue
                seen.add(reg)
                person = person_of[reg]
                if rid and person_rid[person] and person_rid[person] != rid:
                    continue  # two valid resident IDs: two people
                w = weigh(rec, self.records[reg])
                if best is None or w > best:
                    best_person, best = person, w
        if best is None or best < self.params.review:
            return NEW, -1, best
        return (AUTO if best >= self.params.auto_link else REVIEW), best_person, best

    def scores(self, rec: tuple, rid: str = "", docs: Iterable[str] = ()) -> dict[int, float]:
        """Best weight per candidate person (``inf`` for a deterministic hit), for ``$match``."""
        outcome, person, _ = self.decide(rec, rid, docs)
        found: dict[int, float] = {person: float("inf")} if outcome == DETERMINISTIC else {}
        for key in block_keys(rec):
            for reg in self.blocks.get(key, ()):
                p = self.person_of[reg]
                if found.get(p) == float("inf") or (
                    rid and self.person_rid[p] and self.person_rid[p] != rid
                ):
                    continue
                w = self.params.weight(rec, self.records[reg])
                if w > found.get(p, float("-inf")):
                    found[p] = w
        return found

    def add(self, rec: tuple, person: int, rid: str = "", docs: Iterable[str] = ()) -> int:
        """Record ``rec`` as a registration of ``person`` in the index; returns its index."""
        reg = len(self.records)
        self.records.append(rec)
        self.person_of.append(person)
        cap = self.block_cap
        for key in block_keys(rec):
            members = self.blocks.setdefault(key, [])
            members.append(reg)
            if len(members) > cap:
                del members[0]
        for doc in docs:
            self.doc_index.setdefault(doc, person)
        if rid and not self.person_rid[person]:
            self.person_rid[person] = rid
            self.rid_index[rid] = person
            self.golden[person] = reg  # an ID-backed registration becomes the golden source
        if self.golden[person] < 0:
            self.golden[person] = reg
        return reg

    def match(self, rec: tuple, rid: str = "", docs: Iterable[str] = ()) -> Decision:
        """Decide for one arriving registration and record it (a new person unless linked)."""
        docs = tuple(docs)
        outcome, person, weight = self.decide(rec, rid, docs)
        candidate = None
        if outcome in (NEW, REVIEW):
            candidate = person if outcome == REVIEW else None
            person = self.new_person(rid)
        reg = self.add(rec, person, rid, docs)
        return Decision(outcome, person, weight, candidate, reg)

    def move(self, from_person: int, to_person: int) -> None:
        """Reflect a merge: every registration of ``from_person`` now belongs to ``to_person``."""
        for reg, person in enumerate(self.person_of):
            if person == from_person:
                self.person_of[reg] = to_person
        rid = self.person_rid[from_person]
        if rid and not self.person_rid[to_person]:
            self.person_rid[to_person] = rid
        if rid:
            self.rid_index[rid] = to_person
        for doc, person in self.doc_index.items():
            if person == from_person:
                self.doc_index[doc] = to_person
