"""The pipelined NDJSON import (stage A of a chunk while the chunk before is written) stores
exactly what the sequential import stores: patients across chunks and files, versions, a failing
chunk, duplicate chunks.

The sequential reference is the same import with every chunk written before the next one is
read (``sequential``); each test also states what it expects outright.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select

from exchange.fhir_support import bundle, observation, patient, report
from exchange.support import SENDER
from exchange.support import resolver as stub_resolver
from rhip.exchange import ndjson
from rhip.exchange.models import inbox_messages, observations, reports
from rhip.kernel import systems
from rhip.kernel.crypto import IdentifierVault
from rhip.quality.models import quality_daily, quality_findings

VAULT = IdentifierVault("t")
_made = iter(range(1_000_000))


def usual(subject: str, filler: str, status: str = "final",
          issued: str = "2024-03-01T10:30:00+08:00") -> str:  # fmt: skip
    """A Bundle line of the usual shape (the columnar path)."""
    obs = [observation(n, subject, v) for n, v in enumerate((5.6, 7.2), start=1)]
    for o in obs:
        o["fullUrl"] += f"-{filler}-{next(_made)}"
    dr = report(subject, [o["fullUrl"] for o in obs], filler=filler, status=status, issued=issued)
    return json.dumps(bundle([dr, *obs]), ensure_ascii=False)


def contained(subject: str, filler: str, status: str = "final",
              issued: str = "2024-03-01T10:30:00+08:00") -> str:  # fmt: skip
    """A DiagnosticReport line with a contained Observation (the per-line path)."""
    dr = report(subject, ["#o1"], filler=filler, status=status, issued=issued)["resource"]
    dr["contained"] = [{**observation(1, subject, 4.2)["resource"], "id": "o1"}]
    return json.dumps(dr, ensure_ascii=False)


def a_patient(local_id: str, mrn: str, other: bool = False) -> str:
    """A Patient line; ``other``: someone else to the MPI (name, sex and birth date differ)."""
    resource = {**patient(mrn, rid=None)["resource"], "id": local_id}
    if other:
        resource.update(name=[{"family": "李", "given": ["四"]}], gender="female",
                        birthDate="1980-05-17")  # fmt: skip
    return json.dumps(resource, ensure_ascii=False)


def by_mrn(mrn: str) -> str:
    return f"Patient?identifier={systems.mrn_system(SENDER)}|{mrn}"


def files(tmp_path: Path, *contents: list[str]) -> list[tuple[Path, str]]:
    out = []
    for n, rows in enumerate(contents):
        path = tmp_path / f"{'abcdef'[n]}.ndjson"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        out.append((path, SENDER))
    return out


def sequential(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk written before the next one is read: the import as it was before pipelining."""
    submit = ndjson._Pipeline.submit

    def then_wait(self, key, write, done):
        submit(self, key, write, done)
        self.drain()

    monkeypatch.setattr(ndjson._Pipeline, "submit", then_wait)


INBOX_COLUMNS = ("message_type", "control_id", "status", "ack_code", "error", "attempts")


def snapshot(engine: Engine) -> dict:
    """Stored rows without generated ids and times: reports, observations, inbox messages."""
    with engine.connect() as conn:
        chunk = {m["id"]: m["control_id"] for m in conn.execute(select(inbox_messages)).mappings()}
        rs = conn.execute(select(reports)).mappings().all()
        key = {r["id"]: (r["report_key"], r["version"]) for r in rs}
        skip = ("id", "recorded_at", "inbox_id")
        inbox = conn.execute(select(inbox_messages).order_by(inbox_messages.c.id)).mappings()
        return {
            "reports": sorted(
                (chunk.get(r["inbox_id"]), *(v for k, v in r.items() if k not in skip)) for r in rs
            ),
            "observations": sorted(
                (key[o["report_id"]], *(v for k, v in o.items() if k not in ("id", "report_id")))
                for o in conn.execute(select(observations)).mappings()
            ),
            "inbox": [
                (*(m[c] for c in INBOX_COLUMNS), chunk.get(m["duplicate_of"])) for m in inbox
            ],
        }


