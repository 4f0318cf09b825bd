"""The access policy as a full matrix: every role × relationship × action × purpose.

``expected`` restates issue 4's rules as plain code, independently of ``policy.RULES``; every
cell of the matrix must agree with it, and a few cells are pinned by hand as well.
"""

from __future__ import annotations

import itertools

import pytest

from rhip.security.policy import Action, Relationship, decide
from rhip.security.schemas import Principal, Role

PURPOSES = (None, "TREAT", "ETREAT", "BTG", "HPAYMT", "HOPERAT", "PATRQT")
PRINCIPALS = {
    Role.OPERATOR: Principal("u-op", "op", Role.OPERATOR),
    Role.DOCTOR: Principal("u-dr", "dr", Role.DOCTOR, institution_id="org-1"),
    Role.PATIENT: Principal("u-pt", "pt", Role.PATIENT, patient_id="p-1"),
    Role.INTEGRATOR: Principal("u-in", "in", Role.INTEGRATOR, institution_id="org-1"),
}
CELLS = list(itertools.product(Role, Relationship, Action, PURPOSES))


def expected(role: Role, rel: Relationship, action: Action, purpose: str | None):
    """(allowed, status, flagged) per issue 4."""
    refused, hidden = (False, 403, False), (False, 404, False)
    if action is Action.READ_DIRECTORY:
        return True, 200, False
    if role is Role.DOCTOR:
        if action is Action.READ_CLINICAL:
            if purpose in ("ETREAT", "BTG"):
                return True, 200, True  # break-glass: allowed, flagged for review
            if purpose == "TREAT" and rel is Relationship.CARE:
                return True, 200, False
            return refused
        if action is Action.LOOKUP_PATIENT:  # doctors look patients up with a purpose of use
            return (True, 200, False) if purpose is not None else refused
        return refused
    if role is Role.PATIENT:
        if action in (Action.READ_CLINICAL, Action.LOOKUP_PATIENT, Action.READ_OWN_AUDIT):
            return (True, 200, False) if rel is Relationship.SELF else hidden
        return refused
    if role is Role.OPERATOR:
        if action in (Action.READ_STATS, Action.READ_AUDIT, Action.MANAGE, Action.LOOKUP_PATIENT):
            return True, 200, False
        return refused  # never report contents
    # integrator: only submits, and only as its own institution (no lookups)
    if action is Action.SUBMIT:
        return (True, 200, False) if rel is Relationship.OWN_INSTITUTION else refused
    return refused


@pytest.mark.parametrize(("role", "rel", "action", "purpose"), CELLS)
def test_matrix_cell(role: Role, rel: Relationship, action: Action, purpose: str | None) -> None:
    d = decide(PRINCIPALS[role], action, "DiagnosticReport", purpose, rel)
    assert (d.allowed, d.status, d.flagged) == expected(role, rel, action, purpose)
    assert d.reason  # every decision says why
    assert "p-1" not in d.reason and "org-1" not in d.reason  # and names no record


def test_matrix_is_complete_and_mostly_closed() -> None:
    assert len(CELLS) == len(Role) * len(Relationship) * len(Action) * len(PURPOSES) == 896
    allowed = [c for c in CELLS if decide(PRINCIPALS[c[0]], c[2], "x", c[3], c[1]).allowed]
    assert 0 < len(allowed) < len(CELLS) / 2  # deny by default


def test_doctor_reasons_tell_what_to_do() -> None:
    dr = PRINCIPALS[Role.DOCTOR]
    none = decide(dr, Action.READ_CLINICAL, "DiagnosticReport", None, Relationship.CARE)
    assert "X-Purpose-Of-Use" in none.reason
    no_care = decide(dr, Action.READ_CLINICAL, "DiagnosticReport", "TREAT", Relationship.NONE)
    assert "care relationship" in no_care.reason and "ETREAT" in no_care.reason
    payment = decide(dr, Action.READ_CLINICAL, "DiagnosticReport", "HPAYMT", Relationship.CARE)
    assert not payment.allowed and payment.status == 403


def test_lookups_are_for_operators_and_doctors_with_a_purpose() -> None:
    dr, integrator = PRINCIPALS[Role.DOCTOR], PRINCIPALS[Role.INTEGRATOR]
    bare = decide(dr, Action.LOOKUP_PATIENT, "Patient", None, Relationship.NONE)
    assert not bare.allowed and "X-Purpose-Of-Use" in bare.reason
    assert decide(dr, Action.LOOKUP_PATIENT, "Patient", "TREAT", Relationship.NONE).allowed
    for purpose, rel in itertools.product(PURPOSES, Relationship):
        d = decide(integrator, Action.LOOKUP_PATIENT, "Patient", purpose, rel)
        assert (d.allowed, d.status) == (False, 403) and "operators and doctors" in d.reason


def test_operator_never_reads_report_contents_whatever_the_purpose() -> None:
    op = PRINCIPALS[Role.OPERATOR]
    for purpose, rel in itertools.product(PURPOSES, Relationship):
        assert not decide(op, Action.READ_CLINICAL, "DiagnosticReport", purpose, rel).allowed
