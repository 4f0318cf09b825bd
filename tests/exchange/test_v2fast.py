"""The fast splitter reads every field exactly as the python-hl7 tree does (``hl7v2.parse``)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.support import oru
from rhip.exchange import hl7v2, v2fast
from rhip.exchange.errors import ContentError

SEPS = ["|^~\\&", "#$*!@"]
# field text drawn from delimiters, escapes and ordinary/Chinese characters
PIECE = st.sampled_from(["a", "B1", "葡萄糖", " ", "", "\\F\\", "\\S\\", "\\.br\\", "\\X41\\"])
DELIMS = st.sampled_from(["^", "~", "&", ""])


@st.composite
def fields(draw) -> str:
    parts = draw(st.lists(st.tuples(PIECE, DELIMS), max_size=6))
    return "".join(p + d for p, d in parts)


def _same(raw: bytes) -> None:
    env = hl7v2.read_envelope(raw)
    slow, fast = hl7v2.parse(raw, env), v2fast.parse(raw, env)
    assert [s.name for s in slow.segments] == [s.name for s in fast.segments]
    for a, b in zip(slow.segments, fast.segments, strict=True):
        assert a.seq == b.seq
        for f in range(0, len(a.raw) + 2):
            assert a.reps(f) == b.reps(f), (a.name, f)
            for rep in (1, 2, 3):
                for comp in (1, 2, 3):
                    for sub in (1, 2):
                        assert a.get(f, comp, sub, rep) == b.get(f, comp, sub, rep), (a.name, f)
        # the batched reads give what one get() a value gives, on either tree
        wanted = tuple(range(1, len(a.raw) + 2))
        singles = [a.get(f) for f in wanted]
        assert a.gets(*wanted) == b.gets(*wanted) == singles, a.name
        for f in wanted:
            for count in (1, 2, 3, 4):
                expected = [a.get(f, c) for c in range(1, count + 1)]
                assert a.comps(f, count) == b.comps(f, count) == expected, (a.name, f)
                for rep in (2, 3):
                    expected = [a.get(f, c, rep=rep) for c in range(1, count + 1)]
                    assert a.comps(f, count, rep) == b.comps(f, count, rep) == expected, (a.name, f)


@settings(max_examples=150, deadline=None)
@given(st.lists(fields(), min_size=1, max_size=8), st.sampled_from(SEPS))
def test_fast_split_reads_what_python_hl7_reads(values: list[str], seps: str) -> None:
    obx = "OBX|1|ST|" + "|".join(values)
    text = oru("P1", obx=[obx]).translate(str.maketrans("|^~\\&", seps))
    # the drawn field text is in the default delimiters: translate it along with the message
    _same(text.encode())


def test_fast_split_reads_a_whole_oru() -> None:
    _same(oru("P2").encode())
    _same(oru("P3", seps="#$*!@").encode())


NM_PIECE = st.sampled_from(
    [
        "1",
        "5.6",
        "-0.5",
        "x",
        "2345-7",
        "mmol/L",
        "H",
        "F",
        "LN",
        " ",
        "",
        "20240301080000",
        "2024130",
    ]
)
NM_FIELD = st.lists(st.tuples(NM_PIECE, st.sampled_from(["^", ""])), max_size=4).map(
    lambda parts: "".join(p + d for p, d in parts)
)


def _observations(raw: bytes, parse) -> list | str:
    from rhip.exchange.oru import read_oru
    from rhip.exchange.senders import Sender

    env = hl7v2.read_envelope(raw)
    try:
        groups = read_oru(parse(raw, env), Sender("I1", "91440300MA5FXXXX1X", "x"))
    except ContentError as exc:
        return f"{exc.message} @ {exc.location}"
    return [o for g in groups for r in g.reports for o in r.observations]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["1", "", "x", " 2 "]),
    st.sampled_from(["NM", "nm", " NM", "ST"]),
    st.lists(NM_FIELD, min_size=1, max_size=12),
)
def test_the_fast_numeric_obx_read_gives_what_the_general_read_gives(seq, vtype, values):
    """``oru._plain_numeric`` (segments without repetitions, sub-components or escapes) reads
    each OBX field as the general path over python-hl7's tree does, errors included."""
    obx = f"OBX|{seq}|{vtype}|" + "|".join(values)
    raw = oru("P4", obx=[obx]).encode()
    assert _observations(raw, v2fast.parse) == _observations(raw, hl7v2.parse)