def stored(engine: Engine) -> list[tuple]:
    """(report key, version, current, status, patient) of every stored report, sorted."""
    t = reports.c
    with engine.connect() as conn:
        rows = conn.execute(select(t.report_key, t.version, t.current, t.status, t.patient_id))
        return sorted(tuple(r) for r in rows)


def clear(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (quality_findings, quality_daily, observations, reports, inbox_messages):
            conn.execute(delete(table))


def run(engine: Engine, inputs, chunk_lines: int, resolver=None) -> tuple[list, dict]:
    seen: list[tuple[int, int]] = []
    results = ndjson.import_files(engine, inputs, lambda i, n: seen.append((i, n)), vault=VAULT,
                                  resolver=resolver, chunk_lines=chunk_lines)  # fmt: skip
    for i, (path, _) in enumerate(inputs):  # progress: every chunk of every file, once
        assert sum(n for f, n in seen if f == i) == path.stat().st_size
    summary = [(r.lines, r.chunks, r.duplicate_chunks, r.reports, r.patients,
                [str(e) for e in r.errors]) for r in results]  # fmt: skip
    return summary, snapshot(engine)


def both(engine: Engine, monkeypatch, inputs, chunk_lines: int, resolver=None):
    """The pipelined import, then (on a cleared database) the sequential one: both answers."""
    pipelined = run(engine, inputs, chunk_lines, resolver)
    clear(engine)
    with monkeypatch.context() as m:
        sequential(m)
        reference = run(engine, inputs, chunk_lines, resolver)
    assert pipelined == reference
    return pipelined


@pytest.mark.postgres
def test_patients_of_earlier_chunks_and_files_resolve_as_in_sequence(
    engine: Engine, sender_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = files(
        tmp_path,
        [
            a_patient("pat-1", "M1"), contained("Patient/pat-1", "A1"),  # chunk 1
            usual("Patient/pat-1", "A2"), contained("Patient/pat-1", "A3"),  # chunk 2
            a_patient("pat-2", "M2", other=True), usual("Patient/pat-2", "A4"),  # chunk 3
            usual(by_mrn("M2"), "A5"),  # chunk 4: registered by chunk 3
        ],
        [
            usual(by_mrn("M1"), "B1"), contained(by_mrn("M2"), "B2"),  # file a's patients
            contained("Patient/pat-1", "B3"),  # a local id of file a: not known in file b
        ],
    )  # fmt: skip
    summary, _ = both(engine, monkeypatch, inputs, chunk_lines=2)
    assert [s[:5] for s in summary] == [(7, 4, 0, 5, 2), (3, 2, 0, 2, 0)]
    assert summary[0][5] == [] and len(summary[1][5]) == 1
    assert summary[1][5][0].startswith("b.ndjson:3:") and "Patient/pat-1" in summary[1][5][0]
    patients = {key: who for key, _, _, _, who in stored(engine)}
    assert patients["filler:B1"] == patients["filler:A1"] == patients["filler:A3"]
    assert patients["filler:B2"] == patients["filler:A5"] == patients["filler:A4"]
    assert patients["filler:A1"] != patients["filler:A4"]


@pytest.mark.postgres
def test_a_later_chunk_corrects_an_earlier_one(
    engine: Engine, sender_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = by_mrn("M1")
    inputs = files(
        tmp_path,
        [
            a_patient("pat-1", "M1"), usual("Patient/pat-1", "N1"),  # chunk 1
            usual(subject, "N1", "corrected", "2024-03-02T10:30:00+08:00"),
            contained(subject, "N2"),  # chunk 2
            usual(subject, "N1", "preliminary", "2024-03-01T09:00:00+08:00"),  # stale
            contained(subject, "N2", "corrected", "2024-03-02T11:00:00+08:00"),  # chunk 3
        ],
        [usual(subject, "N1", "amended", "2024-03-03T10:30:00+08:00")],
    )  # fmt: skip
    summary, _ = both(engine, monkeypatch, inputs, chunk_lines=2)
    assert [s[3] for s in summary] == [5, 1]
    assert [r[:4] for r in stored(engine)] == [
        ("filler:N1", 1, False, "final"), ("filler:N1", 2, False, "corrected"),
        ("filler:N1", 3, False, "preliminary"), ("filler:N1", 4, True, "corrected"),
        ("filler:N2", 1, False, "final"), ("filler:N2", 2, True, "corrected"),
    ]  # fmt: skip


class _Unstorable:
    """A golden id that no database column takes: the chunk's transaction fails (stage B)."""


def breaking_resolver(conn, reg) -> str:
    if reg.identifiers[0].value == "BROKEN":
        return _Unstorable()  # type: ignore[return-value]
    return stub_resolver(conn, reg)


@pytest.mark.postgres
def test_a_chunk_that_cannot_be_written_is_kept_failed_and_the_rest_applied(
    engine: Engine, sender_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = files(
        tmp_path,
        [
            a_patient("pat-1", "M1"), contained("Patient/pat-1", "F1"),  # chunk 1
            a_patient("pat-x", "BROKEN"), contained("Patient/pat-x", "F2"),  # chunk 2: fails
            contained("Patient/pat-1", "F3"), usual("Patient/pat-1", "F4"),  # chunk 3
        ],
        [contained("Patient/pat-1", "F5")],  # not known in file b: a line error
    )  # fmt: skip
    summary, rows = both(engine, monkeypatch, inputs, chunk_lines=2, resolver=breaking_resolver)
    (lines, chunks, _, written, _, errors), _ = summary
    assert (lines, chunks, written) == (6, 3, 3)
    assert len(errors) == 1 and errors[0].startswith("a.ndjson:3: lines 3-4 not applied:")
    assert [r[0] for r in stored(engine)] == ["filler:F1", "filler:F3", "filler:F4"]
    chunk_rows = [m[1:5] for m in rows["inbox"] if m[0] == "ndjson"]
    assert [m[:2] for m in chunk_rows] == [
        ("a.ndjson#1-2", "processed"), ("a.ndjson#3-4", "failed"),
        ("a.ndjson#5-6", "processed"), ("b.ndjson#1-1", "processed"),
    ]  # fmt: skip
    assert chunk_rows[1][2] == "5x" and chunk_rows[1][3].startswith("chunk not applied:")


@pytest.mark.postgres
def test_a_chunk_sent_again_in_the_next_file_is_a_duplicate(
    engine: Engine, sender_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = [a_patient("pat-1", "M1"), usual("Patient/pat-1", "D1")]
    again = [usual(by_mrn("M1"), "D2"), contained(by_mrn("M1"), "D3")]
    other = [contained(by_mrn("M1"), "D4"), "{not json"]
    # b's first chunk is a's last: read while that one is still being written
    inputs = files(tmp_path, first + again, again + other, again)
    summary, rows = both(engine, monkeypatch, inputs, chunk_lines=2)
    assert [s[:4] for s in summary] == [(4, 2, 0, 3), (4, 2, 1, 1), (2, 1, 1, 0)]
    errors = [e for s in summary for e in s[5]]
    assert len(errors) == 1 and errors[0].startswith("b.ndjson:4: not valid JSON")
    duplicates = [(m[1], m[6]) for m in rows["inbox"] if m[2] == "duplicate"]
    assert duplicates == [("b.ndjson#1-2", "a.ndjson#3-4"), ("c.ndjson#1-2", "a.ndjson#3-4")]
    assert [r[0] for r in stored(engine)] == ["filler:D1", "filler:D2", "filler:D3", "filler:D4"]
