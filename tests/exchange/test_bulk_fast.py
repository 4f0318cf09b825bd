"""The fast decoder (``bulk_fast``) maps a line to exactly the row the exact path maps it to, and
every line it does not take goes to the exact path, errors and all.

"Exact path" here is the import with ``bulk_fast.decode`` refusing every line: ``bulk_map``'s dict
path, and the per-line path for what that leaves.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select

from exchange.fhir_support import bundle, json_paths, observation, patient, report
from exchange.support import SENDER
from rhip.exchange import bulk_fast, bulk_map, ndjson, ndjson_chunk
from rhip.exchange.fhir_validate import FhirInvalid, _parse_utc, _utc_of, parse_datetime
from rhip.exchange.models import inbox_messages, observations, reports
from rhip.kernel import systems
from rhip.kernel.crypto import IdentifierVault
from rhip.quality.models import quality_daily, quality_findings

SUBJECT = f"Patient?identifier={systems.mrn_system(SENDER)}|M1"
LOCAL = f"urn:rhip:cs:local-item:{SENDER}"


def refuse_all(raw: bytes) -> Any:
    raise msgspec.DecodeError("the exact path, for comparison")


# -- lines ---------------------------------------------------------------------------------------
def lab(filler: str, *results: dict, subject: str = SUBJECT, name: str = "", **dr_fields: Any):
    """A usual Bundle line (as rhip's synthetic feed sends them) as a dict; ``None`` removes a
    DiagnosticReport element, ``name`` makes its fullUrls unique."""
    name = name or filler
    for n, o in enumerate(results, start=1):
        o["fullUrl"] = f"urn:uuid:{name}-obs-{n}"
        o["resource"]["subject"] = {"reference": subject}
    dr = report(subject, [o["fullUrl"] for o in results], filler=filler, category="CH")
    dr["fullUrl"] = f"urn:uuid:dr-{name}"
    dr["resource"].update(dr_fields)
    for element in [k for k, v in dr_fields.items() if v is None]:
        del dr["resource"][element]
    return bundle([dr, *results], ident=f"msg-{name}")


def result(value: Any = 5.6, code: str = "GLU", **fields: Any) -> dict:
    o = observation(1, SUBJECT, 5.6, code)
    o["resource"]["code"]["coding"][0]["system"] = LOCAL
    o["resource"]["valueQuantity"] = {"value": value, "unit": "mmol/L"}
    o["resource"].update(fields)
    for name in [k for k, v in fields.items() if v is None]:
        del o["resource"][name]
    return o


def samples() -> list[dict]:
    """Lines of the shapes the fast decoder takes, with every value type and element it maps."""
    rng = {"referenceRange": [{"text": " 阴性 "}]}
    return [
        lab("S1", result(), result(7, "TG", interpretation=[{"coding": [{"code": "h"}]}]),
            result(0.1, "CHOL", referenceRange=[{"low": {"value": -0.0}, "high": {"value": 5}}])),
        lab("S2", result(valueQuantity={"value": 3, "comparator": "<", "code": "U/L"}),
            result(valueQuantity=None, valueString="弱阳性", **rng),
            result(valueQuantity=None, valueInteger=12, referenceRange=[{"low": {"value": 0}}]),
            result(valueQuantity=None, valueCodeableConcept={"coding": [{"code": "POS"}],
                                                             "text": "阳性"}),
            result(valueQuantity=None, referenceRange=[{"high": {"value": 1e-7}}]),
            effectiveDateTime=None, effectivePeriod={"start": "2024-02-29T23:00:00Z"},
            identifier=[{"type": {"coding": [{"code": "PLAC"}]}, "value": "P9"},
                        {"value": "U1"}]),
        lab("S3", result(1e21, "X" * 70, effectiveDateTime=None, effectiveInstant="2024-03-01"),
            code={"coding": [{"code": "24331-1"}], "text": "血脂" * 200}, issued=None,
            category=[{"coding": [{"code": ""}, {"code": "hm"}]}]),
        lab("S4", result(-0.0, referenceRange=[{"low": {"value": 0}, "high": {"value": 5}}]),
            result(2.5, referenceRange=[{"low": {"value": 0.0}, "high": {"value": 5}}])),
    ]  # fmt: skip


ODD = [None, "", " ", "x", "final", "<", 0, -0.0, 1, 1.5, 2**63, 2**64, True, [], {}, [{}],
       {"coding": [{"code": "RAD"}]}, "2024-13-01T00:00:00Z", "2024-03", "Patient/p",
       "urn:uuid:S1-obs-1", {"reference": 3}, [{"coding": [{"code": 7}]}]]  # fmt: skip


def mutated(data, line: dict) -> dict:
    """``line`` with up to three elements replaced, removed or added."""
    line = copy.deepcopy(line)
    for _ in range(data.draw(st.integers(0, 3))):
        path = data.draw(st.sampled_from(json_paths(line)))
        parent = line
        for part in path[:-1]:
            parent = parent[part]
        how = data.draw(st.sampled_from(["replace", "remove", "add"]))
        if how == "add" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(["id", "note", "specimen", "valueBoolean"]))] = 1
        elif how == "remove" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(data.draw(st.sampled_from(ODD)))
    return line


def chunk_of(lines: list[bytes]) -> list[tuple[int, bytes]]:
    return [(n, raw) for n, raw in enumerate(lines, start=1)]


def bothjson_paths(chunk: list[tuple[int, bytes]], monkeypatch) -> tuple[str, str, int]:
    """(repr of the fast path's columns, repr of the exact path's, lines bulk_fast mapped)."""
    taken = []
    real = bulk_fast.report

    def counted(*args):
        out = real(*args)
        taken.append(1)
        return out

    with monkeypatch.context() as m:
        m.setattr(bulk_fast, "report", counted)
        fast = bulk_map.map_chunk(chunk, orjson.loads)
    with monkeypatch.context() as m:
        m.setattr(bulk_fast, "decode", refuse_all)
        exact = bulk_map.map_chunk(chunk, orjson.loads)
    return repr(vars(fast)), repr(vars(exact)), len(taken)


# -- the mapping ---------------------------------------------------------------------------------
def test_samples_take_the_fast_path_to_the_exact_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [json.dumps(s, ensure_ascii=False).encode() + b"\n" for s in samples()]
    fast, exact, taken = bothjson_paths(chunk_of(lines * 2), monkeypatch)
    assert taken == 8 and fast == exact
    mapped = bulk_map.map_chunk(chunk_of(lines), orjson.loads)
    o = mapped.observations
    assert o["reference_range"][2] == "-0-5" and o["reference_range"][-2:] == ["0-5", "0-5"]
    assert o["text"][:2] == ["5.6", "7"] and o["abnormal_flag"][1] == "H"
    assert o["value_type"][3:7] == ["SN", "ST", "NM", "CWE"] and o["unit"][3] == "U/L"
    assert o["reference_range"][4:6] == [" 阴性 ", ">0"] and o["code"][8] == "X" * 64
    assert mapped.reports["key"] == ["filler:S1", "filler:U1", "filler:S3", "filler:S4"]
    assert mapped.reports["collected_at"][1] == dt.datetime(2024, 2, 29, 23, tzinfo=dt.UTC)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_line_the_fast_path_maps_is_mapped_the_same_by_the_exact_path(data) -> None:
    lines = []
    for _ in range(data.draw(st.integers(1, 4))):
        line = mutated(data, data.draw(st.sampled_from(samples())))
        lines.append(json.dumps(line, ensure_ascii=False).encode())
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, exact, _ = bothjson_paths(chunk_of(lines), monkeypatch)
    assert fast == exact


def test_json_the_fast_decoder_reads_differently_goes_to_the_exact_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = json.dumps(samples()[0], ensure_ascii=False).encode()
    odd = [
        base.replace(b'"value": 5.6', b'"value": 123456789012345678901234567890'),  # a float
        base.replace(b'"value": 5.6', b'"value": 18446744073709551615'),  # uint64: an int
        base.replace(b'"value": 5.6', b'"value": 1e400'),  # not JSON to orjson
        base.replace("葡萄糖".encode(), b"\xff\xfe"),  # not UTF-8
        base.replace("葡萄糖".encode(), b"\\ud800"),  # a lone surrogate
        base.replace(b'"status": "final"', b'"status": "final", "status": "bogus"', 1),
        base.replace(b'"status": "final"', b'"status": "bogus", "status": "final"', 1),
        base.replace(b'"resourceType": "Observation"',
                     b'"resourceType": "Observation", "resourceType": "Patient"', 1),
        b"\xef\xbb\xbf" + base, base + b" x", base[:-1], b"", b"\n", b"[]",
    ]  # fmt: skip
    fast, exact, taken = bothjson_paths(chunk_of([base, *odd]), monkeypatch)
    assert fast == exact and taken == 1  # the line itself; every odd one is the exact path's


TIMES = (
    r"\A[0-9٠-٩]{4}-[0-9]{2}-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{1,3})?"
    r"(Z|[+-][0-2][0-9]:[0-6][0-9])?\n?\Z"
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.from_regex(TIMES), st.sampled_from(["0001-01-01T00:00:00+08:00", "2024"])))
def test_the_fast_time_reading_is_the_general_one(text: str) -> None:
    def read(reader):
        try:
            return reader(text)
        except ValueError as exc:  # the message FhirInvalid names
            return str(exc)

    assert repr(read(_utc_of.__wrapped__)) == repr(read(_parse_utc))


def test_a_time_before_year_one_in_utc_is_an_invalid_element() -> None:
    with pytest.raises(FhirInvalid) as raised:
        parse_datetime("0001-01-01T00:00:00", "Observation.effectiveDateTime")
    assert raised.value.message.startswith("Observation.effectiveDateTime: '0001-01-01T00:00:00'")


# -- stored rows ---------------------------------------------------------------------------------
def snapshot(engine: Engine) -> dict[str, list]:
    """Reports, observations and quality findings as stored, without generated ids and times."""
    with engine.connect() as conn:
        rs = conn.execute(select(reports)).mappings().all()
        key = {r["id"]: (r["report_key"], r["version"]) for r in rs}
        skip = ("id", "recorded_at", "inbox_id", "report_id")
        return {
            "reports": sorted(tuple(v for k, v in r.items() if k not in skip) for r in rs),
            "observations": sorted(
                (key[o["report_id"]], *(v for k, v in o.items() if k not in skip))
                for o in conn.execute(select(observations)).mappings()
            ),
            "findings": sorted(
                (key.get(f["report_id"]), *(v for k, v in f.items() if k not in skip))
                for f in conn.execute(select(quality_findings)).mappings()
            ),
            "daily": sorted(tuple(d) for d in conn.execute(select(quality_daily))),
        }


def run(engine: Engine, paths: list[Path], monkeypatch, fast: bool) -> tuple:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(bulk_fast, "decode", refuse_all)
        results = ndjson.import_files(engine, [(p, SENDER) for p in paths],
                                      vault=IdentifierVault("t"), chunk_lines=5)  # fmt: skip
    out = [str(e) for r in results for e in r.errors], sum(r.reports for r in results)
    out += (snapshot(engine),)
    with engine.begin() as conn:
        for table in (quality_findings, quality_daily, observations, reports, inbox_messages):
            conn.execute(delete(table))
    return out


def feed(tmp_path: Path, lines: list[Any]) -> list[Path]:
    """The patient in a file of its own (registered before the lines refer to it), then the
    lines in ``b.ndjson``."""
    paths = [tmp_path / "a.ndjson", tmp_path / "b.ndjson"]
    for path, rows in zip(paths, [[patient()["resource"]], lines], strict=True):
        text = [x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in rows]
        path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return paths


@pytest.mark.postgres
def test_fast_and_exact_paths_store_the_same_rows(
    engine: Engine, sender_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = lab("S1", result(6.2), name="S1b", status="corrected",
                issued="2024-03-02T10:00:00+08:00")  # fmt: skip
    stale = lab("S4", result(1.0), name="S4b", status="preliminary",
                issued="2024-03-01T09:00:00+08:00")  # fmt: skip
    flagged = lab("S5", result(99.0, valueQuantity={"value": 99.0}))  # no unit: a warning
    paths = feed(tmp_path, [*samples(), again, stale, flagged, samples()[1]])
    taken: list[int] = []
    real = bulk_fast.report
    monkeypatch.setattr(bulk_fast, "report", lambda *a: taken.append(1) or real(*a))
    fast = run(engine, paths, monkeypatch, fast=True)
    assert len(taken) == 8  # every line of b.ndjson took the fast path
    exact = run(engine, paths, monkeypatch, fast=False)
    assert fast == exact
    errors, stored, rows = fast
    assert errors == [] and stored == 7  # the resend of S2 (the last line) is not stored twice
    assert len(rows["observations"]) == 14 and rows["findings"]
    versions = {(r[0], r[1], r[2]) for r in rows["reports"]}  # key, version, current
    assert {("filler:S1", 2, True), ("filler:S4", 2, False)} <= versions


@pytest.mark.postgres
def test_a_line_the_fast_decoder_refuses_gets_the_exact_paths_error(
    engine: Engine, sender_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_type = lab("W1", result("5.6"))  # a number as a string
    unknown = lab("W2", result(), subject="urn:uuid:pat-1")  # the Patient is an entry
    unknown["entry"].append(patient())
    bad_time = lab("W3", result(), issued="2024-03-32T10:00:00+08:00")
    nothing = lab("W4", result(valueQuantity={"unit": "mmol/L"}))  # a quantity without value
    paths = feed(tmp_path, [wrong_type, unknown, bad_time, nothing,
                            '{"resourceType": "Bundle", "entry": [1]}', "{not json"])  # fmt: skip
    fast = run(engine, paths, monkeypatch, fast=True)
    assert fast == run(engine, paths, monkeypatch, fast=False)
    errors, stored, _ = fast
    assert stored == 1  # the line whose Patient is an entry of it
    assert errors[0].startswith("b.ndjson:1: ") and errors[0].endswith(
        "(Bundle.entry[1].resource.valueQuantity.value: Input should be a valid number)"
    )
    assert [e.split(":")[1] for e in errors] == ["1", "3", "4", "5", "6"]
    assert "2024-03-32" in errors[1] and "valueQuantity" in errors[2]


def test_lines_sharing_a_full_url_or_named_by_a_fallback_line_are_entangled() -> None:
    one, two, three = (lab(f"E{n}", result()) for n in (1, 2, 3))
    two["entry"][1]["fullUrl"] = one["entry"][1]["fullUrl"]  # and its result reference
    two["entry"][0]["resource"]["result"] = [{"reference": one["entry"][1]["fullUrl"]}]
    odd = {"resourceType": "Observation", "hasMember": [{"reference": "urn:uuid:dr-E3"}]}
    lines = [json.dumps(x).encode() for x in (one, two, three, odd)]
    mapped = bulk_map.map_chunk(chunk_of(lines), orjson.loads)
    assert len(mapped) == 3 and [n for n, _ in mapped.fallback] == [4]
    assert ndjson_chunk._entangled(mapped, ndjson_chunk.parse_chunk(mapped.fallback)) == {0, 1, 2}
    alone = bulk_map.map_chunk(chunk_of(lines[2:3]), orjson.loads)
    assert ndjson_chunk._entangled(alone, []) == set()
