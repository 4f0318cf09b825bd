"""The columnar bulk path (``bulk_map`` + ``bulk_store``) stores what the per-line path stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select

from exchange.fhir_support import bundle, observation, patient, report
from exchange.support import SENDER
from rhip.exchange import bulk_map, ndjson
from rhip.exchange.models import inbox_messages, observations, reports
from rhip.kernel.crypto import IdentifierVault
from rhip.quality.models import quality_daily, quality_findings

SUBJECT = "Patient/pat-1"
_made = iter(range(1_000_000))


def usual(filler: str, status: str = "final", issued: str = "2024-03-01T10:30:00+08:00",
          values: tuple = (5.6, 7.2)) -> str:  # fmt: skip
    obs = [observation(n, SUBJECT, v) for n, v in enumerate(values, start=1)]
    for o in obs:
        o["fullUrl"] += f"-{filler}-{next(_made)}"  # fullUrls resolve chunk-wide: unique
    dr = report(SUBJECT, [o["fullUrl"] for o in obs], filler=filler, status=status, issued=issued)
    return json.dumps(bundle([dr, *obs]), ensure_ascii=False)


def lines() -> list[str]:
    standalone = observation(9, SUBJECT, 4.0)["resource"]
    standalone["identifier"] = [{"value": "N3"}]  # the same report key as a usual line
    return [
        json.dumps({**patient()["resource"], "id": "pat-1"}),
        usual("N1"),
        usual("N2", "preliminary", "2024-03-01T09:00:00+08:00"),
        usual("N2", "final"),
        usual("N2", "preliminary", "2024-03-01T09:30:00+08:00"),  # stale: not current
        usual("N3"),
        json.dumps(standalone),
        usual("N4").replace('"final"', '"finished"', 1),  # not a DiagnosticReport.status
        usual("N5").replace(SUBJECT, "Patient/nobody"),
        usual("N6", values=(5.6, None)),  # a result without a value
        usual("N1", "corrected", "2024-03-02T10:30:00+08:00"),
        usual("N1"),  # a resend of the first version
        "",
    ]


def snapshot(engine: Engine) -> tuple[list, list]:
    with engine.connect() as conn:
        rs = conn.execute(select(reports)).mappings().all()
        ids = {r["id"]: (r["report_key"], r["version"]) for r in rs}
        rows = sorted(
            tuple(v for k, v in r.items() if k not in ("id", "recorded_at", "inbox_id")) for r in rs
        )
        obs = sorted(
            (ids[o["report_id"]], *(v for k, v in o.items() if k not in ("id", "report_id")))
            for o in conn.execute(select(observations)).mappings().all()
        )
    return rows, obs


def run(engine: Engine, path: Path) -> tuple[list[str], tuple]:
    result = ndjson.import_file(engine, path, SENDER, vault=IdentifierVault("t"), chunk_lines=7)
    out = [str(e) for e in result.errors], result.reports, snapshot(engine)
    with engine.begin() as conn:
        for table in (quality_findings, quality_daily, observations, reports, inbox_messages):
            conn.execute(delete(table))
    return out


@pytest.mark.postgres
def test_columnar_and_per_line_paths_store_the_same_rows(
    engine: Engine, sender_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lab.ndjson"
    path.write_text("\n".join(lines()) + "\n", encoding="utf-8")
    used: list[int] = []
    real = bulk_map.map_chunk

    def counted(chunk, loads):
        mapped = real(chunk, loads)
        used.append(len(mapped))
        return mapped

    monkeypatch.setattr(bulk_map, "map_chunk", counted)
    columnar = run(engine, path)
    assert sum(used) >= 5  # the usual lines did take the columnar path
    monkeypatch.setattr(bulk_map, "map_chunk", lambda chunk, loads: bulk_map.Mapped(
        fallback=list(chunk)))  # fmt: skip
    per_line = run(engine, path)
    assert columnar == per_line
    errors, stored, (rows, _) = columnar
    assert [e.split(":")[1] for e in errors] == ["8", "9", "10"]
    assert stored == 7 and len(rows) == 7  # the resend of N1 (line 12) is not stored twice
    versions = {(r[0], r[1], r[2]) for r in rows}  # key, version, current
    assert "Bundle.entry[0].resource.status" in errors[0] and "Patient/nobody" in errors[1]
    assert ("filler:N3", 2, False) in versions  # the standalone one: stale
    assert ("filler:N2", 2, True) in versions and ("filler:N2", 3, False) in versions
    assert ("filler:N1", 2, True) in versions and ("filler:N1", 1, False) in versions


def test_map_chunk_sends_unusual_lines_to_the_fallback() -> None:
    chunk = [(n, (s + "\n").encode()) for n, s in enumerate(lines(), start=1)]
    mapped = bulk_map.map_chunk(chunk, json.loads)
    assert [n for n, _ in mapped.fallback] == [1, 7, 8, 10, 13]
    assert mapped.reports["key"][:2] == ["filler:N1", "filler:N2"]
    assert mapped.observations["num"][:2] == [5.6, 7.2]
    mapped.drop({0})
    assert [n for n, _ in mapped.fallback] == [1, 2, 7, 8, 10, 13]
    assert mapped.observations["report"][:2] == [0, 0] and len(mapped) == 7
