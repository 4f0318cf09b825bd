"""Whose report is it: ``subject`` references resolved to golden patients (主索引).

A subject may be a Patient entry of the same request (registered through the MPI), a
conditional reference ``Patient?identifier=system|value`` looked up in the MPI's identifier
table (keyed hashes for resident IDs and passports), or ``Patient/<golden id>``. A merged
record resolves to its survivor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

from sqlalchemy import Connection, select

from rhip.exchange.fhir_validate import AmbiguousReference, FhirInvalid, UnknownReference
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import NotSupported

if TYPE_CHECKING:
    from rhip.exchange.fhir_ingest import Channel, Entry


class PatientLookup(Protocol):
    def by_identifier(self, conn: Connection, system: str | None, value: str) -> list[str]: ...
    def by_id(self, conn: Connection, person_id: str) -> str | None: ...


class MpiLookup:
    """Read-only look-ups in the master patient index (``rhip.identity`` tables)."""

    def __init__(self, vault: IdentifierVault):
        self.vault = vault

    def by_identifier(self, conn: Connection, system: str | None, value: str) -> list[str]:
        from rhip.identity import repo

        ids = repo.persons_with_identifier(conn, repo.identifier_clause(self.vault, system, value))
        return sorted({g for g in (self.by_id(conn, i) for i in ids) if g})

    def by_id(self, conn: Connection, person_id: str) -> str | None:
        from rhip.identity.models import persons

        for _ in range(10):  # follow merges to the surviving record
            row = conn.execute(
                select(persons.c.status, persons.c.merged_into).where(persons.c.id == person_id)
            ).first()
            if row is None:
                return None
            if row.status != "merged" or not row.merged_into:
                return person_id
            person_id = row.merged_into
        return None


def resolve_subject(
    channel: Channel, entry: Entry, index: dict[str, int], entries: list[Entry]
) -> str | int:
    """The golden patient id, or the index of a Patient entry still to be registered."""
    from rhip.exchange.fhir_ingest import local

    resource: dict[str, Any] = entry.resource or {}
    where = f"{entry.path}.subject"
    ref = ((resource.get("subject") or {}).get("reference") or "").strip()
    if not ref:
        raise FhirInvalid(
            f"{where}: the subject (a Patient reference) is required", expression=where
        )
    k = local(index, ref)
    if k is not None:
        if (entries[k].resource or {}).get("resourceType") != "Patient":
            raise FhirInvalid(f"{where}: {ref!r} is not a Patient", expression=where)
        return k
    if ref in channel.known:
        return channel.known[ref]
    with channel.engine.connect() as conn:
        golden = _look_up(channel, conn, ref, where)
    channel.known[ref] = golden
    return golden


def _look_up(channel: Channel, conn: Connection, ref: str, where: str) -> str:
    if ref.startswith("Patient?"):
        params = parse_qsl(ref[len("Patient?") :], keep_blank_values=True)
        if len(params) != 1 or params[0][0] != "identifier":
            raise NotSupported(
                f"{where}: conditional reference {ref!r}: only Patient?identifier=system|value "
                "is supported",
                expression=where,
            )
        token = params[0][1]
        system, value = token.split("|", 1) if "|" in token else (None, token)
        found = channel.lookup.by_identifier(conn, system or None, value)
        if not found:
            raise UnknownReference(
                f"{where}: no patient in the master patient index has identifier "
                f"{system or '(any system)'}|{_masked(system, value)}",
                expression=where,
            )
        if len(found) > 1:
            raise AmbiguousReference(
                f"{where}: {len(found)} patients have this identifier; send a Patient entry or "
                "a Patient/<id> reference",
                expression=where,
            )
        return found[0]
    if ref.startswith("Patient/") and ref.count("/") == 1:
        golden = channel.lookup.by_id(conn, ref.split("/", 1)[1])
        if golden is None:
            raise UnknownReference(
                f"{where}: {ref} is neither an entry of this request nor a known patient",
                expression=where,
            )
        return golden
    raise FhirInvalid(
        f"{where}: {ref!r} must be Patient/<id>, Patient?identifier=system|value or the fullUrl "
        "of a Patient entry",
        expression=where,
    )


def _masked(system: str | None, value: str) -> str:
    from rhip.kernel import systems
    from rhip.kernel.ids import mask

    return mask(value) if system is None or system in systems.SENSITIVE else value
