"""Who may see what (访问控制策略): one pure function over one rules table.

``decide(principal, action, resource, purpose, relationship)`` walks ``RULES`` in order; the
first rule whose role, action, relationship and purpose all match gives the decision. Nothing
matching is a refusal. Refusals are 403, or 404 where the existence of a record must not leak (a
patient asking for someone else's). ``relationship`` is computed by the caller
(``service.care_relationship`` for a patient, the submission's institution for ``submit``) so
this module stays free of I/O and is tested as a full matrix.

>>> from rhip.security.schemas import Principal, Role
>>> dr = Principal("u1", "dr", Role.DOCTOR, institution_id="i1")
>>> decide(dr, Action.READ_CLINICAL, "DiagnosticReport", "TREAT", Relationship.CARE).allowed
True
>>> d = decide(dr, Action.READ_CLINICAL, "DiagnosticReport", "ETREAT", Relationship.NONE)
>>> d.allowed, d.flagged
(True, True)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rhip.security.purpose import BREAK_GLASS, TREAT
from rhip.security.schemas import Principal, Role


class Action(enum.StrEnum):
    READ_CLINICAL = "read-clinical"  # 调阅: reports, observations, timeline
    LOOKUP_PATIENT = "lookup-patient"  # MPI: Patient read/search, $ihe-pix, $match
    SUBMIT = "submit"  # send reports and registrations as an institution (FHIR, NDJSON, MLLP)
    READ_STATS = "read-stats"  # coverage, volumes, quality scorecards, view statistics
    READ_AUDIT = "read-audit"  # the access log (AuditEvent)
    READ_OWN_AUDIT = "read-own-audit"  # a patient: who viewed my records and why
    MANAGE = "manage"  # registry changes, inbox retry, MPI review, accounts
    READ_DIRECTORY = "read-directory"  # institution directory (Organization)


class Relationship(enum.StrEnum):
    """How the principal relates to the resource's patient or institution."""

    SELF = "self"  # the patient's own record
    CARE = "care"  # 诊疗关系: the patient is registered at the doctor's institution
    OWN_INSTITUTION = "own-institution"  # submitting as the principal's own institution
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    status: int  # 200 when allowed; 403 or 404 when refused
    reason: str  # safe to show the caller: names no record and no other person
    flagged: bool = False  # allowed but to be reviewed (break-glass)


ANY = None  # a rule field that matches everything
NO_PURPOSE = ""  # matches a request without X-Purpose-Of-Use


@dataclass(frozen=True, slots=True)
class Rule:
    role: Role | None
    action: Action
    relationships: frozenset[Relationship] | None
    purposes: frozenset[str] | None  # codes; NO_PURPOSE for "header absent"
    allow: bool
    reason: str
    status: int = 403
    flagged: bool = False

    def matches(self, role: Role, action: Action, rel: Relationship, purpose: str) -> bool:
        return (
            self.action is action
            and (self.role is None or self.role is role)
            and (self.relationships is None or rel in self.relationships)
            and (self.purposes is None or purpose in self.purposes)
        )


def _r(*items: Relationship) -> frozenset[Relationship]:
    return frozenset(items)


def _p(*codes: str) -> frozenset[str]:
    return frozenset(codes)


D, P, OP, INT = Role.DOCTOR, Role.PATIENT, Role.OPERATOR, Role.INTEGRATOR
A, R = Action, Relationship
NOT_FOUND = "no such record"  # a patient must not learn whether another patient's record exists

RULES: tuple[Rule, ...] = (
    # -- 调阅 clinical reads -------------------------------------------------------------
    Rule(D, A.READ_CLINICAL, _r(R.CARE), _p(TREAT), True, "treatment within a care relationship"),
    Rule(D, A.READ_CLINICAL, ANY, BREAK_GLASS, True, "emergency access (break-glass); flagged "
         "for review", flagged=True),
    Rule(D, A.READ_CLINICAL, ANY, _p(TREAT), False, "TREAT needs a care relationship: the "
         "patient is not registered at your institution (ETREAT for an emergency)"),
    Rule(D, A.READ_CLINICAL, ANY, _p(NO_PURPOSE), False, "a purpose of use is required: send "
         "the X-Purpose-Of-Use header (TREAT, or ETREAT in an emergency)"),
    Rule(D, A.READ_CLINICAL, ANY, ANY, False, "this purpose of use does not permit reading "
         "clinical records; use TREAT or ETREAT"),
    Rule(P, A.READ_CLINICAL, _r(R.SELF), ANY, True, "own records"),
    Rule(P, A.READ_CLINICAL, ANY, ANY, False, NOT_FOUND, status=404),
    Rule(OP, A.READ_CLINICAL, ANY, ANY, False, "operators read statistics and audit, never "
         "clinical record contents"),
    Rule(INT, A.READ_CLINICAL, ANY, ANY, False, "integrators submit data; they do not read "
         "clinical records"),
    # -- 患者主索引 patient identity lookups (Patient read/search, $ihe-pix, $match) ----------
    Rule(D, A.LOOKUP_PATIENT, ANY, _p(NO_PURPOSE), False, "a purpose of use is required: send "
         "the X-Purpose-Of-Use header (TREAT, or ETREAT in an emergency)"),
    Rule(D, A.LOOKUP_PATIENT, ANY, ANY, True, "patient lookup with a purpose of use"),
    Rule(OP, A.LOOKUP_PATIENT, ANY, ANY, True, "MPI stewardship"),
    Rule(INT, A.LOOKUP_PATIENT, ANY, ANY, False, "integrators submit data; patient lookups are "
         "for operators and doctors"),
    Rule(P, A.LOOKUP_PATIENT, _r(R.SELF), ANY, True, "own demographics"),
    Rule(P, A.LOOKUP_PATIENT, ANY, ANY, False, NOT_FOUND, status=404),
    # -- submission: only as the integrator's own institution ------------------------------
    Rule(INT, A.SUBMIT, _r(R.OWN_INSTITUTION), ANY, True, "submission as own institution"),
    Rule(INT, A.SUBMIT, ANY, ANY, False, "an integrator submits only as its own institution"),
    # -- audit and statistics --------------------------------------------------------------
    Rule(OP, A.READ_STATS, ANY, ANY, True, "operator statistics"),
    Rule(OP, A.READ_AUDIT, ANY, ANY, True, "operator audit review"),
    Rule(P, A.READ_OWN_AUDIT, _r(R.SELF), ANY, True, "who viewed my records"),
    Rule(P, A.READ_OWN_AUDIT, ANY, ANY, False, NOT_FOUND, status=404),
    # -- administration and directory ------------------------------------------------------
    Rule(OP, A.MANAGE, ANY, ANY, True, "platform administration"),
    Rule(ANY, A.READ_DIRECTORY, ANY, ANY, True, "institution directory"),
)  # fmt: skip


def decide(
    principal: Principal,
    action: Action,
    resource: str,
    purpose: str | None,
    relationship: Relationship,
) -> Decision:
    """The decision for ``principal`` doing ``action`` on ``resource`` (a type name, for the
    reason text) with ``purpose`` (a PurposeOfUse code or None) and ``relationship``."""
    wanted = purpose or NO_PURPOSE
    for rule in RULES:
        if rule.matches(principal.role, action, relationship, wanted):
            if rule.allow:
                return Decision(True, 200, rule.reason, rule.flagged)
            return Decision(False, rule.status, rule.reason)
    return Decision(False, 403, f"role {principal.role.value} may not {action.value} ({resource})")
