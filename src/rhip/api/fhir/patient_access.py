"""Who may look a patient up and what they see (患者主索引访问控制), for ``rhip.api.fhir.patient``.

Lookups are decided by the policy (``rhip.api.auth.lookup_decision`` → ``LOOKUP_PATIENT`` rules)
and every one, allowed or refused, is audited (one event per patient returned). Two refinements
for patient accounts, which the policy's "own record" rule cannot see from a search: they read
only by id (``GET /fhir/Patient/<id>`` or ``?_id=``), and ``$ihe-pix``/``$match`` are not theirs.
Operators see a Patient in full (MPI stewardship); everyone else with resident IDs and phone
numbers masked.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import Engine

from rhip.api.auth import lookup_decision, record_access, refusal
from rhip.identity.schemas import Identifier, RegistrationCreate
from rhip.kernel import systems
from rhip.kernel.errors import InvalidInput
from rhip.kernel.ids import mask
from rhip.registry import get as get_institution
from rhip.security.policy import Action, Decision, Relationship, decide
from rhip.security.schemas import Principal, Role
from rhip.security.service import care_relationship, submitter_relationship


def allow_lookup(
    request: Request, user: Principal, purpose: str | None, subtype: str, *, patients=True
) -> Decision:
    """The caller's role and purpose allow MPI lookups at all; else refused and audited.
    ``patients=False``: an operation patient accounts may not use (``$ihe-pix``, ``$match``)."""
    if user.role is Role.PATIENT and not patients:
        decision = Decision(False, 403, "this operation is for operators and doctors")
    else:
        rel = Relationship.SELF if user.role is Role.PATIENT else Relationship.NONE
        decision = lookup_decision(user, purpose, rel)
    if not decision.allowed:
        audit(request, user, purpose, decision, subtype, [])
        raise refusal(decision)
    return decision


def own_ids(
    request: Request, engine: Engine, user: Principal, purpose: str | None, ids: list[str] | None
) -> list[str] | None:
    """The ids a search may return: for a patient, those of ``ids`` that are their own (others
    are simply not found; no ``_id`` at all is refused and audited); ``ids`` for anyone else."""
    if user.role is not Role.PATIENT:
        return ids
    if ids is None:
        refused = Decision(False, 403, "a patient reads only their own record: "
                           "GET /fhir/Patient/<id> or search by _id")  # fmt: skip
        audit(request, user, purpose, refused, "search", [])
        raise refusal(refused)
    return [i for i in ids if is_self(engine, user, i)]


def audit(request, user, purpose, decision: Decision, subtype: str, ids, status=None) -> None:
    """One Patient audit event per id in ``ids`` (one without a patient when empty)."""
    record_access(request, user, purpose, decision, resource="Patient", subtype=subtype,
                  patient_ids=ids, status=status)  # fmt: skip


def require(decision: Decision) -> None:
    if not decision.allowed:
        raise refusal(decision)


def is_self(engine: Engine, user: Principal, person_id: str) -> bool:
    with engine.connect() as conn:
        return care_relationship(conn, user, person_id) is Relationship.SELF


def as_own_institution(engine, user: Principal, reg: RegistrationCreate) -> RegistrationCreate:
    """The registration of an integrator, at its own institution with its own MRN; 403 when it
    claims another institution (policy: an integrator submits only as its own institution)."""
    own = get_institution(engine, user.institution_id or "")
    mrns = {i.system for i in reg.identifiers if i.system.startswith(systems.MRN_PREFIX)}
    claimed: str | None = reg.institution_id or own.id
    if mrns - {systems.mrn_system(own.credit_code)}:
        claimed = None  # another institution's patient number
    require(decide(user, Action.SUBMIT, "Patient", None, submitter_relationship(user, claimed)))
    if not mrns:
        raise InvalidInput(
            f"an identifier with your institution's MRN system "
            f"{systems.mrn_system(own.credit_code)} is required",
            expression="Patient.identifier",
        )
    return reg.model_copy(update={"institution_id": own.id})


def shown(res: dict[str, Any], user: Principal) -> dict[str, Any]:
    """A Patient resource as ``user`` may see it: in full for operators (MPI stewardship), with
    resident IDs and phone numbers masked for everyone else."""
    return res if user.role is Role.OPERATOR else masked(res)


def masked(res: dict[str, Any]) -> dict[str, Any]:
    """A Patient with sensitive identifiers (resident ID, passport, permits) and phones masked."""
    for ident in res.get("identifier", []):
        if ident["system"] in systems.SENSITIVE:
            ident["value"] = mask(ident["value"])
    for tel in res.get("telecom", []):
        if tel.get("system") == "phone" and tel.get("value"):
            tel["value"] = mask(tel["value"], keep_head=3, keep_tail=4)
    return res


def own_view(res: dict[str, Any], sent: list[Identifier]) -> dict[str, Any]:
    """What an integrator gets back: the identifiers it sent, masked where sensitive."""
    mine = {(i.system, i.value) for i in sent}
    res["identifier"] = [i for i in res.get("identifier", []) if (i["system"], i["value"]) in mine]
    return masked(res)
